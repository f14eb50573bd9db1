/**
 * The firewall routes: filters and their rules (/api/filters), the service catalogue (/api/services),
 * department policies and service defaults (/api/departments/:id/policy, /services), a VM's services,
 * included filters and department (/api/machines/:id/services, /filters, /department).
 *
 * The DB is the truth and libvirt is kept equal to it by workflows: everything that changes what libvirt
 * enforces starts `firewallChange` (or `flushFilters`, `changeMachineDepartment`) and answers 202 with the
 * operation; only what never reaches libvirt by itself (a custom filter's row, its name) is written here.
 * Changes of one scope — a department (its filter, its VMs' filters, its policy and services) or a custom
 * filter — are serialized by the workflow id: a second one waits for the first (up to 30 s), then 409.
 * The API checks what is cheap (permissions, existence, rule content, includes); the workflow's own checks
 * stay authoritative.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowNotFoundError } from '@temporalio/client';
import { Brackets, type EntityManager, In } from 'typeorm';
import { publishEvent } from '../../activities/events';
import { OperationConflictError } from '../../client/machine-operations';
import { Department, DepartmentMember } from '../../entities/department';
import { FirewallFilter, FirewallRule } from '../../entities/firewall';
import { Machine } from '../../entities/machine';
import { User } from '../../entities/user';
import { presetRules } from '../../firewall/compile';
import { departmentServices, describeFilter, ensureVmFilterRow, machineServices } from '../../firewall/load';
import { findService, SERVICES } from '../../firewall/services';
import { MAX_INCLUDES, normalizeUserRule } from '../../firewall/validate';
import {
  firewallWorkflowId,
  flushWorkflowId,
  HARDWARE_FROM,
  libvirtNames,
  type FirewallChange,
  type FirewallChangeInput,
  type FlushFiltersInput,
} from '../../workflows/shared';
import { type ApiContext } from '../context';
import { conflict, conflictFromOperation, forbidden, notFound, refused } from '../errors';
import { type OperationView } from '../operations';
import { belongsTo, type Principal } from '../permissions';
import {
  canCreateFilter,
  canEditDepartmentFirewall,
  canEditFilter,
  canEditMachineFirewall,
  canFlush,
  canMoveMachine,
  canViewDepartmentFirewall,
  canViewFilter,
  canViewMachineFirewall,
  filterScope,
  mayInclude,
} from '../permissions-firewall';
import { route, type RequestIds, type RouteSpec } from '../route';
import { IdParams, OperationResponse, pageOf } from '../schemas';
import {
  ApplyFilterBody,
  CreateFilterBody,
  DepartmentServiceBody,
  DepartmentServicesResponse,
  FilterDescriptionSchema,
  FilterListQuery,
  FilterSchema,
  FlushBody,
  IncludesBody,
  MachineDepartmentBody,
  MachineFilterParams,
  MachineServiceBody,
  MachineServicesResponse,
  PolicyBody,
  PolicySchema,
  RuleBody,
  RuleOperationResponse,
  RuleParams,
  ServiceParams,
  ServiceSchema,
  UpdateFilterBody,
} from '../schemas-firewall';
import { decodeCursor, encodeCursor, visibleMachine } from './machines';

/** How long a change waits for a running change of the same scope before answering 409. */
export const SCOPE_WAIT_MS = 30_000;

const iso = (d: Date | string) => new Date(d).toISOString();

/** A filter as lists show it (its row). */
export function filterView(f: FirewallFilter) {
  return {
    id: f.id,
    kind: f.kind,
    name: f.name,
    description: f.description,
    departmentId: f.departmentId,
    machineId: f.machineId,
    includes: f.includes ?? [],
    version: f.version,
    libvirtName: f.internalName,
    createdAt: iso(f.createdAt),
    updatedAt: iso(f.updatedAt),
  };
}

/** A filter with its machine (for `vm` filters), as permissions need it. */
interface LoadedFilter {
  filter: FirewallFilter;
  machine: Machine | null;
}

/** Where a change of a filter is serialized, and whose rooms and operations it belongs to. */
interface Scope {
  scopeId: string;
  departmentId: string | null;
}

function scopeOf({ filter, machine }: LoadedFilter): Scope {
  if (filter.kind === 'custom') return { scopeId: filter.id, departmentId: filter.departmentId };
  const departmentId = filter.kind === 'vm' ? machine!.departmentId : filter.departmentId!;
  return { scopeId: departmentId, departmentId };
}

async function loadFilter(m: EntityManager, id: string): Promise<LoadedFilter | null> {
  const filter = await m.findOne(FirewallFilter, { where: { id } });
  if (!filter) return null;
  if (filter.kind !== 'vm') return { filter, machine: null };
  const machine = filter.machineId ? await m.findOne(Machine, { where: { id: filter.machineId } }) : null;
  // A VM filter whose machine is gone is on its way out with it: it does not exist for callers.
  return machine ? { filter, machine } : null;
}

/** The filter, when the caller may see it; else 404 (whether it exists or not). */
async function visibleFilter(ctx: ApiContext, p: Principal, id: string, field?: string) {
  const lf = await loadFilter(ctx.ds.manager, id);
  if (!lf || !canViewFilter(p, lf)) throw notFound('filter', field);
  return lf;
}

/** The filter, when the caller may change it: 404 when it may not see it, 403 when it may only see it. */
async function editableFilter(ctx: ApiContext, p: Principal, id: string): Promise<LoadedFilter> {
  const lf = await visibleFilter(ctx, p, id);
  if (!canEditFilter(p, lf)) throw forbidden('you may read this filter but not change it');
  return lf;
}

async function visibleDepartment(ctx: ApiContext, p: Principal, id: string, field?: string) {
  const d = await ctx.ds.getRepository(Department).findOne({ where: { id } });
  if (!d || !belongsTo(p, d.id)) throw notFound('department', field);
  return d;
}

function serviceOf(serviceId: string) {
  const s = findService(serviceId);
  if (!s) throw notFound('service', 'serviceId');
  return s;
}

/** The workflow running under an id, if any (its operation id and type from the memo). */
async function runningWorkflow(
  ctx: ApiContext,
  workflowId: string,
): Promise<{ operationId: string | null; type: string | null } | null> {
  try {
    const d = await ctx.temporal.workflow.getHandle(workflowId).describe();
    if (d.status.name !== 'RUNNING') return null;
    const memo = (d.memo ?? {}) as { operationId?: string; type?: string };
    return { operationId: memo.operationId ?? null, type: memo.type ?? null };
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

/** 409 when a workflow runs under one of these ids (DB-only changes must not race a running change). */
export async function assertNoneRunning(ctx: ApiContext, workflowIds: string[]): Promise<void> {
  for (const workflowId of workflowIds) {
    const running = await runningWorkflow(ctx, workflowId);
    if (running)
      throw conflict(
        `a firewall operation is running here: ${running.type ?? 'unknown'} ${running.operationId ?? workflowId}`,
        {
          title: 'Operation in progress',
          runningOperation: { id: running.operationId, type: running.type, workflowId },
        },
      );
  }
}

/**
 * Waits (bounded) for the running change of a scope to finish, so that a change computed from the current
 * state (a VM filter's includes) reads the state that change leaves. startResource serializes again anyway.
 */
async function settle(ctx: ApiContext, workflowId: string, ms = SCOPE_WAIT_MS): Promise<void> {
  if (!(await runningWorkflow(ctx, workflowId))) return;
  await Promise.race([
    ctx.temporal.workflow
      .getHandle(workflowId)
      .result()
      .catch(() => undefined),
    new Promise((r) => setTimeout(r, ms).unref()),
  ]);
}

/** Starts a firewallChange on a scope (waiting for a running one of the same scope). */
async function startChange(
  ctx: ApiContext,
  p: Principal,
  scope: Scope,
  change: FirewallChange,
  ids: RequestIds,
  idempotencyKey: string | null,
): Promise<OperationView> {
  const input: FirewallChangeInput = {
    operationId: ids.operation,
    actorId: p.id,
    idempotencyKey,
    scopeId: scope.scopeId,
    change,
  };
  try {
    return await ctx.operations.startResource({
      workflow: 'firewallChange',
      workflowId: firewallWorkflowId(scope.scopeId),
      type: 'firewall',
      resource: 'firewall',
      resourceId: scope.scopeId,
      input: input as unknown as FirewallChangeInput & Record<string, unknown>,
      actorId: p.id,
      departmentId: scope.departmentId,
      waitForRunningMs: SCOPE_WAIT_MS,
    });
  } catch (err) {
    if (err instanceof OperationConflictError) throw conflictFromOperation(err);
    throw err;
  }
}

const accepted = (operation: OperationView, body: Record<string, unknown> = {}) => ({
  status: 202,
  body: { ...body, operation },
  headers: { Location: `/api/operations/${operation.id}` },
});

/**
 * Writes a `firewall:<action>` event for a change the API makes itself (a filter's row), to the managers of
 * the department concerned (`departmentId`; null: a global custom filter, admins only).
 */
async function filterEvent(
  m: EntityManager,
  action: 'filter_created' | 'filter_updated' | 'filter_deleted',
  f: FirewallFilter,
  actor: Principal,
  departmentId: string | null = f.departmentId,
): Promise<void> {
  await publishEvent(m, {
    resource: 'firewall',
    action,
    resourceId: f.id,
    payload: { filterId: f.id, filter: filterView(f) },
    actorId: actor.id,
    departmentId,
    dedupeKey: `api:${randomUUID()}`,
  });
}

/** 409 when another custom filter of the same scope has this name. */
async function assertNameFree(m: EntityManager, name: string, departmentId: string | null, except?: string) {
  const qb = m
    .getRepository(FirewallFilter)
    .createQueryBuilder('f')
    .where("f.kind = 'custom' AND f.name = :name", { name });
  if (departmentId) qb.andWhere('f.departmentId = :departmentId', { departmentId });
  else qb.andWhere('f.departmentId IS NULL');
  if (except) qb.andWhere('f.id <> :except', { except });
  if (await qb.getExists())
    throw conflict('a custom filter with this name exists here', {
      errors: [{ field: 'name', message: 'taken' }],
    });
}

/** The filters whose includes list one of these ids. */
export async function filtersIncluding(
  m: EntityManager,
  ids: string[],
): Promise<Array<Pick<FirewallFilter, 'id' | 'name' | 'kind' | 'departmentId' | 'machineId'>>> {
  if (!ids.length) return [];
  const qb = m
    .getRepository(FirewallFilter)
    .createQueryBuilder('f')
    .select(['f.id', 'f.name', 'f.kind', 'f.departmentId', 'f.machineId']);
  qb.where(
    new Brackets((w) => {
      ids.forEach((id, i) =>
        w.orWhere(`JSON_CONTAINS(f.includes, JSON_QUOTE(:inc${i}))`, { [`inc${i}`]: id }),
      );
    }),
  );
  return qb.orderBy('f.name', 'ASC').getMany();
}

/**
 * Checks the includes of a filter: each one a custom filter the caller may see (else 404 naming it), that
 * this filter may include (global, or of its department), not itself, and not making a cycle (422).
 */
async function checkIncludes(
  ctx: ApiContext,
  p: Principal,
  owner: LoadedFilter,
  includes: string[],
  field = 'includes',
): Promise<void> {
  const scopeDepartment = scopeOf(owner).departmentId;
  for (const [i, id] of includes.entries()) {
    const at = `${field}.${i}`;
    const lf = await loadFilter(ctx.ds.manager, id);
    if (!lf || !canViewFilter(p, lf)) throw notFound('filter', at);
    const f = lf.filter;
    if (id === owner.filter.id) throw refused('a filter cannot include itself', at);
    if (!mayInclude(scopeDepartment, f))
      throw refused(
        f.kind !== 'custom'
          ? 'only custom filters can be included'
          : scopeDepartment
            ? "a filter can include only global custom filters or its own department's"
            : 'a global filter can include only global custom filters',
        at,
      );
  }
  if (owner.filter.kind !== 'custom') return;
  // A custom filter may be included by others: refuse a cycle back to it.
  const seen = new Set<string>();
  let frontier = includes;
  while (frontier.length) {
    const next = await ctx.ds.getRepository(FirewallFilter).find({ where: { id: In(frontier) } });
    frontier = [];
    for (const f of next) {
      for (const inc of f.includes ?? []) {
        if (inc === owner.filter.id)
          throw refused(`including ${f.name} would make a cycle back to this filter`, field);
        if (!seen.has(inc)) {
          seen.add(inc);
          frontier.push(inc);
        }
      }
    }
  }
}

/** The firewall routes. */
export function firewallRoutes(ctx: ApiContext): RouteSpec[] {
  /** Starts setIncludes on a machine's VM filter, computed from its current includes. */
  const changeMachineIncludes = async (
    p: Principal,
    m: Machine,
    ids: RequestIds,
    idempotencyKey: string | null,
    next: (current: string[]) => string[],
  ) => {
    await settle(ctx, firewallWorkflowId(m.departmentId));
    const filter = await ctx.ds.transaction((tx) => ensureVmFilterRow(tx, m.id, m.name));
    const includes = next(filter.includes ?? []);
    if (includes.length > MAX_INCLUDES)
      throw refused(`a filter includes at most ${MAX_INCLUDES} filters`, 'filterId');
    return startChange(
      ctx,
      p,
      { scopeId: m.departmentId, departmentId: m.departmentId },
      { type: 'setIncludes', filterId: filter.id, includes },
      ids,
      idempotencyKey,
    );
  };

  return [
    route({
      method: 'get',
      path: '/api/services',
      tag: 'firewall',
      summary: 'The catalogue of services a VM can USE (outbound) or PROVIDE (inbound)',
      responses: { 200: { description: 'the services', schema: ServiceSchema.array() } },
      async handler() {
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
    }),
    route({
      method: 'get',
      path: '/api/filters',
      tag: 'firewall',
      summary:
        'The filters the caller may see (admins: all; managers: their departments’, their VMs’, custom)',
      query: FilterListQuery,
      responses: { 200: { description: 'a page of filters', schema: pageOf(FilterSchema, 'FilterPage') } },
      async handler({ principal: p, query }) {
        const limit = query.limit ?? 50;
        const qb = ctx.ds.getRepository(FirewallFilter).createQueryBuilder('f');
        const scope = filterScope(p);
        if (scope) qb.where(scope.where, scope.params);
        if (query.kind) qb.andWhere('f.kind = :kind', { kind: query.kind });
        if (query.department) qb.andWhere('f.departmentId = :dept', { dept: query.department });
        if (query.cursor) {
          const c = decodeCursor(query.cursor);
          qb.andWhere('(f.createdAt < :cAt OR (f.createdAt = :cAt AND f.id < :cId))', {
            cAt: c.createdAt,
            cId: c.id,
          });
        }
        const rows = await qb
          .orderBy('f.createdAt', 'DESC')
          .addOrderBy('f.id', 'DESC')
          .limit(limit + 1)
          .getMany();
        const items = rows.slice(0, limit);
        const last = items[items.length - 1];
        return {
          status: 200,
          body: {
            items: items.map(filterView),
            nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null,
          },
        };
      },
    }),
    route({
      method: 'get',
      path: '/api/filters/:id',
      tag: 'firewall',
      summary: 'A filter: its user rules (with ids), the derived preset/service rules, its libvirt name',
      params: IdParams,
      problems: [404],
      responses: { 200: { description: 'the filter', schema: FilterDescriptionSchema } },
      async handler({ principal: p, params }) {
        await visibleFilter(ctx, p, params.id);
        const d = await describeFilter(ctx.ds.manager, params.id);
        if (!d) throw notFound('filter');
        return {
          status: 200,
          body: {
            ...filterView(d.filter),
            rules: d.rules.map((r) => ({ id: r.id, rule: r.rule, createdAt: iso(r.createdAt) })),
            derived: d.derived,
            filterrefs: (d.spec.filterrefs ?? []).map((r) => r.filter),
          },
        };
      },
    }),
    route({
      method: 'post',
      path: '/api/filters',
      tag: 'firewall',
      summary: 'Create a custom filter (admins; managers for their department). DB only until included',
      body: CreateFilterBody,
      problems: [403, 404, 409],
      responses: { 201: { description: 'the filter', schema: FilterSchema } },
      async handler({ principal: p, body, ids }) {
        const departmentId = body.departmentId ?? null;
        if (departmentId) await visibleDepartment(ctx, p, departmentId, 'departmentId');
        if (!canCreateFilter(p, departmentId))
          throw forbidden(
            departmentId
              ? 'only managers of the department and admins may create its filters'
              : 'only admins may create global filters',
          );
        const f = await ctx.ds.transaction(async (m) => {
          const existing = await m.findOne(FirewallFilter, { where: { id: ids.resource } });
          if (existing) return existing;
          await assertNameFree(m, body.name, departmentId);
          await m.insert(FirewallFilter, {
            id: ids.resource,
            kind: 'custom',
            name: body.name,
            description: body.description ?? null,
            internalName: libvirtNames.customFilter(ids.resource),
            departmentId,
            machineId: null,
            includes: [],
            version: 1,
          });
          const f = await m.findOneOrFail(FirewallFilter, { where: { id: ids.resource } });
          await filterEvent(m, 'filter_created', f, p);
          return f;
        });
        return { status: 201, body: filterView(f), headers: { Location: `/api/filters/${f.id}` } };
      },
    }),
    route({
      method: 'patch',
      path: '/api/filters/:id',
      tag: 'firewall',
      summary: 'Rename a filter or change its description (DB only)',
      params: IdParams,
      body: UpdateFilterBody,
      problems: [403, 404, 409],
      responses: { 200: { description: 'the filter', schema: FilterSchema } },
      async handler({ principal: p, params, body }) {
        const lf = await editableFilter(ctx, p, params.id);
        const f = await ctx.ds.transaction(async (m) => {
          if (body.name !== undefined && lf.filter.kind === 'custom')
            await assertNameFree(m, body.name, lf.filter.departmentId, lf.filter.id);
          await m.update(
            FirewallFilter,
            { id: lf.filter.id },
            {
              ...(body.name !== undefined ? { name: body.name } : {}),
              ...(body.description !== undefined ? { description: body.description } : {}),
            },
          );
          const f = await m.findOneOrFail(FirewallFilter, { where: { id: lf.filter.id } });
          await filterEvent(m, 'filter_updated', f, p, scopeOf(lf).departmentId);
          return f;
        });
        return { status: 200, body: filterView(f) };
      },
    }),
    route({
      method: 'delete',
      path: '/api/filters/:id',
      tag: 'firewall',
      summary: 'Delete a custom filter that no filter includes (409 lists those that do)',
      params: IdParams,
      problems: [403, 404, 409, 422],
      responses: { 204: { description: 'deleted' } },
      async handler({ principal: p, params }) {
        const lf = await editableFilter(ctx, p, params.id);
        if (lf.filter.kind !== 'custom')
          throw refused(
            `a ${lf.filter.kind} filter lives and dies with its ${lf.filter.kind === 'vm' ? 'machine' : 'department'}`,
          );
        await assertNoneRunning(ctx, [firewallWorkflowId(lf.filter.id)]);
        await ctx.ds.transaction(async (m) => {
          // Lock the row: an include of it committed meanwhile is seen below, or waits for the delete.
          const f = await m.findOne(FirewallFilter, {
            where: { id: lf.filter.id },
            lock: { mode: 'pessimistic_write' },
          });
          if (!f) return;
          const users = await filtersIncluding(m, [f.id]);
          if (users.length)
            throw conflict(`the filter is included by ${users.length} filter(s): remove it from them first`, {
              includedBy: users.map((u) => ({ id: u.id, name: u.name, kind: u.kind })),
            });
          await filterEvent(m, 'filter_deleted', f, p);
          await m.delete(FirewallRule, { filterId: f.id });
          await m.delete(FirewallFilter, { id: f.id });
        });
        return { status: 204 };
      },
    }),
    route({
      method: 'post',
      path: '/api/filters/:id/rules',
      tag: 'firewall',
      summary: 'addRule: add a user rule to a filter (every problem of the rule is reported at once)',
      params: IdParams,
      body: RuleBody,
      problems: [403, 404, 409],
      responses: {
        202: { description: 'accepted: the rule and its operation', schema: RuleOperationResponse },
      },
      async handler({ principal: p, params, body, ids, idempotencyKey }) {
        const lf = await editableFilter(ctx, p, params.id);
        const rule = normalizeUserRule(body as Record<string, unknown>) as unknown as Record<string, unknown>;
        const operation = await startChange(
          ctx,
          p,
          scopeOf(lf),
          { type: 'addRule', filterId: lf.filter.id, ruleId: ids.resource, rule },
          ids,
          idempotencyKey,
        );
        return accepted(operation, { rule: { id: ids.resource, ...rule } });
      },
    }),
    route({
      method: 'put',
      path: '/api/filters/:id/rules/:ruleId',
      tag: 'firewall',
      summary: 'updateRule: replace a user rule of a filter',
      params: RuleParams,
      body: RuleBody,
      problems: [403, 404, 409],
      responses: {
        202: { description: 'accepted: the rule and its operation', schema: RuleOperationResponse },
      },
      async handler({ principal: p, params, body, ids, idempotencyKey }) {
        const lf = await editableFilter(ctx, p, params.id);
        const exists = await ctx.ds
          .getRepository(FirewallRule)
          .exists({ where: { id: params.ruleId, filterId: lf.filter.id } });
        if (!exists) throw notFound('rule');
        const rule = normalizeUserRule(body as Record<string, unknown>) as unknown as Record<string, unknown>;
        const operation = await startChange(
          ctx,
          p,
          scopeOf(lf),
          { type: 'updateRule', filterId: lf.filter.id, ruleId: params.ruleId, rule },
          ids,
          idempotencyKey,
        );
        return accepted(operation, { rule: { id: params.ruleId, ...rule } });
      },
    }),
    route({
      method: 'delete',
      path: '/api/filters/:id/rules/:ruleId',
      tag: 'firewall',
      summary: 'deleteRule: remove a user rule from a filter',
      params: RuleParams,
      problems: [403, 404, 409],
      responses: { 202: { description: 'accepted', schema: OperationResponse } },
      async handler({ principal: p, params, ids, idempotencyKey }) {
        const lf = await editableFilter(ctx, p, params.id);
        const exists = await ctx.ds
          .getRepository(FirewallRule)
          .exists({ where: { id: params.ruleId, filterId: lf.filter.id } });
        if (!exists) throw notFound('rule');
        const operation = await startChange(
          ctx,
          p,
          scopeOf(lf),
          { type: 'deleteRule', filterId: lf.filter.id, ruleId: params.ruleId },
          ids,
          idempotencyKey,
        );
        return accepted(operation);
      },
    }),
    route({
      method: 'put',
      path: '/api/filters/:id/includes',
      tag: 'firewall',
      summary: 'Set the custom filters a filter includes, in order',
      params: IdParams,
      body: IncludesBody,
      problems: [403, 404, 409, 422],
      responses: { 202: { description: 'accepted', schema: OperationResponse } },
      async handler({ principal: p, params, body, ids, idempotencyKey }) {
        const lf = await editableFilter(ctx, p, params.id);
        await checkIncludes(ctx, p, lf, body.includes);
        const operation = await startChange(
          ctx,
          p,
          scopeOf(lf),
          { type: 'setIncludes', filterId: lf.filter.id, includes: body.includes },
          ids,
          idempotencyKey,
        );
        return accepted(operation);
      },
    }),
    route({
      method: 'post',
      path: '/api/filters/flush',
      tag: 'firewall',
      summary:
        "flushFilters: push the DB's filters to libvirt, only those that differ (admins; managers: theirs)",
      body: FlushBody,
      problems: [403, 404, 409],
      responses: { 202: { description: 'accepted', schema: OperationResponse } },
      async handler({ principal: p, body, ids, idempotencyKey }) {
        const departmentId = body.departmentId ?? null;
        if (departmentId) await visibleDepartment(ctx, p, departmentId, 'departmentId');
        if (!canFlush(p, departmentId))
          throw forbidden(
            departmentId
              ? "only the department's managers and admins may flush its filters"
              : 'only admins may flush every filter',
          );
        const input: FlushFiltersInput = {
          operationId: ids.operation,
          actorId: p.id,
          idempotencyKey,
          departmentId,
        };
        try {
          const operation = await ctx.operations.startResource({
            workflow: 'flushFilters',
            workflowId: flushWorkflowId(departmentId),
            type: 'flush_filters',
            resource: 'firewall',
            // A flush of everything has no single resource.
            resourceId: departmentId,
            input: input as FlushFiltersInput & Record<string, unknown>,
            actorId: p.id,
            departmentId,
            waitForRunningMs: SCOPE_WAIT_MS,
          });
          return accepted(operation);
        } catch (err) {
          if (err instanceof OperationConflictError) throw conflictFromOperation(err);
          throw err;
        }
      },
    }),
    route({
      method: 'get',
      path: '/api/departments/:id/policy',
      tag: 'firewall',
      summary: "A department's firewall preset and the rules it compiles to",
      params: IdParams,
      problems: [403, 404],
      responses: { 200: { description: 'the policy', schema: PolicySchema } },
      async handler({ principal: p, params }) {
        const d = await visibleDepartment(ctx, p, params.id);
        if (!canViewDepartmentFirewall(p, d.id)) throw forbidden();
        return {
          status: 200,
          body: { departmentId: d.id, policy: d.firewallPolicy, rules: presetRules(d.firewallPolicy) },
        };
      },
    }),
    route({
      method: 'put',
      path: '/api/departments/:id/policy',
      tag: 'firewall',
      summary: "Switch a department's preset: ALLOW_ALL | BLOCK_ALL | ALLOW_OUTBOUND | ALLOW_INTERNET",
      params: IdParams,
      body: PolicyBody,
      problems: [403, 404, 409],
      responses: { 202: { description: 'accepted', schema: OperationResponse } },
      async handler({ principal: p, params, body, ids, idempotencyKey }) {
        const d = await visibleDepartment(ctx, p, params.id);
        if (!canEditDepartmentFirewall(p, d.id))
          throw forbidden("only the department's managers and admins may change its policy");
        const operation = await startChange(
          ctx,
          p,
          { scopeId: d.id, departmentId: d.id },
          { type: 'setPolicy', departmentId: d.id, policy: body.policy },
          ids,
          idempotencyKey,
        );
        return accepted(operation);
      },
    }),
    route({
      method: 'get',
      path: '/api/departments/:id/services',
      tag: 'firewall',
      summary: "A department's service settings (the defaults of its VMs)",
      params: IdParams,
      problems: [403, 404],
      responses: { 200: { description: 'the settings', schema: DepartmentServicesResponse } },
      async handler({ principal: p, params }) {
        const d = await visibleDepartment(ctx, p, params.id);
        if (!canViewDepartmentFirewall(p, d.id)) throw forbidden();
        return {
          status: 200,
          body: { departmentId: d.id, services: await departmentServices(ctx.ds.manager, d.id) },
        };
      },
    }),
    route({
      method: 'put',
      path: '/api/departments/:id/services/:serviceId',
      tag: 'firewall',
      summary: 'Toggle a service (USE | PROVIDE) for a department: the default of its VMs',
      params: ServiceParams,
      body: DepartmentServiceBody,
      problems: [403, 404, 409],
      responses: { 202: { description: 'accepted', schema: OperationResponse } },
      async handler({ principal: p, params, body, ids, idempotencyKey }) {
        const d = await visibleDepartment(ctx, p, params.id);
        if (!canEditDepartmentFirewall(p, d.id))
          throw forbidden("only the department's managers and admins may change its services");
        const service = serviceOf(params.serviceId);
        const operation = await startChange(
          ctx,
          p,
          { scopeId: d.id, departmentId: d.id },
          {
            type: 'toggleService',
            scope: 'department',
            scopeId: d.id,
            serviceId: service.id,
            action: body.action,
            enabled: body.enabled,
          },
          ids,
          idempotencyKey,
        );
        return accepted(operation);
      },
    }),
    route({
      method: 'get',
      path: '/api/machines/:id/services',
      tag: 'firewall',
      summary: "A VM's effective services, each with where its setting comes from (vm, department, default)",
      params: IdParams,
      problems: [404],
      responses: { 200: { description: 'the services', schema: MachineServicesResponse } },
      async handler({ principal: p, params }) {
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
    }),
    route({
      method: 'put',
      path: '/api/machines/:id/services/:serviceId',
      tag: 'firewall',
      summary: "toggleVmService: a VM's own setting of a service (null: follow its department again)",
      params: ServiceParams,
      body: MachineServiceBody,
      problems: [403, 404, 409],
      responses: { 202: { description: 'accepted', schema: OperationResponse } },
      async handler({ principal: p, params, body, ids, idempotencyKey }) {
        const m = await visibleMachine(ctx, p, params.id);
        if (!canEditMachineFirewall(p, m))
          throw forbidden("only the department's managers and admins may change a VM's services");
        const service = serviceOf(params.serviceId);
        const operation = await startChange(
          ctx,
          p,
          { scopeId: m.departmentId, departmentId: m.departmentId },
          {
            type: 'toggleService',
            scope: 'vm',
            scopeId: m.id,
            serviceId: service.id,
            action: body.action,
            enabled: body.enabled,
          },
          ids,
          idempotencyKey,
        );
        return accepted(operation);
      },
    }),
    route({
      method: 'post',
      path: '/api/machines/:id/filters',
      tag: 'firewall',
      summary: "applyFilterToVM: include a custom filter in a VM's filter",
      params: IdParams,
      body: ApplyFilterBody,
      problems: [403, 404, 409, 422],
      responses: { 202: { description: 'accepted', schema: OperationResponse } },
      async handler({ principal: p, params, body, ids, idempotencyKey }) {
        const m = await visibleMachine(ctx, p, params.id);
        if (!canEditMachineFirewall(p, m))
          throw forbidden("only the department's managers and admins may change a VM's filters");
        const target = await visibleFilter(ctx, p, body.filterId, 'filterId');
        if (!mayInclude(m.departmentId, target.filter))
          throw refused(
            target.filter.kind !== 'custom'
              ? 'only custom filters can be applied to a VM'
              : "a VM can use only global custom filters or its own department's",
            'filterId',
          );
        const operation = await changeMachineIncludes(p, m, ids, idempotencyKey, (current) =>
          current.includes(target.filter.id) ? current : [...current, target.filter.id],
        );
        return accepted(operation);
      },
    }),
    route({
      method: 'delete',
      path: '/api/machines/:id/filters/:filterId',
      tag: 'firewall',
      summary: "Remove a custom filter from a VM's filter",
      params: MachineFilterParams,
      problems: [403, 404, 409],
      responses: { 202: { description: 'accepted', schema: OperationResponse } },
      async handler({ principal: p, params, ids, idempotencyKey }) {
        const m = await visibleMachine(ctx, p, params.id);
        if (!canEditMachineFirewall(p, m))
          throw forbidden("only the department's managers and admins may change a VM's filters");
        const own = await ctx.ds.getRepository(FirewallFilter).findOne({ where: { machineId: m.id } });
        if (!own || !(own.includes ?? []).includes(params.filterId))
          throw notFound('filter applied to this machine', 'filterId');
        const operation = await changeMachineIncludes(p, m, ids, idempotencyKey, (current) =>
          current.filter((x) => x !== params.filterId),
        );
        return accepted(operation);
      },
    }),
    route({
      method: 'put',
      path: '/api/machines/:id/department',
      tag: 'firewall',
      summary: 'Move a VM to another department (admins, or managers of both; the owner must be a member)',
      params: IdParams,
      body: MachineDepartmentBody,
      problems: [403, 404, 409, 422],
      responses: { 202: { description: 'accepted', schema: OperationResponse } },
      async handler({ principal: p, params, body, ids, idempotencyKey }) {
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
        if (!member && owner?.role !== 'ADMIN')
          throw refused("the machine's owner must be a member of the target department", 'departmentId');
        await assertMachineIdle(ctx, m);
        if (!HARDWARE_FROM.includes(m.status)) throw refused(`cannot move a machine that is ${m.status}`);
        if (await ctx.ds.getRepository(Machine).exists({ where: { departmentId: target.id, name: m.name } }))
          throw conflict(`a machine named "${m.name}" exists in the target department`, {
            errors: [{ field: 'departmentId', message: 'a machine there has the same name' }],
          });
        const operation = await ctx.operations.start(
          'changeMachineDepartment',
          {
            operationId: ids.operation,
            machineId: m.id,
            departmentId: target.id,
            actorId: p.id,
            idempotencyKey,
          },
          { ownerId: m.ownerId, departmentId: m.departmentId, actorId: p.id },
        );
        return accepted(operation);
      },
    }),
  ];
}

/** 409 when an operation is running on the machine (named), as src/api/routes/machines.ts does. */
async function assertMachineIdle(ctx: ApiContext, m: Machine): Promise<void> {
  if (!m.currentOperationId) return;
  const running = await ctx.operations.view(m.currentOperationId).catch(() => null);
  if (running?.status === 'running') {
    throw conflict(`another operation is running on this machine: ${running.type} ${running.id}`, {
      title: 'Operation in progress',
      runningOperation: { id: running.id, type: running.type, workflowId: running.workflowId },
    });
  }
}
