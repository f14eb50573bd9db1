import { pushPlans } from './firewall-change';
import { db, runOperation } from './saga';
import { type FirewallResult, type FlushFiltersInput } from './shared';

/**
 * Pushes the database's filters to libvirt (one department's — its filter, its machines', the custom ones they
 * include — or all), in dependency order, redefining only those whose content differs: a flush after a flush
 * pushes nothing. A failure part-way puts back exactly what each host had. Records `firewall:flushed`.
 */
export async function flushFilters(input: FlushFiltersInput): Promise<FirewallResult> {
  const departmentId = input.departmentId ?? null;
  return runOperation(
    { ...input, type: 'flush_filters', resource: 'firewall', resourceId: departmentId },
    null,
    { ...input, departmentId },
    async (saga) => {
      const plans = await saga.step('plan', () => db.planFilterPush({ departmentId }));
      const result = await pushPlans(saga, plans);
      await saga.step('record', () =>
        db.recordFlush({ operationId: input.operationId, actorId: input.actorId, departmentId, ...result }),
      );
      return result;
    },
  );
}
