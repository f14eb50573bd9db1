/**
 * /api/filters: custom, department and VM filters, their user rules and includes, and pushing them to
 * libvirt (flush). The DB is the truth and libvirt is kept equal to it by workflows: everything that
 * changes what libvirt enforces starts `firewallChange` (or `flushFilters`) and answers 202 with the
 * operation; only what never reaches libvirt by itself (a custom filter's row, its name) is written here.
 * The API checks what is cheap (permissions, existence, rule content, includes); the workflow's own checks
 * stay authoritative.
 */
import { type EntityManager, In } from 'typeorm';
import { OperationConflictError } from '../../client/errors';
import { FirewallFilter, FirewallRule } from '../../entities/firewall';
import { describeFilter } from '../../firewall/load';
import { normalizeUserRule } from '../../firewall/validate';
import {
  firewallWorkflowId,
  flushWorkflowId,
  libvirtNames,
  type FirewallChange,
  type FlushFiltersInput,
} from '../../workflows/shared';
import { type ApiContext } from '../context';
import { conflict, conflictFromOperation, forbidden, notFound, refused } from '../errors';
import {
  assertRuleOf,
  editableFilter,
  filtersIncluding,
  loadFilter,
  scopeOf,
  SCOPE_WAIT_MS,
  startChange,
  visibleFilter,
  type LoadedFilter,
} from '../firewall-scope';
import { accepted, type Caller } from '../handler';
import { assertIdle } from '../idle';
import { visibleDepartment } from '../lookups';
import { keysetPage, viewPage } from '../pagination';
import { type Principal } from '../permissions';
import { canCreateFilter, canFlush, canViewFilter, filterScope, mayInclude } from '../permissions-firewall';
import { filterEvent } from '../resource-events';
import { ACCEPTED, acceptedAs, starting, created, DELETED, ok, routesFor, type RouteSpec } from '../route';
import { IdParams, pageOf } from '../schemas';
import {
  CreateFilterBody,
  FilterDescriptionSchema,
  FilterListQuery,
  FilterSchema,
  FlushBody,
  IncludesBody,
  RuleBody,
  RuleOperationResponse,
  RuleParams,
  UpdateFilterBody,
} from '../schemas-firewall';
import { filterView } from '../views-firewall';

const iso = (d: Date | string) => new Date(d).toISOString();

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

/** A user rule as the request gives it, normalized (every problem of it reported at once). */
const userRule = (body: unknown) =>
  normalizeUserRule(body as Record<string, unknown>) as unknown as Record<string, unknown>;

/** 202 with the rule as it will be and its operation. */
const RULE_ACCEPTED = acceptedAs('accepted: the rule and its operation', RuleOperationResponse);

/** The filter routes. */
export function filterRoutes(ctx: ApiContext): RouteSpec[] {
  const firewallApi = routesFor('firewall');
  /**
   * Loads a filter the caller may change (404/403), checks and builds the change with `make`, and
   * starts it in the filter's scope.
   */
  const changeFilter = async (
    call: Caller,
    filterId: string,
    make: (lf: LoadedFilter) => FirewallChange | Promise<FirewallChange>,
  ) => {
    const lf = await editableFilter(ctx, call.principal, filterId);
    const change = await make(lf);
    return startChange(ctx, call, scopeOf(lf), change);
  };
  /**
   * Adds a user rule (`ruleId` null: a new one, with the request's resource id) or replaces one; 202 with
   * the rule and its operation.
   */
  const putRule = async (call: Caller, filterId: string, ruleId: string | null, body: unknown) => {
    const id = ruleId ?? call.ids.resource;
    let rule: Record<string, unknown> = {};
    const operation = await changeFilter(call, filterId, async (lf) => {
      if (ruleId !== null) await assertRuleOf(ctx, lf, ruleId);
      rule = userRule(body);
      return { type: ruleId === null ? 'addRule' : 'updateRule', filterId: lf.filter.id, ruleId: id, rule };
    });
    return accepted(operation, { rule: { id, ...rule } });
  };
  return [
    firewallApi.get(
      '/api/filters',
      'The filters the caller may see (admins: all; managers: their departments’, their VMs’, custom)',
      { query: FilterListQuery, responses: ok('a page of filters', pageOf(FilterSchema, 'FilterPage')) },
      async ({ principal: p, query }) => {
        const qb = ctx.ds.getRepository(FirewallFilter).createQueryBuilder('f');
        const scope = filterScope(p);
        if (scope) qb.where(scope.where, scope.params);
        if (query.kind) qb.andWhere('f.kind = :kind', { kind: query.kind });
        if (query.department) qb.andWhere('f.departmentId = :dept', { dept: query.department });
        const page = await keysetPage<FirewallFilter>(qb, 'f', query);
        return viewPage(page, filterView);
      },
    ),
    firewallApi.get(
      '/api/filters/:id',
      'A filter: its user rules (with ids), the derived preset/service rules, its libvirt name',
      { params: IdParams, problems: [404], responses: ok('the filter', FilterDescriptionSchema) },
      async ({ principal: p, params }) => {
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
    ),
    firewallApi.post(
      '/api/filters',
      'Create a custom filter (admins; managers for their department). DB only until included',
      { body: CreateFilterBody, problems: [403, 404, 409], responses: created('the filter', FilterSchema) },
      async ({ principal: p, body, ids }) => {
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
    ),
    firewallApi.patch(
      '/api/filters/:id',
      'Rename a filter or change its description (DB only)',
      {
        params: IdParams,
        body: UpdateFilterBody,
        problems: [403, 404, 409],
        responses: ok('the filter', FilterSchema),
      },
      async ({ principal: p, params, body }) => {
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
    ),
    firewallApi.delete(
      '/api/filters/:id',
      'Delete a custom filter that no filter includes (409 lists those that do)',
      { params: IdParams, problems: [403, 404, 409, 422], responses: DELETED },
      async ({ principal: p, params }) => {
        const lf = await editableFilter(ctx, p, params.id);
        if (lf.filter.kind !== 'custom')
          throw refused(
            `a ${lf.filter.kind} filter lives and dies with its ${lf.filter.kind === 'vm' ? 'machine' : 'department'}`,
          );
        await assertIdle(ctx, { kind: 'firewall', workflowIds: [firewallWorkflowId(lf.filter.id)] });
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
    ),
    firewallApi.post(
      '/api/filters/:id/rules',
      'addRule: add a user rule to a filter (every problem of the rule is reported at once)',
      { params: IdParams, body: RuleBody, problems: [403, 404, 409], responses: RULE_ACCEPTED },
      async ({ params, body, ...call }) => putRule(call, params.id, null, body),
    ),
    firewallApi.put(
      '/api/filters/:id/rules/:ruleId',
      'updateRule: replace a user rule of a filter',
      { params: RuleParams, body: RuleBody, problems: [403, 404, 409], responses: RULE_ACCEPTED },
      async ({ params, body, ...call }) => putRule(call, params.id, params.ruleId, body),
    ),
    firewallApi.delete(
      '/api/filters/:id/rules/:ruleId',
      'deleteRule: remove a user rule from a filter',
      { params: RuleParams, problems: [403, 404, 409], responses: ACCEPTED },
      starting(({ params, ...call }) =>
        changeFilter(call, params.id, async (lf) => {
          await assertRuleOf(ctx, lf, params.ruleId);
          return { type: 'deleteRule', filterId: lf.filter.id, ruleId: params.ruleId };
        }),
      ),
    ),
    firewallApi.put(
      '/api/filters/:id/includes',
      'Set the custom filters a filter includes, in order',
      { params: IdParams, body: IncludesBody, problems: [403, 404, 409, 422], responses: ACCEPTED },
      starting(({ params, body, ...call }) =>
        changeFilter(call, params.id, async (lf) => {
          await checkIncludes(ctx, call.principal, lf, body.includes);
          return { type: 'setIncludes', filterId: lf.filter.id, includes: body.includes };
        }),
      ),
    ),
    firewallApi.post(
      '/api/filters/flush',
      "flushFilters: push the DB's filters to libvirt, only those that differ (admins; managers: theirs)",
      { body: FlushBody, problems: [403, 404, 409], responses: ACCEPTED },
      async ({ principal: p, body, ids, idempotencyKey }) => {
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
    ),
  ];
}
