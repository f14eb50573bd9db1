import { ApplicationFailure } from '@temporalio/workflow';
import type { MachineStatus } from '../entities/machine-status';
import {
  db,
  hostActivities,
  hostUndo,
  longRunningActivity,
  markMachineStatus,
  runMachineOperation,
} from './saga';
import {
  FailureType,
  POWER_FROM,
  type MachineOperationResult,
  type PowerAction,
  type PowerMachineInput,
} from './shared';

/** For each action: the statuses it starts from, the transient status, the final status and the event. */
const RULES: Record<PowerAction, { via?: MachineStatus; to: MachineStatus; event: string }> = {
  start: { via: 'starting', to: 'running', event: 'power_on' },
  shutdown: { via: 'stopping', to: 'off', event: 'power_off' },
  poweroff: { via: 'stopping', to: 'off', event: 'power_off' },
  reboot: { to: 'running', event: 'reboot' },
  reset: { to: 'running', event: 'reset' },
  suspend: { to: 'suspended', event: 'suspend' },
  resume: { to: 'running', event: 'resume' },
};

/**
 * Power actions: start, shutdown (graceful, with a deadline and a clear outcome: `done` or `timeout`,
 * in which case the machine stays running), poweroff (force), reboot, reset, suspend, resume.
 * A failure puts the machine back in the status it had.
 */
export async function powerMachine(input: PowerMachineInput): Promise<MachineOperationResult> {
  const rule = { ...RULES[input.action], from: [...POWER_FROM[input.action]] };
  return runMachineOperation('power', input, async (saga) => {
    const m = await saga.step('validate', async () => {
      const machine = await db.getMachine(input.machineId);
      if (!machine)
        throw ApplicationFailure.create({
          type: FailureType.NotFound,
          message: 'machine not found',
          nonRetryable: true,
        });
      if (!rule.from.includes(machine.status)) {
        throw ApplicationFailure.create({
          type: FailureType.IllegalTransition,
          message: `cannot ${input.action} a machine that is ${machine.status}`,
          nonRetryable: true,
          details: [{ status: machine.status }],
        });
      }
      if (
        input.action === 'start' &&
        machine.linkedClone === false &&
        (await db.countLinkedClones(machine.id)) > 0
      ) {
        throw ApplicationFailure.create({
          type: FailureType.Refused,
          message: 'this machine backs linked clones; starting it would change their base disk',
          nonRetryable: true,
        });
      }
      return machine;
    });
    const host = hostActivities(m.hostName);
    const undo = hostUndo(m.hostName);
    const ref = { internalName: m.internalName, machineId: m.id };
    const base = { operationId: input.operationId, actorId: input.actorId, machineId: m.id };
    const previous = m.status;
    if (rule.via) {
      await markMachineStatus(saga, {
        name: 'markTransient',
        base,
        status: rule.via,
        from: rule.from,
        previous,
        requireNoLinkedClones: input.action === 'start',
      });
    }
    let outcome: 'done' | 'timeout' = 'done';
    switch (input.action) {
      case 'start':
        await saga.step(
          'startDomain',
          () => host.startDomain(ref),
          () => undo.forceOffDomain(ref),
        );
        break;
      case 'shutdown':
        outcome = await saga.step('shutdownDomain', () =>
          hostActivities(m.hostName, longRunningActivity).shutdownDomain({
            ...ref,
            timeoutSec: input.shutdownTimeoutSec ?? 60,
          }),
        );
        break;
      case 'poweroff':
        await saga.step('forceOffDomain', () => undo.forceOffDomain(ref));
        break;
      case 'reboot':
        await saga.step('rebootDomain', () => host.rebootDomain(ref));
        break;
      case 'reset':
        await saga.step('resetDomain', () => host.resetDomain(ref));
        break;
      case 'suspend':
        await saga.step(
          'suspendDomain',
          () => undo.suspendDomain(ref),
          () => undo.resumeDomain(ref),
        );
        break;
      case 'resume':
        await saga.step(
          'resumeDomain',
          () => undo.resumeDomain(ref),
          () => undo.suspendDomain(ref),
        );
        break;
    }
    const final = outcome === 'timeout' ? previous : rule.to;
    await saga.step('finalize', () =>
      db.setMachineStatus({
        ...base,
        status: final,
        action: outcome === 'timeout' ? 'update' : rule.event,
        // Pending hardware applies at the next boot: once the machine is off or freshly started, nothing is pending.
        ...(final === 'off' || (input.action === 'start' && outcome === 'done')
          ? { fields: { pendingHardware: null } }
          : {}),
      }),
    );
    return { machineId: m.id, status: final, outcome };
  });
}
