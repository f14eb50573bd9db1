import { ApplicationFailure, patched } from '@temporalio/workflow';
import { db, dbUndo, failureMessage, hostActivities, longRunningActivity, runMachineOperation } from './saga';
import { FailureType, type DestroyMachineInput, type MachineOperationResult, libvirtNames } from './shared';

/**
 * Destroys a VM: graceful shutdown with a deadline, then force off; undefine (with NVRAM); delete its
 * disk; remove its filter and bindings, then its department's filter and the custom filters when nothing on
 * the host uses them any more; delete the row (with its filter rows) and emit `vms:delete`. Forward-only: every step
 * is "remove if present", so re-running a half-done destroy finishes it. A machine whose disk backs
 * linked clones is refused while they exist.
 */
export async function destroyMachine(input: DestroyMachineInput): Promise<MachineOperationResult> {
  return runMachineOperation(
    'destroy',
    input,
    async (saga) => {
      const m = await saga.step('validate', async () => {
        // One read (the machine, refused while linked clones use it); runs recorded before made two.
        if (patched('destroy-plan')) return db.planDestroy(input.machineId);
        const machine = await db.getMachine(input.machineId);
        if (machine && (await db.countLinkedClones(input.machineId)) > 0) {
          throw ApplicationFailure.create({
            type: FailureType.Refused,
            message: 'this machine backs linked clones: destroy them first',
            nonRetryable: true,
          });
        }
        return machine;
      });
      if (!m) return { machineId: input.machineId, status: 'destroyed', outcome: 'noop' as const };
      const host = hostActivities(m.hostName);
      const ref = { internalName: m.internalName, machineId: m.id };
      await saga.step('markDestroying', () =>
        db.setMachineStatus({
          operationId: input.operationId,
          actorId: input.actorId,
          machineId: m.id,
          status: 'destroying',
          requireNoLinkedClones: true,
        }),
      );
      const state = await host.getDomainState(ref);
      if (state === 'running') {
        const outcome = await saga.step('shutdown', () =>
          hostActivities(m.hostName, longRunningActivity).shutdownDomain({
            ...ref,
            timeoutSec: input.shutdownTimeoutSec ?? 30,
          }),
        );
        if (outcome === 'timeout') await saga.step('forceOff', () => host.forceOffDomain(ref));
      } else if (state !== 'absent' && state !== 'shutoff') {
        await saga.step('forceOff', () => host.forceOffDomain(ref));
      }
      await saga.step('undefineDomain', () => host.undefineDomain(ref));
      await saga.step('deleteVolume', () =>
        host.deleteVolume({ pool: m.storagePool, name: libvirtNames.volume(m.id) }),
      );
      // A machine made from an image has a first-boot seed volume (runs recorded before images had none).
      if (m.imageId && patched('seed-volume')) {
        await saga.step('deleteSeed', () => host.deleteSeed({ pool: m.storagePool, machineId: m.id }));
      }
      await saga.step('removeVmFilter', () => host.removeVmFilter({ name: m.filterName }));
      // Runs recorded before filters were pruned went straight on to the row (replay keeps them so).
      if (patched('prune-filters')) {
        // The department's filter and the custom filters, when no other filter on the host uses them.
        await saga.step('pruneFilters', () =>
          host.pruneFilters({
            candidates: [m.departmentFilterName, ...(m.filterIncludes ?? [])],
            cascade: true,
          }),
        );
      }
      await saga.step('deleteRecord', () =>
        db.deleteMachine({ operationId: input.operationId, actorId: input.actorId, machineId: m.id }),
      );
      return { machineId: m.id, status: 'destroyed', outcome: 'done' as const };
    },
    {
      // Nothing to undo: the machine stays `destroying`... unless a step failed for good, then it is
      // `failed` with the reason, and destroying it again finishes the job.
      async onFailure(err) {
        const m = await dbUndo.getMachine(input.machineId);
        if (m && m.status === 'destroying') {
          await dbUndo.setMachineStatus({
            operationId: input.operationId,
            actorId: input.actorId,
            machineId: input.machineId,
            status: 'failed',
            fields: { lastError: `destroy failed: ${failureMessage(err)}` },
            release: true,
          });
        }
      },
    },
  );
}
