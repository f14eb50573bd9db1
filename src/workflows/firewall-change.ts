import type { FilterPushPlan } from '../activities/db-firewall';
import { db, dbUndo, hostActivities, hostUndo, runOperation, type Saga } from './saga';
import { type FirewallChangeInput, type FirewallResult } from './shared';

/**
 * Pushes compiled filters to each host of a plan, each push undone by putting back exactly what libvirt had
 * before it (read first: a push that fails after defining half its filters is undone as well as one that
 * succeeded). Shared by firewallChange and flushFilters.
 */
export async function pushPlans(saga: Saga, plans: FilterPushPlan[]): Promise<FirewallResult> {
  const result: FirewallResult = { pushed: [], unchanged: [] };
  for (const plan of plans) {
    if (plan.filters.length === 0) continue;
    const host = hostActivities(plan.hostName);
    const undo = hostUndo(plan.hostName);
    const before = await saga.step(`snapshot ${plan.hostName}`, () =>
      host.readFilters({ names: plan.filters.map((f) => f.spec.name) }),
    );
    const outcome = await saga.step(
      `push ${plan.hostName}`,
      () => host.pushFilters({ filters: plan.filters }),
      // In reverse: the filters that reference others first, so a filter this push created is unused when removed.
      () => undo.restoreFilters({ filters: [...before].reverse() }),
    );
    result.pushed.push(...outcome.pushed);
    result.unchanged.push(...outcome.unchanged);
  }
  return result;
}

/**
 * Removes, on each host, the candidates that nothing uses any more; undone by defining them again exactly as
 * they were (the plan reads them before anything is removed).
 */
export async function prunePlans(saga: Saga, hostNames: string[], candidates: string[]): Promise<void> {
  if (candidates.length === 0) return;
  for (const hostName of hostNames) {
    const host = hostActivities(hostName);
    const doomed = await saga.step(`planPrune ${hostName}`, () =>
      host.planPrune({ candidates, cascade: true }),
    );
    if (doomed.length === 0) continue;
    await saga.step(
      `prune ${hostName}`,
      () => host.pruneFilters({ candidates: doomed.map((d) => d.name), cascade: false }),
      () => hostUndo(hostName).restoreFilters({ filters: [...doomed].reverse() }),
    );
  }
}

/**
 * One firewall change (a rule added, changed or removed, includes, a department preset, a service toggle),
 * serialized per scope (workflow id `firewall-<scopeId>`): write it to the database (undo: put back what it
 * replaced), push the filters whose compiled content changed to every host that uses them, only where
 * libvirt differs (undo: restore exactly what each host had), then prune the custom filters it stopped
 * including where nothing uses them. On failure or cancellation libvirt and the database end as before.
 */
export async function firewallChange(input: FirewallChangeInput): Promise<FirewallResult> {
  const c = input.change;
  // Progress events go to the department's managers: the scope is the department, but for a custom filter.
  const departmentId = 'filterId' in c && c.filterId === input.scopeId ? null : input.scopeId;
  return runOperation(
    { ...input, type: 'firewall', resource: 'firewall', resourceId: input.scopeId },
    null,
    { ...input, departmentId },
    async (saga) => {
      const applied = await saga.step(
        'apply',
        () => db.applyFirewallChange(input),
        () => dbUndo.revertFirewallChange({ operationId: input.operationId, actorId: input.actorId }),
      );
      const plans = await saga.step('plan', () => db.planFilterPush({ filterIds: applied.filterIds }));
      const result = await pushPlans(saga, plans);
      await prunePlans(
        saga,
        plans.map((p) => p.hostName),
        applied.pruneCandidates,
      );
      return result;
    },
  );
}
