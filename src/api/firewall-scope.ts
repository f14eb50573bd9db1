/**
 * What the firewall routes (filters, department policy and services, a machine's services and filters)
 * share: loading a filter the caller may see or change, the scope a change is serialized in, and
 * starting a `firewallChange` there.
 *
 * Changes of one scope — a department (its filter, its VMs' filters, its policy and services) or a custom
 * filter — are serialized by the workflow id: a second one waits for the first (up to
 * {@link SCOPE_WAIT_MS}), then 409.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { Brackets, type EntityManager } from 'typeorm';
import { OperationConflictError } from '../client/errors';
import { FirewallFilter, FirewallRule } from '../entities/firewall';
import { Machine } from '../entities/machine';
import { findService } from '../firewall/services';
import {
  firewallWorkflowId,
  type FirewallChange,
  type FirewallChangeInput,
  type ServiceActionName,
} from '../workflows/shared';
import { type ApiContext } from './context';
import { conflictFromOperation, forbidden, notFound, refused } from './errors';
import { type Caller } from './handler';
import { type OperationView } from './operations';
import { type Principal } from './permissions';
import { canEditFilter, canViewFilter, mayInclude } from './permissions-firewall';

/** How long a change waits for a running change of the same scope before answering 409. */
export const SCOPE_WAIT_MS = 30_000;

/** A filter with its machine (for `vm` filters), as permissions need it. */
export interface LoadedFilter {
  filter: FirewallFilter;
  machine: Machine | null;
}

/** Where a change of a filter is serialized, and whose rooms and operations it belongs to. */
export interface Scope {
  scopeId: string;
  departmentId: string | null;
}

/** The scope of a filter: its own for a custom filter, its department's for the others. */
export function scopeOf({ filter, machine }: LoadedFilter): Scope {
  if (filter.kind === 'custom') return { scopeId: filter.id, departmentId: filter.departmentId };
  const departmentId = filter.kind === 'vm' ? machine!.departmentId : filter.departmentId!;
  return { scopeId: departmentId, departmentId };
}

/** A department's scope (its filter, its VMs' filters, its policy and services). */
export const departmentScope = (departmentId: string): Scope => ({ scopeId: departmentId, departmentId });

/** A filter with its machine; null when unknown (or a VM filter whose machine is gone). */
export async function loadFilter(m: EntityManager, id: string): Promise<LoadedFilter | null> {
  const filter = await m.findOne(FirewallFilter, { where: { id } });
  if (!filter) return null;
  if (filter.kind !== 'vm') return { filter, machine: null };
  const machine = filter.machineId ? await m.findOne(Machine, { where: { id: filter.machineId } }) : null;
  // A VM filter whose machine is gone is on its way out with it: it does not exist for callers.
  return machine ? { filter, machine } : null;
}

/** The filter, when the caller may see it; else 404 (whether it exists or not). */
export async function visibleFilter(
  ctx: ApiContext,
  p: Principal,
  id: string,
  field?: string,
): Promise<LoadedFilter> {
  const lf = await loadFilter(ctx.ds.manager, id);
  if (!lf || !canViewFilter(p, lf)) throw notFound('filter', field);
  return lf;
}

/** The filter, when the caller may change it: 404 when it may not see it, 403 when it may only see it. */
export async function editableFilter(ctx: ApiContext, p: Principal, id: string): Promise<LoadedFilter> {
  const lf = await visibleFilter(ctx, p, id);
  if (!canEditFilter(p, lf)) throw forbidden('you may read this filter but not change it');
  return lf;
}

/** A user rule of an editable filter, else 404. */
export async function assertRuleOf(ctx: ApiContext, lf: LoadedFilter, ruleId: string): Promise<void> {
  const exists = await ctx.ds
    .getRepository(FirewallRule)
    .exists({ where: { id: ruleId, filterId: lf.filter.id } });
  if (!exists) throw notFound('rule');
}

/** A catalogue service, else 404. */
export function serviceOf(serviceId: string) {
  const s = findService(serviceId);
  if (!s) throw notFound('service', 'serviceId');
  return s;
}

/** Refuses a filter a VM (or a filter of `scopeDepartment`) may not include. */
export function assertIncludableByVm(departmentId: string, target: FirewallFilter): void {
  if (!mayInclude(departmentId, target))
    throw refused(
      target.kind !== 'custom'
        ? 'only custom filters can be applied to a VM'
        : "a VM can use only global custom filters or its own department's",
      'filterId',
    );
}

/** Is a workflow running under this id? */
async function isRunning(ctx: ApiContext, workflowId: string): Promise<boolean> {
  try {
    const d = await ctx.temporal.workflow.getHandle(workflowId).describe();
    return d.status.name === 'RUNNING';
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return false;
    throw err;
  }
}

/**
 * Waits (bounded) for the running change of a scope to finish, so that a change computed from the current
 * state (a VM filter's includes) reads the state that change leaves. startResource serializes again anyway.
 */
export async function settle(ctx: ApiContext, workflowId: string, ms = SCOPE_WAIT_MS): Promise<void> {
  if (!(await isRunning(ctx, workflowId))) return;
  await Promise.race([
    ctx.temporal.workflow
      .getHandle(workflowId)
      .result()
      .catch(() => undefined),
    new Promise((r) => setTimeout(r, ms).unref()),
  ]);
}

/** Starts a firewallChange on a scope (waiting for a running one of the same scope). */
export async function startChange(
  ctx: ApiContext,
  { principal: p, ids, idempotencyKey }: Caller,
  scope: Scope,
  change: FirewallChange,
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

/**
 * Toggles a service for a department (the default of its VMs) or for one VM: a `toggleService` change
 * in the department's scope.
 */
export function toggleService(
  ctx: ApiContext,
  caller: Caller,
  target: { scope: 'department' | 'vm'; scopeId: string; departmentId: string },
  serviceId: string,
  body: { action: ServiceActionName; enabled: boolean | null },
): Promise<OperationView> {
  const service = serviceOf(serviceId);
  return startChange(ctx, caller, departmentScope(target.departmentId), {
    type: 'toggleService',
    scope: target.scope,
    scopeId: target.scopeId,
    serviceId: service.id,
    action: body.action,
    enabled: body.enabled,
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
