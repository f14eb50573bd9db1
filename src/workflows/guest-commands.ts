import {
  ActivityFailure,
  ApplicationFailure,
  proxyActivities,
  TimeoutFailure,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { GuestActivities } from '../activities/guest';
import { db, runOperation, type Saga } from './saga';
import {
  FailureType,
  GUEST_EXEC_MAX_OUTPUT_BYTES,
  GuestFailureType,
  hostTaskQueue,
  type GuestCommandOutcome,
  type GuestExecInput,
  type GuestExecResult,
  type GuestKillInput,
  type GuestServiceInput,
  type GuestReadOutcome,
  type OperationContext,
  type ReadGuestInput,
} from './shared';

/** How long vmflow's agent gets to answer a kill or a service action (systemctl under TCG is slow). */
const AGENT_COMMAND_TIMEOUT_MS = 60_000;

/** Guest activities on a host's queue, with a preset. */
function guestActivities(hostName: string, preset: ActivityOptions) {
  return proxyActivities<GuestActivities>({ ...preset, taskQueue: hostTaskQueue(hostName) });
}

/** A guest's answer within `ms`, or a failure: one attempt (a read is asked again by its caller, not here). */
const once = (ms: number): ActivityOptions => ({
  startToCloseTimeout: ms,
  // The host's worker down counts against the bound too: the caller gets its timeout, not a hang.
  scheduleToCloseTimeout: ms,
  retry: { maximumAttempts: 1 },
});

/**
 * Reads a running guest on its host, for the API's GET routes (not an operation: nothing changes, nothing is
 * recorded): the QEMU guest agent's information, or vmflow's agent's processes, services or packages.
 * Bounded by `timeoutMs` plus the host's margin; a guest that cannot answer, or a host whose worker did not
 * run the read in time, is an outcome (`ok: false`, a {@link GuestFailureType}), not a failed workflow.
 */
export async function readGuest(input: ReadGuestInput): Promise<GuestReadOutcome> {
  try {
    return await guestActivities(input.hostName, once(input.timeoutMs + 5_000)).readGuest(input);
  } catch (err) {
    if (err instanceof ActivityFailure && err.cause instanceof TimeoutFailure)
      return {
        ok: false,
        type: GuestFailureType.Timeout,
        message: "the machine's host did not answer in time",
      };
    throw err;
  }
}

/**
 * The shape every guest command shares: check that the machine exists and runs, run `command` on its host,
 * store what it gave as the operation's result. A guest command cannot be undone (a program ran, a signal was
 * sent): its steps register no compensation, and a failure leaves the machine as it was.
 */
async function guestOperation<R extends object>(
  type: 'guest_exec' | 'guest_kill' | 'guest_service',
  input: OperationContext & { machineId: string },
  recorded: Record<string, unknown>,
  command: (saga: Saga, m: { hostName: string; internalName: string }) => Promise<R>,
): Promise<GuestCommandOutcome<R>> {
  return runOperation({ ...input, type }, input.machineId, recorded, async (saga) => {
    const m = await saga.step('validate', async () => {
      const machine = await db.getMachine(input.machineId);
      if (!machine)
        throw ApplicationFailure.create({
          type: FailureType.NotFound,
          message: 'machine not found',
          nonRetryable: true,
        });
      if (machine.status !== 'running')
        throw ApplicationFailure.create({
          type: GuestFailureType.Unavailable,
          message: `the machine is ${machine.status}, not running`,
          nonRetryable: true,
        });
      return machine;
    });
    const result = await command(saga, m);
    await saga.step('recordResult', () =>
      db.setOperationResult({ operationId: input.operationId, result: result as Record<string, unknown> }),
    );
    return { machineId: m.id, result };
  });
}

/**
 * Runs a program in the guest through the QEMU guest agent (`guest-exec`): started once (never retried: a
 * program must not run twice), then waited for until it exits or `timeoutS` passes (it is then killed); its
 * exit code and output, each stream capped at {@link GUEST_EXEC_MAX_OUTPUT_BYTES}, are the operation's result.
 * A non-zero exit is a result, not a failure. The sealed standard input stays out of the operation row.
 */
export async function guestExec(input: GuestExecInput): Promise<GuestCommandOutcome<GuestExecResult>> {
  const { stdin: _sealed, ...recorded } = input;
  return guestOperation('guest_exec', input, recorded, async (saga, m) => {
    const ref = { internalName: m.internalName, machineId: input.machineId };
    const started = await saga.step('startProgram', () =>
      guestActivities(m.hostName, {
        startToCloseTimeout: '1 minute',
        retry: { maximumAttempts: 1 },
      }).guestExecStart({
        ...ref,
        command: input.command,
        args: input.args,
        ...(input.stdin ? { stdin: input.stdin } : {}),
      }),
    );
    // The deadline is fixed once, in workflow time: a retried wait keeps it.
    const deadlineAt = new Date(Date.now() + input.timeoutS * 1000).toISOString();
    return saga.step('waitProgram', () =>
      guestActivities(m.hostName, {
        startToCloseTimeout: (input.timeoutS + 60) * 1000,
        heartbeatTimeout: '10 seconds',
        retry: { initialInterval: '1 second', maximumAttempts: 5 },
      }).guestExecWait({ ...ref, pid: started.pid, deadlineAt, maxOutputBytes: GUEST_EXEC_MAX_OUTPUT_BYTES }),
    );
  });
}

/** Signals a process in the guest through vmflow's agent (`process.kill`). */
export async function guestKillProcess(input: GuestKillInput): Promise<GuestCommandOutcome> {
  return guestOperation('guest_kill', input, { ...input }, async (saga, m) => {
    await saga.step('killProcess', () =>
      guestActivities(m.hostName, once(AGENT_COMMAND_TIMEOUT_MS + 10_000)).agentRequest({
        machineId: input.machineId,
        command: 'process.kill',
        args: { pid: input.pid, signal: input.signal },
        timeoutMs: AGENT_COMMAND_TIMEOUT_MS,
      }),
    );
    return { pid: input.pid, signal: input.signal };
  });
}

/** Starts, stops or restarts a service in the guest through vmflow's agent; the result is its state after. */
export async function guestServiceAction(input: GuestServiceInput): Promise<GuestCommandOutcome> {
  return guestOperation('guest_service', input, { ...input }, async (saga, m) => {
    const after = await saga.step(`${input.action}Service`, () =>
      guestActivities(m.hostName, once(AGENT_COMMAND_TIMEOUT_MS + 10_000)).agentRequest({
        machineId: input.machineId,
        command: `service.${input.action}`,
        args: { name: input.name },
        timeoutMs: AGENT_COMMAND_TIMEOUT_MS,
      }),
    );
    return { name: input.name, action: input.action, state: after.state };
  });
}
