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
import { departmentScope, startChange, toggleService } from '../firewall-scope';
import { allowed, visibleDepartment } from '../lookups';
import { type Principal } from '../permissions';
import { canEditDepartmentFirewall, canViewDepartmentFirewall } from '../permissions-firewall';
import { ACCEPTED, ok, routesFor, starting, type RouteSpec } from '../route';
import { IdParams } from '../schemas';
import {
  DepartmentServiceBody,
  DepartmentServicesResponse,
  PolicyBody,
  PolicySchema,
  ServiceParams,
  ServiceSchema,
} from '../schemas-firewall';

/** The service catalogue route. */
export function serviceCatalogueRoutes(_ctx: ApiContext): RouteSpec[] {
  const firewallApi = routesFor('firewall');
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
  const firewallApi = routesFor('firewall');
  /** A department whose firewall the caller may read (404, 403). */
  const readable = (p: Principal, id: string) =>
    allowed(visibleDepartment(ctx, p, id), (d) => canViewDepartmentFirewall(p, d.id));
  /** A department whose `what` the caller may change (404, 403 naming it). */
  const editable = (p: Principal, id: string, what: string) =>
    allowed(
      visibleDepartment(ctx, p, id),
      (d) => canEditDepartmentFirewall(p, d.id),
      `only the department's managers and admins may change its ${what}`,
    );
  return [
    firewallApi.get(
      '/api/departments/:id/policy',
      "A department's firewall preset and the rules it compiles to",
      { params: IdParams, problems: [403, 404], responses: ok('the policy', PolicySchema) },
      async ({ principal, params }) => {
        const d = await readable(principal, params.id);
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
      starting(async (call) => {
        const d = await editable(call.principal, call.params.id, 'policy');
        const change = { type: 'setPolicy', departmentId: d.id, policy: call.body.policy } as const;
        return startChange(ctx, call, departmentScope(d.id), change);
      }),
    ),
    firewallApi.get(
      '/api/departments/:id/services',
      "A department's service settings (the defaults of its VMs)",
      { params: IdParams, problems: [403, 404], responses: ok('the settings', DepartmentServicesResponse) },
      async ({ principal, params }) => {
        const d = await readable(principal, params.id);
        const services = await departmentServices(ctx.ds.manager, d.id);
        return { status: 200, body: { departmentId: d.id, services } };
      },
    ),
    firewallApi.put(
      '/api/departments/:id/services/:serviceId',
      'Toggle a service (USE | PROVIDE) for a department: the default of its VMs',
      { params: ServiceParams, body: DepartmentServiceBody, problems: [403, 404, 409], responses: ACCEPTED },
      starting(async (call) => {
        const d = await editable(call.principal, call.params.id, 'services');
        const target = { scope: 'department', scopeId: d.id, departmentId: d.id } as const;
        return toggleService(ctx, call, target, call.params.serviceId, call.body);
      }),
    ),
  ];
}
