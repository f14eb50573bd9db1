/**
 * /api/machines: list, get, and the operations (create, hardware, clone, power, destroy). The API checks
 * what is cheap before starting a workflow (permissions, existence, status, disk shrink, a running
 * operation); the workflow's own checks stay authoritative and a refusal there fails the operation.
 */
import { Brackets } from 'typeorm';
import { Department, DepartmentMember } from '../../entities/department';
import { Host } from '../../entities/host';
import { Machine } from '../../entities/machine';
import { MachineTemplate } from '../../entities/machine-template';
import { User } from '../../entities/user';
import { HARDWARE_FROM, POWER_FROM } from '../../workflows/shared';
import { type ApiContext } from '../context';
import { badRequest, conflict, forbidden, notFound, refused } from '../errors';
import {
  belongsTo,
  canChangeHardware,
  canCreateMachine,
  canOperateMachine,
  canViewMachine,
  machineScope,
  type Principal,
} from '../permissions';
import { route, type RouteSpec } from '../route';
import {
  CloneBody,
  CreateMachineBody,
  DestroyQuery,
  HardwareBody,
  IdParams,
  MachineListQuery,
  MachineOperationResponse,
  MachineSchema,
  OperationResponse,
  pageOf,
  PowerBody,
} from '../schemas';
import { machineView, type MachineView } from '../views';
import { visibleNetwork } from './networks';

const LIST_COLUMNS = [
  'id',
  'name',
  'status',
  'ownerId',
  'departmentId',
  'templateId',
  'hostId',
  'cpu',
  'memoryMiB',
  'storageGiB',
  'os',
  'macAddress',
  'networkName',
  'linkedClone',
  'sourceMachineId',
  'pendingHardware',
  'currentOperationId',
  'lastError',
  'createdAt',
  'updatedAt',
] as const;

/** Opaque keyset cursor over (createdAt, id), newest first. */
export function encodeCursor(createdAt: Date, id: string): string {
  return Buffer.from(JSON.stringify([new Date(createdAt).toISOString(), id])).toString('base64url');
}

/** Decodes a cursor; 400 when it is not one of ours. */
export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [string, string];
    const createdAt = new Date(at);
    if (typeof id !== 'string' || !/^[0-9a-f-]{36}$/i.test(id) || Number.isNaN(createdAt.getTime()))
      throw new Error('bad');
    return { createdAt, id };
  } catch {
    throw badRequest('invalid cursor', [
      { field: 'query.cursor', message: 'not a cursor returned by this API' },
    ]);
  }
}

async function hostNames(ctx: ApiContext): Promise<Map<string, string>> {
  const hosts = await ctx.ds.getRepository(Host).find({ select: { id: true, name: true } });
  return new Map(hosts.map((h) => [h.id, h.name]));
}

/** Loads a machine the caller may see, else 404 (whether it exists or not). */
export async function visibleMachine(ctx: ApiContext, p: Principal, id: string): Promise<Machine> {
  const m = await ctx.ds.getRepository(Machine).findOne({ where: { id } });
  if (!m || !canViewMachine(p, m)) throw notFound('machine');
  return m;
}

/** 409 when an operation is running on the machine (named). */
export async function assertIdle(ctx: ApiContext, m: Machine): Promise<void> {
  if (!m.currentOperationId) return;
  const running = await ctx.operations.view(m.currentOperationId).catch(() => null);
  if (running?.status === 'running') {
    throw conflict(`another operation is running on this machine: ${running.type} ${running.id}`, {
      title: 'Operation in progress',
      runningOperation: { id: running.id, type: running.type, workflowId: running.workflowId },
    });
  }
}

async function nameTaken(ctx: ApiContext, departmentId: string, name: string): Promise<void> {
  if (await ctx.ds.getRepository(Machine).exists({ where: { departmentId, name } })) {
    throw conflict(`a machine named "${name}" exists in this department`, {
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
  return [
    route({
      method: 'get',
      path: '/api/machines',
      tag: 'machines',
      summary: 'List the machines the caller may see (filters, keyset pagination, newest first)',
      query: MachineListQuery,
      responses: { 200: { description: 'a page of machines', schema: pageOf(MachineSchema, 'MachinePage') } },
      async handler({ principal, query }) {
        const limit = query.limit ?? 50;
        // Raw rows with the host name joined: one query, no entity hydration (this is the hot list).
        const qb = ctx.ds
          .createQueryBuilder()
          .select(LIST_COLUMNS.map((c) => `m.${c} AS ${c}`))
          .addSelect('h.name', 'hostName')
          .from(Machine, 'm')
          .leftJoin(Host, 'h', 'h.id = m.hostId');
        const scope = machineScope(principal);
        if (scope) qb.where(scope.where, scope.params);
        if (query.status) qb.andWhere('m.status = :status', { status: query.status });
        if (query.department) qb.andWhere('m.departmentId = :department', { department: query.department });
        if (query.owner) qb.andWhere('m.ownerId = :owner', { owner: query.owner });
        if (query.cursor) {
          const c = decodeCursor(query.cursor);
          qb.andWhere(
            new Brackets((w) =>
              w
                .where('m.createdAt < :cAt', { cAt: c.createdAt })
                .orWhere('m.createdAt = :cAt AND m.id < :cId', { cId: c.id }),
            ),
          );
        }
        const rows = await qb
          .orderBy('m.createdAt', 'DESC')
          .addOrderBy('m.id', 'DESC')
          .limit(limit + 1)
          .getRawMany<Machine & { hostName: string | null }>();
        const page = rows.slice(0, limit);
        const last = page[page.length - 1];
        return {
          status: 200,
          body: {
            items: page.map((m) => machineView(m)),
            nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null,
          },
        };
      },
    }),
    route({
      method: 'get',
      path: '/api/machines/:id',
      tag: 'machines',
      summary: 'A machine',
      params: IdParams,
      problems: [404],
      responses: { 200: { description: 'the machine', schema: MachineSchema } },
      async handler({ principal, params }) {
        const m = await visibleMachine(ctx, principal, params.id);
        const hosts = await hostNames(ctx);
        return { status: 200, body: machineView({ ...m, hostName: hosts.get(m.hostId) ?? null }) };
      },
    }),
    route({
      method: 'post',
      path: '/api/machines',
      tag: 'machines',
      summary: 'Create a machine (starts the createMachine workflow)',
      body: CreateMachineBody,
      problems: [403, 404, 409, 422],
      responses: {
        202: {
          description: 'accepted: the machine as it will be, and its operation',
          schema: MachineOperationResponse,
        },
      },
      async handler({ principal: p, body: b, ids, idempotencyKey }) {
        const ownerId = b.ownerId ?? p.id;
        const dept = await ctx.ds.getRepository(Department).findOne({ where: { id: b.departmentId } });
        if (!dept || !belongsTo(p, dept.id)) throw notFound('department', 'departmentId');
        if (!canCreateMachine(p, dept.id, ownerId))
          throw forbidden('only managers of the department may create machines for others');
        if (ownerId !== p.id) {
          const owner = await ctx.ds.getRepository(User).findOne({ where: { id: ownerId } });
          const member =
            owner &&
            (await ctx.ds
              .getRepository(DepartmentMember)
              .exists({ where: { departmentId: dept.id, userId: ownerId } }));
          if (!owner || (!member && owner.role !== 'ADMIN'))
            throw refused('the owner must be a member of the department', 'ownerId');
        }
        const template = await ctx.ds.getRepository(MachineTemplate).findOne({ where: { id: b.templateId } });
        if (!template) throw notFound('template', 'templateId');
        const network = b.networkId ? await machineNetwork(ctx, p, b.networkId, dept.id) : null;
        await nameTaken(ctx, dept.id, b.name);
        const secrets =
          b.guestPassword !== undefined || b.productKey !== undefined
            ? ctx.secrets.seal({
                ...(b.guestPassword !== undefined ? { password: b.guestPassword } : {}),
                ...(b.productKey !== undefined ? { productKey: b.productKey } : {}),
              })
            : undefined;
        const machineId = ids.resource;
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
          },
          { ownerId, departmentId: dept.id, actorId: p.id },
        );
        const machine: MachineView = {
          id: machineId,
          name: b.name,
          status: 'creating',
          ownerId,
          departmentId: dept.id,
          templateId: template.id,
          hostName: network?.hostName ?? ctx.placementHost ?? null,
          cpu: b.cpu ?? template.cpu,
          memoryMiB: b.memory ?? template.memoryMiB,
          storageGiB: b.storage ?? template.storageGiB,
          os: template.os,
          macAddress: null,
          networkName: network?.networkName ?? null,
          linkedClone: false,
          sourceMachineId: null,
          pendingHardware: null,
          currentOperationId: operation.id,
          lastError: null,
          createdAt: null,
          updatedAt: null,
        };
        return {
          status: 202,
          body: { machine, operation },
          headers: { Location: `/api/operations/${operation.id}` },
        };
      },
    }),
    route({
      method: 'patch',
      path: '/api/machines/:id/hardware',
      tag: 'machines',
      summary: 'Change vCPUs, memory or disk size (disks only grow)',
      params: IdParams,
      body: HardwareBody,
      problems: [403, 404, 409, 422],
      responses: { 202: { description: 'accepted', schema: OperationResponse } },
      async handler({ principal: p, params, body: b, ids, idempotencyKey }) {
        const m = await visibleMachine(ctx, p, params.id);
        if (!canChangeHardware(p, m))
          throw forbidden('only managers of the department and admins may change hardware');
        await assertIdle(ctx, m);
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
        const operation = await ctx.operations.start(
          'updateMachineHardware',
          {
            operationId: ids.operation,
            machineId: m.id,
            actorId: p.id,
            idempotencyKey,
            ...(b.cpu !== undefined ? { cpu: b.cpu } : {}),
            ...(b.memory !== undefined ? { memoryMiB: b.memory } : {}),
            ...(b.storage !== undefined ? { storageGiB: b.storage } : {}),
          },
          { ownerId: m.ownerId, departmentId: m.departmentId, actorId: p.id },
        );
        return { status: 202, body: { operation }, headers: { Location: `/api/operations/${operation.id}` } };
      },
    }),
    route({
      method: 'post',
      path: '/api/machines/:id/clone',
      tag: 'machines',
      summary: 'Clone an off machine (full copy, or linked overlay) into the same department',
      params: IdParams,
      body: CloneBody,
      problems: [403, 404, 409, 422],
      responses: {
        202: {
          description: 'accepted: the clone as it will be, and its operation',
          schema: MachineOperationResponse,
        },
      },
      async handler({ principal: p, params, body: b, ids, idempotencyKey }) {
        const source = await visibleMachine(ctx, p, params.id);
        if (!canOperateMachine(p, source)) throw forbidden();
        await assertIdle(ctx, source);
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
          },
          { ownerId: p.id, departmentId: source.departmentId, actorId: p.id },
        );
        const hosts = await hostNames(ctx);
        const machine: MachineView = {
          ...machineView({ ...source, hostName: hosts.get(source.hostId) ?? null }),
          id: machineId,
          name: b.name,
          status: 'creating',
          ownerId: p.id,
          macAddress: null,
          linkedClone: linked,
          sourceMachineId: source.id,
          pendingHardware: null,
          currentOperationId: operation.id,
          lastError: null,
          createdAt: null,
          updatedAt: null,
        };
        return {
          status: 202,
          body: { machine, operation },
          headers: { Location: `/api/operations/${operation.id}` },
        };
      },
    }),
    route({
      method: 'post',
      path: '/api/machines/:id/power',
      tag: 'machines',
      summary: 'start | shutdown | poweroff | reboot | reset | suspend | resume',
      params: IdParams,
      body: PowerBody,
      problems: [403, 404, 409, 422],
      responses: { 202: { description: 'accepted', schema: OperationResponse } },
      async handler({ principal: p, params, body: b, ids, idempotencyKey }) {
        const m = await visibleMachine(ctx, p, params.id);
        if (!canOperateMachine(p, m)) throw forbidden();
        await assertIdle(ctx, m);
        if (!POWER_FROM[b.action].includes(m.status))
          throw refused(`cannot ${b.action} a machine that is ${m.status}`, 'action');
        const operation = await ctx.operations.start(
          'powerMachine',
          {
            operationId: ids.operation,
            machineId: m.id,
            action: b.action,
            actorId: p.id,
            idempotencyKey,
            ...(b.shutdownTimeoutSec !== undefined ? { shutdownTimeoutSec: b.shutdownTimeoutSec } : {}),
          },
          { ownerId: m.ownerId, departmentId: m.departmentId, actorId: p.id },
        );
        return { status: 202, body: { operation }, headers: { Location: `/api/operations/${operation.id}` } };
      },
    }),
    route({
      method: 'delete',
      path: '/api/machines/:id',
      tag: 'machines',
      summary: 'Destroy a machine (graceful shutdown with a deadline, then forced)',
      params: IdParams,
      query: DestroyQuery,
      problems: [403, 404, 409, 422],
      responses: { 202: { description: 'accepted', schema: OperationResponse } },
      async handler({ principal: p, params, query, ids, idempotencyKey }) {
        const m = await visibleMachine(ctx, p, params.id);
        if (!canOperateMachine(p, m)) throw forbidden();
        await assertIdle(ctx, m);
        const clones = await ctx.ds
          .getRepository(Machine)
          .count({ where: { sourceMachineId: m.id, linkedClone: true } });
        if (clones > 0) throw refused('this machine backs linked clones: destroy them first');
        const timeout = query.shutdownTimeoutSec ?? ctx.destroyShutdownTimeoutSec;
        const operation = await ctx.operations.start(
          'destroyMachine',
          {
            operationId: ids.operation,
            machineId: m.id,
            actorId: p.id,
            idempotencyKey,
            ...(timeout !== undefined ? { shutdownTimeoutSec: timeout } : {}),
          },
          { ownerId: m.ownerId, departmentId: m.departmentId, actorId: p.id },
        );
        return { status: 202, body: { operation }, headers: { Location: `/api/operations/${operation.id}` } };
      },
    }),
  ];
}
