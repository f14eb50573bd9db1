/**
 * The firewall of departments: the service catalogue (/api/services), a department's preset
 * (/api/departments/:id/policy) and its service settings, the defaults of its VMs
 * (/api/departments/:id/services). Changes start `firewallChange` in the department's scope and answer
 * 202 with the operation.
 */
import { presetRules } from '../../firewall/compile';
import { departmentServices } from '../../firewall/load';
import { SERVICES } from '../../firewall/services';
import { type ApiContext } from '../context';
import { forbidden } from '../errors';
import { departmentScope, startChange, toggleService } from '../firewall-scope';
import { accepted } from '../handler';
import { visibleDepartment } from '../lookups';
import { canEditDepartmentFirewall, canViewDepartmentFirewall } from '../permissions-firewall';
import { ACCEPTED, ok, routesFor, type RouteSpec } from '../route';
import { IdParams } from '../schemas';
import {
  DepartmentServiceBody,
  DepartmentServicesResponse,
  PolicyBody,
  PolicySchema,
  ServiceParams,
  ServiceSchema,
} from '../schemas-firewall';

const firewallApi = routesFor('firewall');

/** The service catalogue route. */
export function serviceCatalogueRoutes(_ctx: ApiContext): RouteSpec[] {
  return [
    firewallApi.get(
      '/api/services',
      'The catalogue of services a VM can USE (outbound) or PROVIDE (inbound)',
      { responses: ok('the services', ServiceSchema.array()) },
      async () => {
        return {
          status: 200,
          body: SERVICES.map((s) => ({
            id: s.id,
            name: s.name,
            description: s.description,
            ports: s.ports.map((x) => ({ ...x })),
          })),
        };
      },
    ),
  ];
}

/** The department firewall routes (policy and services). */
export function departmentFirewallRoutes(ctx: ApiContext): RouteSpec[] {
  return [
    firewallApi.get(
      '/api/departments/:id/policy',
      "A department's firewall preset and the rules it compiles to",
      { params: IdParams, problems: [403, 404], responses: ok('the policy', PolicySchema) },
      async ({ principal: p, params }) => {
        const d = await visibleDepartment(ctx, p, params.id);
        if (!canViewDepartmentFirewall(p, d.id)) throw forbidden();
        return {
          status: 200,
          body: { departmentId: d.id, policy: d.firewallPolicy, rules: presetRules(d.firewallPolicy) },
        };
      },
    ),
    firewallApi.put(
      '/api/departments/:id/policy',
      "Switch a department's preset: ALLOW_ALL | BLOCK_ALL | ALLOW_OUTBOUND | ALLOW_INTERNET",
      { params: IdParams, body: PolicyBody, problems: [403, 404, 409], responses: ACCEPTED },
      async ({ principal: p, params, body, ids, idempotencyKey }) => {
        const d = await visibleDepartment(ctx, p, params.id);
        if (!canEditDepartmentFirewall(p, d.id))
          throw forbidden("only the department's managers and admins may change its policy");
        const operation = await startChange(
          ctx,
          p,
          departmentScope(d.id),
          { type: 'setPolicy', departmentId: d.id, policy: body.policy },
          ids,
          idempotencyKey,
        );
        return accepted(operation);
      },
    ),
    firewallApi.get(
      '/api/departments/:id/services',
      "A department's service settings (the defaults of its VMs)",
      { params: IdParams, problems: [403, 404], responses: ok('the settings', DepartmentServicesResponse) },
      async ({ principal: p, params }) => {
        const d = await visibleDepartment(ctx, p, params.id);
        if (!canViewDepartmentFirewall(p, d.id)) throw forbidden();
        return {
          status: 200,
          body: { departmentId: d.id, services: await departmentServices(ctx.ds.manager, d.id) },
        };
      },
    ),
    firewallApi.put(
      '/api/departments/:id/services/:serviceId',
      'Toggle a service (USE | PROVIDE) for a department: the default of its VMs',
      { params: ServiceParams, body: DepartmentServiceBody, problems: [403, 404, 409], responses: ACCEPTED },
      async ({ principal: p, params, body, ids, idempotencyKey }) => {
        const d = await visibleDepartment(ctx, p, params.id);
        if (!canEditDepartmentFirewall(p, d.id))
          throw forbidden("only the department's managers and admins may change its services");
        const operation = await toggleService(
          ctx,
          p,
          { scope: 'department', scopeId: d.id, departmentId: d.id },
          params.serviceId,
          body,
          ids,
          idempotencyKey,
        );
        return accepted(operation);
      },
    ),
  ];
}
