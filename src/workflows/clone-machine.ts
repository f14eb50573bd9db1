import { provisionMachine, recordMachine } from './provision';
import { db, dbUndo, failureMessage, runMachineOperation } from './saga';
import { type CloneMachineInput, type MachineOperationResult } from './shared';

/**
 * Clones an off VM into a new one in the same department, with the same template and hardware, a new
 * UUID, MAC and filter: a full copy of its disk, or a linked clone (a qcow2 overlay on the source's disk;
 * the source is then protected from destroy, start and disk growth while clones exist). The source is
 * `cloning` meanwhile and `off` again afterwards, whatever happens.
 */
export async function cloneMachine(input: CloneMachineInput): Promise<MachineOperationResult> {
  return runMachineOperation(
    'clone',
    input,
    async (saga) => {
      const { source, plan, guestSecrets } = await saga.step('validate', () => db.planClone(input));
      const sourceRef = { operationId: input.operationId, actorId: input.actorId, machineId: source.id };
      await saga.step(
        'lockSource',
        () => db.setMachineStatus({ ...sourceRef, status: 'cloning', from: ['off'] }),
        // Only if this operation still holds the source (the lock may never have been taken).
        () =>
          db.setMachineStatus({
            ...sourceRef,
            status: 'off',
            release: true,
            onlyIfHeldBy: input.operationId,
          }),
      );
      await recordMachine(saga, input, plan, {
        departmentId: source.departmentId,
        templateId: source.templateId,
        sourceMachineId: source.id,
        linkedClone: input.linked,
      });
      const {
        diskPath: path,
        uuid,
        mac,
      } = await provisionMachine(saga, {
        ...input,
        plan,
        disk: input.linked ? { backingPath: source.diskPath! } : { cloneFromPath: source.diskPath! },
        ...(guestSecrets ? { guestSecrets } : {}),
      });
      // The source is released first: whatever happens to the clone after this, the source is unharmed.
      await saga.step('unlockSource', () =>
        db.setMachineStatus({ ...sourceRef, status: 'off', release: true }),
      );
      await saga.step('finalize', () =>
        db.setMachineStatus({
          operationId: input.operationId,
          actorId: input.actorId,
          machineId: input.machineId,
          status: 'off',
          from: ['creating'],
          fields: { libvirtUuid: uuid, macAddress: mac, diskPath: path },
        }),
      );
      return { machineId: input.machineId, status: 'off' };
    },
    {
      async onFailure(err, cancelled) {
        const base = { operationId: input.operationId, actorId: input.actorId, machineId: input.machineId };
        if (cancelled) await dbUndo.deleteMachine(base);
        else await dbUndo.failMachine({ ...base, error: failureMessage(err) });
      },
    },
  );
}
