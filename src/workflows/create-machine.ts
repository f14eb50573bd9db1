import { provisionMachine, recordMachine } from './provision';
import { db, dbUndo, failureMessage, hostActivities, hostUndo, runOperation } from './saga';
import { type CreateMachineInput, type MachineOperationResult } from './shared';

/**
 * Creates a VM: validate, record it (`creating`), create its disk, ensure its department's filter and
 * create its own, define the domain, optionally start it, mark it `off`/`running`. Any failure or a
 * cancellation removes every hypervisor resource it made; a failed create keeps its row as `failed` with
 * the reason, a cancelled one is deleted.
 */
export async function createMachine(input: CreateMachineInput): Promise<MachineOperationResult> {
  const { guestSecrets: _sealed, ...recorded } = input; // sealed anyway; kept out of the operation row
  return runOperation(
    { ...input, type: 'create' },
    input.machineId,
    recorded as unknown as Record<string, unknown>,
    async (saga) => {
      const plan = await saga.step('validate', () => db.planCreate(input));
      const host = hostActivities(plan.host.name);
      await recordMachine(saga, input, plan, {
        departmentId: input.departmentId,
        templateId: input.templateId,
        guestSecrets: input.guestSecrets,
      });
      const { diskPath: path, uuid, mac, domainRef } = await provisionMachine(saga, { ...input, plan });
      if (input.start) {
        await saga.step(
          'startDomain',
          () => host.startDomain(domainRef),
          () => hostUndo(plan.host.name).forceOffDomain(domainRef),
        );
      }
      const status = input.start ? 'running' : 'off';
      await saga.step('finalize', () =>
        db.setMachineStatus({
          operationId: input.operationId,
          actorId: input.actorId,
          machineId: input.machineId,
          status,
          from: ['creating'],
          action: input.start ? 'power_on' : 'update',
          fields: { libvirtUuid: uuid, macAddress: mac, diskPath: path },
        }),
      );
      return { machineId: input.machineId, status };
    },
    {
      // Both are no-ops when the row was never written (validation failed, or the name was taken).
      async onFailure(err, cancelled) {
        if (cancelled) {
          await dbUndo.deleteMachine({
            operationId: input.operationId,
            actorId: input.actorId,
            machineId: input.machineId,
          });
        } else {
          await dbUndo.failMachine({
            operationId: input.operationId,
            actorId: input.actorId,
            machineId: input.machineId,
            error: failureMessage(err),
          });
        }
      },
    },
  );
}
