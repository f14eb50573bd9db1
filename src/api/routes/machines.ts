/**
 * Everything that can be done to a machine, under /api/machines: list, get, and the operations (create,
 * hardware, clone, power, destroy, move to another network or department), and its firewall (its
 * services and included filters). Every route that starts a `vm-<id>` workflow is here. The API checks
 * what is cheap before starting a workflow (permissions, existence, status, disk shrink, a running
 * operation); the workflow's own checks stay authoritative and a refusal there fails the operation.
 */
import { DepartmentMember } from '../../entities/department';
import { FirewallFilter } from '../../entities/firewall';
import { Host } from '../../entities/host';
import { Image } from '../../entities/image';
import { Machine } from '../../entities/machine';
import { MachineTemplate } from '../../entities/machine-template';
import { User } from '../../entities/user';
import { ensureVmFilterRow, machineServices } from '../../firewall/load';
import { MAX_INCLUDES } from '../../firewall/validate';
import {
  checkProvisioningForImage,
  provisioningFromRequest,
  type GuestSecrets,
  type Provisioning,
  type ProvisioningRequest,
} from '../../guests/provisioning';
import { imageUseProblem, mayOwnIn, nameTakenMessage, ownerProblem } from '../../machines/rules';
import { firewallWorkflowId, HARDWARE_FROM, POWER_FROM, type FirewallChange } from '../../workflows/shared';
import { type ApiContext } from '../context';
import { badRequest, conflict, forbidden, notFound, refused } from '../errors';
import {
  assertIncludableByVm,
  departmentScope,
  settle,
  startChange,
  toggleService,
  visibleFilter,
} from '../firewall-scope';
import { accepted, type Caller } from '../handler';
import { assertIdle } from '../idle';
import { allowed, hostNames, visibleDepartment, visibleMachine, visibleNetwork } from '../lookups';
import { listMachines } from '../machine-list';
import { idleMachine, startOnMachine } from '../machine-start';
import { viewPage } from '../pagination';
import { canChangeHardware, canCreateMachine, canOperateMachine, type Principal } from '../permissions';
import { canEditMachineFirewall, canMoveMachine, canViewMachineFirewall } from '../permissions-firewall';
import { ACCEPTED, acceptedAs, starting, ok, routesFor, type RouteSpec } from '../route';
import {
  CloneBody,
  CreateMachineBody,
  DestroyQuery,
  HardwareBody,
  IdParams,
  MachineListQuery,
  MachineOperationResponse,
  MachineSchema,
  pageOf,
  PowerBody,
} from '../schemas';
import {
  ApplyFilterBody,
  MachineDepartmentBody,
  MachineFilterParams,
  MachineServiceBody,
  MachineServicesResponse,
  ServiceParams,
} from '../schemas-firewall';
import { MachineNetworkBody } from '../schemas-network';
import { machineView, type MachineView } from '../views';

/** A machine as its create (or clone) operation will make it: what the 202 shows before its row exists. */
function creatingMachine(
  m: Pick<
    MachineView,
    | 'id'
    | 'name'
    | 'ownerId'
    | 'departmentId'
    | 'templateId'
    | 'hostName'
    | 'cpu'
    | 'memoryMiB'
    | 'storageGiB'
    | 'os'
    | 'networkName'
    | 'linkedClone'
    | 'sourceMachineId'
  >,
  operationId: string,
): MachineView {
  return {
    id: m.id,
    name: m.name,
    status: 'creating',
    ownerId: m.ownerId,
    departmentId: m.departmentId,
    templateId: m.templateId,
    hostName: m.hostName,
    cpu: m.cpu,
    memoryMiB: m.memoryMiB,
    storageGiB: m.storageGiB,
    os: m.os,
    macAddress: null,
    networkName: m.networkName,
    linkedClone: m.linkedClone,
    sourceMachineId: m.sourceMachineId,
    pendingHardware: null,
    currentOperationId: operationId,
    lastError: null,
    ipAddresses: [],
    guestAgent: 'absent',
    createdAt: null,
    updatedAt: null,
  };
}

/** 409 when the department already has a machine of this name. */
/**
 * The first-boot provisioning of a create request, checked against the template's image (src/guests):
 * what travels in clear and what must be sealed. A template without an image provisions nothing: only the
 * older `guestPassword`/`productKey` are still accepted there (sealed and kept, as before images).
 */
async function provisioningFor(
  ctx: ApiContext,
  b: ProvisioningRequest & { name: string },
  machineId: string,
  template: MachineTemplate,
  use: { departmentId: string; storageGiB: number },
): Promise<{ provisioning: Provisioning | null; secrets: GuestSecrets | null }> {
  const { provisioning, secrets, problems } = provisioningFromRequest(b, machineId);
  if (!template.imageId) {
    const given = (['username', 'password', 'sshKeys', 'hostname', 'userData'] as const).find(
      (f) => b[f] !== undefined,
    );
    if (given) throw refused('this template has no image: there is nothing to provision', given);
    // userData was refused above: only the older guestPassword/productKey are left, kept sealed as before.
    return { provisioning: null, secrets };
  }
  const image = await ctx.ds.getRepository(Image).findOne({ where: { id: template.imageId } });
  const unusable = imageUseProblem(image, { field: 'templateId', ...use });
  if (unusable) throw refused(unusable.message, unusable.field);
  const all = [...problems, ...checkProvisioningForImage(provisioning, image!)];
  const invalid = all.filter((x) => x.status === 400);
  if (invalid.length)
    throw badRequest(
      invalid[0]!.message,
      invalid.map(({ field, message }) => ({ field, message })),
    );
  if (all[0]) throw refused(all[0].message, all[0].field);
  return image!.provisioning === 'none' ? { provisioning: null, secrets: null } : { provisioning, secrets };
}

async function nameTaken(ctx: ApiContext, departmentId: string, name: string): Promise<void> {
  if (await ctx.ds.getRepository(Machine).exists({ where: { departmentId, name } })) {
    throw conflict(nameTakenMessage(name), {
      errors: [{ field: 'name', message: 'taken' }],
    });
  }
}

/**
 * The network a new machine attaches to: one the caller may see (else 404), usable by the department
 * (shared or the department's), active, and on the host the machine goes to. Resolved to its libvirt name
 * and host for the createMachine input.
 */
async function machineNetwork(
  ctx: ApiContext,
  p: Principal,
  networkId: string,
  departmentId: string,
): Promise<{ networkName: string; hostName: string }> {
  const n = await visibleNetwork(ctx, p, networkId, 'networkId');
  if (n.departmentId !== null && n.departmentId !== departmentId)
    throw refused('the network belongs to another department', 'networkId');
  if (n.status !== 'active') throw refused(`the network is ${n.status}, not active`, 'networkId');
  const host = await ctx.ds.getRepository(Host).findOne({ where: { id: n.hostId } });
  if (!host) throw refused('the network has no host', 'networkId');
  if (ctx.placementHost && ctx.placementHost !== host.name)
    throw refused(
      `the network is on host ${host.name}; machines are placed on ${ctx.placementHost}`,
      'networkId',
    );
  return { networkName: n.internalName, hostName: host.name };
}

/** The machine routes. */
export function machineRoutes(ctx: ApiContext): RouteSpec[] {
  const machinesApi = routesFor('machines');
  return [
    machinesApi.get(
      '/api/machines',
      'List the machines the caller may see (filters, keyset pagination, newest first)',
      { query: MachineListQuery, responses: ok('a page of machines', pageOf(MachineSchema, 'MachinePage')) },
      async ({ principal, query }) => {
        const page = await listMachines(ctx.ds, principal, query);
        return viewPage(page, machineView);
      },
    ),
    machinesApi.get(
      '/api/machines/:id',
      'A machine',
      { params: IdParams, problems: [404], responses: ok('the machine', MachineSchema) },
      async ({ principal, params }) => {
        const m = await visibleMachine(ctx, principal, params.id);
        const hosts = await hostNames(ctx);
        return { status: 200, body: machineView({ ...m, hostName: hosts.get(m.hostId) ?? null }) };
      },
    ),
    machinesApi.post(
      '/api/machines',
      'Create a machine (starts the createMachine workflow)',
      {
        body: CreateMachineBody,
        problems: [403, 404, 409, 422],
        responses: acceptedAs(
          'accepted: the machine as it will be, and its operation',
          MachineOperationResponse,
        ),
      },
      async ({ principal: p, body: b, ids, idempotencyKey }) => {
        const ownerId = b.ownerId ?? p.id;
        const dept = await visibleDepartment(ctx, p, b.departmentId, 'departmentId');
        if (!canCreateMachine(p, dept.id, ownerId))
          throw forbidden('only managers of the department may create machines for others');
        if (ownerId !== p.id) {
          const owner = await ctx.ds.getRepository(User).findOne({ where: { id: ownerId } });
          const member =
            owner &&
            (await ctx.ds
              .getRepository(DepartmentMember)
              .exists({ where: { departmentId: dept.id, userId: ownerId } }));
          if (ownerProblem(owner, !!member))
            throw refused('the owner must be a member of the department', 'ownerId');
        }
        const template = await ctx.ds.getRepository(MachineTemplate).findOne({ where: { id: b.templateId } });
        if (!template) throw notFound('template', 'templateId');
        const network = b.networkId ? await machineNetwork(ctx, p, b.networkId, dept.id) : null;
        await nameTaken(ctx, dept.id, b.name);
        const machineId = ids.resource;
        const { provisioning, secrets: guest } = await provisioningFor(ctx, b, machineId, template, {
          departmentId: dept.id,
          storageGiB: b.storage ?? template.storageGiB,
        });
        const secrets = guest ? ctx.secrets.seal(guest) : undefined;
        const operation = await ctx.operations.start(
          'createMachine',
          {
            operationId: ids.operation,
            machineId,
            name: b.name,
            templateId: template.id,
            departmentId: dept.id,
            ownerId,
            actorId: p.id,
            idempotencyKey,
            ...(b.cpu !== undefined ? { cpu: b.cpu } : {}),
            ...(b.memory !== undefined ? { memoryMiB: b.memory } : {}),
            ...(b.storage !== undefined ? { storageGiB: b.storage } : {}),
            ...(b.start !== undefined ? { start: b.start } : {}),
            ...(network ? { networkName: network.networkName, hostName: network.hostName } : {}),
            ...(ctx.placementHost && !network ? { hostName: ctx.placementHost } : {}),
            ...(secrets ? { guestSecrets: secrets } : {}),
            ...(provisioning ? { provisioning } : {}),
          },
          { ownerId, departmentId: dept.id, actorId: p.id },
        );
        const machine = creatingMachine(
          {
            id: machineId,
            name: b.name,
            ownerId,
            departmentId: dept.id,
            templateId: template.id,
            hostName: network?.hostName ?? ctx.placementHost ?? null,
            cpu: b.cpu ?? template.cpu,
            memoryMiB: b.memory ?? template.memoryMiB,
            storageGiB: b.storage ?? template.storageGiB,
            os: template.os,
            networkName: network?.networkName ?? null,
            linkedClone: false,
            sourceMachineId: null,
          },
          operation.id,
        );
        return accepted(operation, { machine });
      },
    ),
    machinesApi.patch(
      '/api/machines/:id/hardware',
      'Change vCPUs, memory or disk size (disks only grow)',
      { params: IdParams, body: HardwareBody, problems: [403, 404, 409, 422], responses: ACCEPTED },
      async ({ principal: p, params, body: b, ids, idempotencyKey }) => {
        const m = await idleMachine(
          ctx,
          p,
          params.id,
          canChangeHardware,
          'only managers of the department and admins may change hardware',
        );
        if (!HARDWARE_FROM.includes(m.status))
          throw refused(`cannot change the hardware of a machine that is ${m.status}`);
        if (b.storage !== undefined && b.storage < m.storageGiB) {
          throw refused(
            `disks only grow: ${b.storage} GiB is less than the current ${m.storageGiB} GiB`,
            'storage',
          );
        }
        if (b.storage !== undefined && b.storage > m.storageGiB && !m.linkedClone) {
          const clones = await ctx.ds
            .getRepository(Machine)
            .count({ where: { sourceMachineId: m.id, linkedClone: true } });
          if (clones > 0) throw refused('this machine backs linked clones; its disk cannot grow', 'storage');
        }
        return startOnMachine(ctx, { p, m, ids, idempotencyKey }, 'updateMachineHardware', {
          ...(b.cpu !== undefined ? { cpu: b.cpu } : {}),
          ...(b.memory !== undefined ? { memoryMiB: b.memory } : {}),
          ...(b.storage !== undefined ? { storageGiB: b.storage } : {}),
        });
      },
    ),
    machinesApi.post(
      '/api/machines/:id/clone',
      'Clone an off machine (full copy, or linked overlay) into the same department',
      {
        params: IdParams,
        body: CloneBody,
        problems: [403, 404, 409, 422],
        responses: acceptedAs(
          'accepted: the clone as it will be, and its operation',
          MachineOperationResponse,
        ),
      },
      async ({ principal: p, params, body: b, ids, idempotencyKey }) => {
        const source = await idleMachine(ctx, p, params.id, canOperateMachine);
        if (source.status !== 'off')
          throw refused(`the source must be off to be cloned (it is ${source.status})`);
        await nameTaken(ctx, source.departmentId, b.name);
        const machineId = ids.resource;
        const linked = b.linked ?? false;
        const operation = await ctx.operations.start(
          'cloneMachine',
          {
            operationId: ids.operation,
            machineId,
            sourceMachineId: source.id,
            name: b.name,
            linked,
            ownerId: p.id,
            actorId: p.id,
            idempotencyKey,
            ...(b.hostname !== undefined ? { hostname: b.hostname } : {}),
          },
          { ownerId: p.id, departmentId: source.departmentId, actorId: p.id },
        );
        const hosts = await hostNames(ctx);
        const machine = creatingMachine(
          {
            ...machineView({ ...source, hostName: hosts.get(source.hostId) ?? null }),
            id: machineId,
            name: b.name,
            ownerId: p.id,
            linkedClone: linked,
            sourceMachineId: source.id,
          },
          operation.id,
        );
        return accepted(operation, { machine });
      },
    ),
    machinesApi.post(
      '/api/machines/:id/power',
      'start | shutdown | poweroff | reboot | reset | suspend | resume',
      { params: IdParams, body: PowerBody, problems: [403, 404, 409, 422], responses: ACCEPTED },
      async ({ principal: p, params, body: b, ids, idempotencyKey }) => {
        const m = await idleMachine(ctx, p, params.id, canOperateMachine);
        if (!POWER_FROM[b.action].includes(m.status))
          throw refused(`cannot ${b.action} a machine that is ${m.status}`, 'action');
        return startOnMachine(ctx, { p, m, ids, idempotencyKey }, 'powerMachine', {
          action: b.action,
          ...(b.shutdownTimeoutSec !== undefined ? { shutdownTimeoutSec: b.shutdownTimeoutSec } : {}),
        });
      },
    ),
    machinesApi.delete(
      '/api/machines/:id',
      'Destroy a machine (graceful shutdown with a deadline, then forced)',
      { params: IdParams, query: DestroyQuery, problems: [403, 404, 409, 422], responses: ACCEPTED },
      async ({ principal: p, params, query, ids, idempotencyKey }) => {
        const m = await idleMachine(ctx, p, params.id, canOperateMachine);
        const clones = await ctx.ds
          .getRepository(Machine)
          .count({ where: { sourceMachineId: m.id, linkedClone: true } });
        if (clones > 0) throw refused('this machine backs linked clones: destroy them first');
        const timeout = query.shutdownTimeoutSec ?? ctx.destroyShutdownTimeoutSec;
        return startOnMachine(ctx, { p, m, ids, idempotencyKey }, 'destroyMachine', {
          ...(timeout !== undefined ? { shutdownTimeoutSec: timeout } : {}),
        });
      },
    ),
  ];
}

/** Moving a machine's NIC to another network (listed, and documented, after the network routes). */
export function machineNetworkRoutes(ctx: ApiContext): RouteSpec[] {
  const networksApi = routesFor('networks');
  return [
    networksApi.put(
      '/api/machines/:id/network',
      "Move a machine's NIC to another network (live when it runs, where libvirt can)",
      { params: IdParams, body: MachineNetworkBody, problems: [403, 404, 409, 422], responses: ACCEPTED },
      async ({ principal: p, params, body: b, ids, idempotencyKey }) => {
        const m = await allowed(visibleMachine(ctx, p, params.id), (found) => canOperateMachine(p, found));
        const n = await visibleNetwork(ctx, p, b.networkId, 'networkId');
        if (n.departmentId !== null && n.departmentId !== m.departmentId)
          throw refused("the network belongs to another department than the machine's", 'networkId');
        await assertIdle(ctx, { kind: 'machine', currentOperationId: m.currentOperationId });
        if (!HARDWARE_FROM.includes(m.status))
          throw refused(`cannot change the network of a machine that is ${m.status}`);
        if (n.status !== 'active') throw refused(`the network is ${n.status}, not active`, 'networkId');
        if (n.hostId !== m.hostId)
          throw refused('the network is on another host than the machine', 'networkId');
        return startOnMachine(ctx, { p, m, ids, idempotencyKey }, 'changeMachineNetwork', {
          networkId: n.id,
        });
      },
    ),
  ];
}

/** Starts setIncludes on a machine's VM filter, computed from its current includes. */
async function changeMachineIncludes(
  ctx: ApiContext,
  call: Caller,
  m: Machine,
  next: (current: string[]) => string[],
) {
  await settle(ctx, firewallWorkflowId(m.departmentId));
  const filter = await ctx.ds.transaction((tx) => ensureVmFilterRow(tx, m.id, m.name));
  const includes = next(filter.includes ?? []);
  if (includes.length > MAX_INCLUDES)
    throw refused(`a filter includes at most ${MAX_INCLUDES} filters`, 'filterId');
  const change: FirewallChange = { type: 'setIncludes', filterId: filter.id, includes };
  return startChange(ctx, call, departmentScope(m.departmentId), change);
}

/**
 * A machine's firewall (its services and included filters) and its department (listed, and documented,
 * after the other firewall routes).
 */
export function machineFirewallRoutes(ctx: ApiContext): RouteSpec[] {
  const firewallApi = routesFor('firewall');
  /** A machine whose `what` the caller may change (404, 403 naming it). */
  const editable = (p: Principal, id: string, what: string) =>
    allowed(
      visibleMachine(ctx, p, id),
      (m) => canEditMachineFirewall(p, m),
      `only the department's managers and admins may change a VM's ${what}`,
    );
  return [
    firewallApi.get(
      '/api/machines/:id/services',
      "A VM's effective services, each with where its setting comes from (vm, department, default)",
      { params: IdParams, problems: [404], responses: ok('the services', MachineServicesResponse) },
      async ({ principal: p, params }) => {
        const m = await visibleMachine(ctx, p, params.id);
        if (!canViewMachineFirewall(p, m)) throw notFound('machine');
        return {
          status: 200,
          body: {
            machineId: m.id,
            departmentId: m.departmentId,
            services: await machineServices(ctx.ds.manager, m.id),
          },
        };
      },
    ),
    firewallApi.put(
      '/api/machines/:id/services/:serviceId',
      "toggleVmService: a VM's own setting of a service (null: follow its department again)",
      { params: ServiceParams, body: MachineServiceBody, problems: [403, 404, 409], responses: ACCEPTED },
      starting(async (call) => {
        const m = await editable(call.principal, call.params.id, 'services');
        const target = { scope: 'vm', scopeId: m.id, departmentId: m.departmentId } as const;
        return toggleService(ctx, call, target, call.params.serviceId, call.body);
      }),
    ),
    firewallApi.post(
      '/api/machines/:id/filters',
      "applyFilterToVM: include a custom filter in a VM's filter",
      { params: IdParams, body: ApplyFilterBody, problems: [403, 404, 409, 422], responses: ACCEPTED },
      starting(async ({ params, body, ...call }) => {
        const m = await editable(call.principal, params.id, 'filters');
        const target = await visibleFilter(ctx, call.principal, body.filterId, 'filterId');
        assertIncludableByVm(m.departmentId, target.filter);
        return changeMachineIncludes(ctx, call, m, (current) =>
          current.includes(target.filter.id) ? current : [...current, target.filter.id],
        );
      }),
    ),
    firewallApi.delete(
      '/api/machines/:id/filters/:filterId',
      "Remove a custom filter from a VM's filter",
      { params: MachineFilterParams, problems: [403, 404, 409], responses: ACCEPTED },
      starting(async ({ params, ...call }) => {
        const m = await editable(call.principal, params.id, 'filters');
        const own = await ctx.ds.getRepository(FirewallFilter).findOne({ where: { machineId: m.id } });
        if (!own || !(own.includes ?? []).includes(params.filterId))
          throw notFound('filter applied to this machine', 'filterId');
        return changeMachineIncludes(ctx, call, m, (current) => current.filter((x) => x !== params.filterId));
      }),
    ),
    firewallApi.put(
      '/api/machines/:id/department',
      'Move a VM to another department (admins, or managers of both; the owner must be a member)',
      { params: IdParams, body: MachineDepartmentBody, problems: [403, 404, 409, 422], responses: ACCEPTED },
      async ({ principal: p, params, body, ids, idempotencyKey }) => {
        const m = await visibleMachine(ctx, p, params.id);
        const target = await visibleDepartment(ctx, p, body.departmentId, 'departmentId');
        if (!canMoveMachine(p, m, target.id))
          throw forbidden('only admins and managers of both departments may move a machine');
        if (target.id === m.departmentId)
          throw refused('the machine is already in this department', 'departmentId');
        const owner = await ctx.ds.getRepository(User).findOne({ where: { id: m.ownerId } });
        const member = await ctx.ds
          .getRepository(DepartmentMember)
          .exists({ where: { departmentId: target.id, userId: m.ownerId } });
        if (!mayOwnIn(owner, member))
          throw refused("the machine's owner must be a member of the target department", 'departmentId');
        await assertIdle(ctx, { kind: 'machine', currentOperationId: m.currentOperationId });
        if (!HARDWARE_FROM.includes(m.status)) throw refused(`cannot move a machine that is ${m.status}`);
        if (await ctx.ds.getRepository(Machine).exists({ where: { departmentId: target.id, name: m.name } }))
          throw conflict(`a machine named "${m.name}" exists in the target department`, {
            errors: [{ field: 'departmentId', message: 'a machine there has the same name' }],
          });
        return startOnMachine(ctx, { p, m, ids, idempotencyKey }, 'changeMachineDepartment', {
          departmentId: target.id,
        });
      },
    ),
  ];
}
