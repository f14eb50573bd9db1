import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { DbActivities } from '../activities/db';
import type { FirewallDbActivities } from '../activities/db-firewall';
import type { ImageDbActivities } from '../activities/db-images';
import type { ImageHostActivities } from '../activities/images';
import type { NetworkDbActivities } from '../activities/db-network';
import type { NetworkActivities } from '../activities/network';
import type { LibvirtActivities } from '../activities/libvirt';
import type { NwfilterActivities } from '../activities/nwfilter';
import type { SeedActivities } from '../activities/seed';
import type { StorageActivities } from '../activities/storage';
import type { MachineStatus } from '../entities/machine-status';
import type { OperationResource, OperationType } from '../entities/operation';
import {
  FailureType,
  HARDWARE_FROM,
  hostTaskQueue,
  progressQuery,
  type OperationContext,
  type StepRecord,
} from './shared';

// Activity-option presets, named by latency.
/** Database and event writes on the control queue: short, retried with backoff. */
export const dbActivity = {
  startToCloseTimeout: '30 seconds',
  heartbeatTimeout: '10 seconds',
  // A write in flight commits anyway: compensations must see it, so wait for it to finish.
  cancellationType: 'WAIT_CANCELLATION_COMPLETED',
  retry: {
    initialInterval: '500 milliseconds',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 20,
  },
} as const satisfies ActivityOptions;
/** A libvirt call on the host queue. */
export const hypervisorActivity = {
  startToCloseTimeout: '2 minutes',
  // Every hypervisor activity heartbeats (activities/retry.ts): a dead worker is noticed in seconds.
  heartbeatTimeout: '10 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '30 seconds',
    maximumAttempts: 10,
  },
  // Cleanup must finish before the compensations start (never delete a volume a clone is still writing).
  cancellationType: 'WAIT_CANCELLATION_COMPLETED',
} as const satisfies ActivityOptions;
/** Storage copies and graceful shutdowns: long, heartbeating. */
export const longRunningActivity = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '10 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    maximumAttempts: 10,
  },
  cancellationType: 'WAIT_CANCELLATION_COMPLETED',
} as const satisfies ActivityOptions;
/**
 * Compensations: retried until they succeed (a failing undo keeps the workflow open and visible in the
 * Web UI rather than leaving an orphan behind).
 */
export const compensationActivity = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
} as const satisfies ActivityOptions;

/** Every activity of the control queue (database and events). */
type ControlActivities = DbActivities & NetworkDbActivities & FirewallDbActivities & ImageDbActivities;
/** Control-queue activities (DB and events). */
export const db = proxyActivities<ControlActivities>(dbActivity);
/** The same, for undos and the closing writes of an operation: retried until the database answers. */
export const dbUndo = proxyActivities<ControlActivities>(compensationActivity);
/** Step records go through local activities: cheap, same worker, still durable. */
const progress = proxyLocalActivities<Pick<DbActivities, 'recordStep' | 'recordSteps'>>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 20, maximumInterval: '10 seconds' },
});

type HostActivities = LibvirtActivities &
  StorageActivities &
  NwfilterActivities &
  NetworkActivities &
  ImageHostActivities &
  SeedActivities;

/** Hypervisor activities of a host, with the given preset. */
export function hostActivities(hostName: string, preset: ActivityOptions = hypervisorActivity) {
  return proxyActivities<HostActivities>({ ...preset, taskQueue: hostTaskQueue(hostName) });
}

/** Hypervisor activities of a host for undos: retried until they succeed (or fail for good). */
export function hostUndo(hostName: string) {
  return hostActivities(hostName, compensationActivity);
}

/** The message of a failure, unwrapped from activity failures. */
export function failureMessage(err: unknown): string {
  if (err instanceof ActivityFailure && err.cause) return failureMessage(err.cause);
  if (err instanceof Error) return err.message;
  return String(err);
}

/** Rethrows a failure as a typed, non-retryable ApplicationFailure the caller can match on. */
export function toOperationFailure(err: unknown): ApplicationFailure {
  if (isCancellation(err)) {
    return ApplicationFailure.create({
      type: FailureType.Cancelled,
      message: 'operation cancelled',
      nonRetryable: true,
    });
  }
  let cause: unknown = err;
  while (cause instanceof ActivityFailure && cause.cause) cause = cause.cause;
  if (cause instanceof ApplicationFailure) {
    return ApplicationFailure.create({
      type: cause.type ?? 'OperationFailed',
      message: cause.message,
      details: cause.details ? [...cause.details] : undefined,
      nonRetryable: true,
    });
  }
  return ApplicationFailure.create({
    type: 'OperationFailed',
    message: failureMessage(err),
    nonRetryable: true,
  });
}

/**
 * A saga (STYLE.md): steps run forward; each step's undo is registered **before** the step runs, because
 * an activity can succeed in libvirt and then die before reporting it. That is safe because every undo is
 * idempotent and only removes what carries this machine's deterministic name and id. On failure or
 * cancellation the undos run in reverse, shielded from cancellation.
 */
export class Saga {
  readonly steps: StepRecord[] = [];
  private readonly undos: Array<{ name: string; undo: () => Promise<unknown> }> = [];
  /** Records of finished steps not written yet: they go with the next write ({@link mergeRecords}). */
  private unwritten: StepRecord[] = [];

  /**
   * @param mergeRecords Write a step's end (`completed`, `compensated`) with the next record or with the
   *   operation's last write ({@link takeUnwritten}), one write where there were two. False replays runs
   *   recorded before, which wrote every record at once.
   */
  constructor(
    private readonly operationId: string,
    readonly machineId: string | null,
    private readonly mergeRecords = false,
  ) {
    setHandler(progressQuery, () => this.steps);
  }

  /** Records a step status (never cancelled). */
  async record(name: string, status: StepRecord['status'], error?: string): Promise<void> {
    const entry: StepRecord = { name, status, at: new Date().toISOString(), ...(error ? { error } : {}) };
    this.steps.push(entry);
    if (this.mergeRecords && (status === 'completed' || status === 'compensated')) {
      this.unwritten.push(entry);
      return;
    }
    const steps = [...this.takeUnwritten(), entry];
    const ids = { operationId: this.operationId, machineId: this.machineId };
    // Best-effort: a progress record that cannot be written (database down for minutes) is logged; it
    // must never keep a step or a compensation from running.
    try {
      await CancellationScope.nonCancellable(() =>
        this.mergeRecords
          ? progress.recordSteps({ ...ids, steps })
          : progress.recordStep({ ...ids, step: name, ...entry }),
      );
    } catch (err) {
      log.warn('progress record lost', { step: name, status, error: failureMessage(err) });
    }
  }

  /** The records not written yet (handed to the operation's last write), and forgets them here. */
  takeUnwritten(): StepRecord[] {
    const steps = this.unwritten;
    this.unwritten = [];
    return steps;
  }

  /** Runs one step; `undo` (if any) is what removes its effect. */
  async step<T>(name: string, run: () => Promise<T>, undo?: () => Promise<unknown>): Promise<T> {
    if (undo) this.undos.unshift({ name, undo });
    await this.record(name, 'started');
    try {
      const result = await run();
      await this.record(name, 'completed');
      return result;
    } catch (err) {
      await this.record(name, 'failed', failureMessage(err));
      throw err;
    }
  }

  /** Runs the registered undos in reverse order. An undo that fails for good is logged and recorded. */
  async compensate(): Promise<string[]> {
    const failed: string[] = [];
    await CancellationScope.nonCancellable(async () => {
      for (const { name, undo } of this.undos) {
        await this.record(name, 'compensating');
        try {
          await undo();
          await this.record(name, 'compensated');
        } catch (err) {
          log.error('compensation failed', { step: name, error: failureMessage(err) });
          await this.record(name, 'failed', `compensation failed: ${failureMessage(err)}`);
          failed.push(name);
        }
      }
    });
    return failed;
  }
}

/** How an operation ends when its body throws. */
export interface OperationHooks {
  /** Runs after the compensations (non-cancellable): e.g. mark the machine failed, or delete its row. */
  onFailure?: (err: unknown, cancelled: boolean, failedUndos: string[]) => Promise<void>;
}

/**
 * Runs a machine operation: records it, runs `body` as a saga, and on failure or cancellation compensates,
 * runs `onFailure`, records the outcome and throws a typed failure. The operation row always ends in
 * succeeded, failed or cancelled.
 */
export async function runOperation<T>(
  op: {
    operationId: string;
    actorId: string | null;
    idempotencyKey?: string | null;
    type: OperationType;
    /** For operations on networks and filters: what they work on (their events are `<resource>:*`). */
    resource?: OperationResource;
    resourceId?: string | null;
  },
  machineId: string | null,
  input: Record<string, unknown>,
  body: (saga: Saga) => Promise<T>,
  hooks: OperationHooks = {},
): Promise<T> {
  // Runs recorded before merged bookkeeping wrote every step record at once, and released the machine and
  // finished the operation in two writes (replay keeps them so).
  const merged = patched('merged-bookkeeping');
  const saga = new Saga(op.operationId, machineId, merged);
  let result: T;
  try {
    // Never cancelled halfway: the operation row must exist whatever happens next.
    await CancellationScope.nonCancellable(() =>
      db.beginOperation({
        operationId: op.operationId,
        type: op.type,
        machineId,
        resource: op.resource ?? 'vms',
        resourceId: op.resourceId ?? machineId,
        actorId: op.actorId,
        idempotencyKey: op.idempotencyKey ?? null,
        input,
        at: new Date().toISOString(),
      }),
    );
    result = await body(saga);
  } catch (err) {
    const cancelled = isCancellation(err);
    const failedUndos = await saga.compensate();
    const failure = toOperationFailure(err);
    await CancellationScope.nonCancellable(async () => {
      await hooks.onFailure?.(err, cancelled, failedUndos);
      const suffix = failedUndos.length ? ` (compensation failed: ${failedUndos.join(', ')})` : '';
      await finishOperation(saga, op.operationId, merged, {
        status: cancelled ? 'cancelled' : 'failed',
        error: failure.message + suffix,
      });
    });
    throw failure;
  }
  // The work is done: a cancellation arriving now must not undo a finished machine.
  await CancellationScope.nonCancellable(() =>
    finishOperation(saga, op.operationId, merged, { status: 'succeeded' }),
  );
  return result;
}

/**
 * The last writes of an operation: the end of its hold on its machine (if any), then its outcome. Merged
 * (`merged`): one write that also carries the step records not written yet.
 */
async function finishOperation(
  saga: Saga,
  operationId: string,
  merged: boolean,
  outcome: { status: 'succeeded' | 'failed' | 'cancelled'; error?: string },
): Promise<void> {
  const { machineId } = saga;
  if (merged) {
    await dbUndo.finishOperation({
      operationId,
      ...outcome,
      at: new Date().toISOString(),
      releaseMachineId: machineId,
      machineId,
      steps: saga.takeUnwritten(),
    });
    return;
  }
  if (machineId) await dbUndo.releaseMachine({ machineId, operationId });
  await dbUndo.finishOperation({ operationId, ...outcome, at: new Date().toISOString() });
}

/**
 * {@link runOperation} for an operation on one machine (`vms:*` events, workflow id `vm-<machineId>`): the
 * input is recorded as the operation's input, and the machine's hold is released at the end.
 */
export function runMachineOperation<T>(
  type: OperationType,
  input: OperationContext & { machineId: string },
  body: (saga: Saga) => Promise<T>,
  hooks?: OperationHooks,
): Promise<T> {
  return runOperation({ ...input, type }, input.machineId, { ...input }, body, hooks);
}

/**
 * {@link runOperation} for an operation on one network (`networks:*` events): the input is recorded as the
 * operation's input. `body` gets `release`, which ends the operation's hold on the network row (never
 * cancelled): the last write of a successful change, after which its undos no longer apply. On failure
 * `onFailure` runs after the compensations, then the hold is released.
 */
export function runNetworkOperation<T>(
  type: OperationType,
  input: OperationContext & { networkId: string },
  body: (saga: Saga, release: () => Promise<void>) => Promise<T>,
  onFailure?: (err: unknown) => Promise<void>,
): Promise<T> {
  const { networkId, operationId } = input;
  const release = () => dbUndo.releaseNetwork({ networkId, operationId });
  return runOperation(
    { ...input, type, resource: 'networks', resourceId: networkId },
    null,
    { ...input },
    (saga) => body(saga, () => CancellationScope.nonCancellable(release)),
    {
      async onFailure(err) {
        await onFailure?.(err);
        await release();
      },
    },
  );
}

/** What {@link markMachineStatus} writes: the machine, the transient status and what undoing it restores. */
export interface MarkStatusStep {
  /** The step's name in the operation's progress (default `markUpdating`). */
  name?: string;
  /** Whose operation it is (every status write carries it). */
  base: { operationId: string; actorId: string | null; machineId: string };
  /** The status held while the operation runs (`updating`, `starting`, `stopping`). */
  status: MachineStatus;
  /** The statuses the operation starts from (any other fails the step: an illegal transition). */
  from: readonly MachineStatus[];
  /** The status the machine had: the undo puts it back. */
  previous: MachineStatus;
  /** Row fields the undo also puts back (what the operation may have written meanwhile). */
  restore?: Parameters<ControlActivities['setMachineStatus']>[0]['fields'];
  /** Refuse the transition while linked clones use this machine's disk (a start). */
  requireNoLinkedClones?: boolean;
}

/**
 * The first step of a machine operation that changes an existing machine: mark it `status` (from one of
 * `from`), with an undo that puts `previous` (and `restore`) back and releases the machine, but only while
 * this operation still holds it (a later operation's status is never overwritten).
 */
export async function markMachineStatus(saga: Saga, step: MarkStatusStep): Promise<void> {
  const { base, previous, restore, requireNoLinkedClones } = step;
  await saga.step(
    step.name ?? 'markUpdating',
    () =>
      db.setMachineStatus({
        ...base,
        status: step.status,
        from: [...step.from],
        ...(requireNoLinkedClones !== undefined ? { requireNoLinkedClones } : {}),
      }),
    () =>
      dbUndo.setMachineStatus({
        ...base,
        status: previous,
        release: true,
        onlyIfHeldBy: base.operationId,
        ...(restore ? { fields: restore } : {}),
      }),
  );
}

/**
 * The first step of a change to an existing machine's hardware or NIC: mark it `updating` (from one of
 * {@link HARDWARE_FROM}), with `restore` put back by the undo. Gives the status it had and the activities
 * of its host.
 */
export async function markHardwareUpdating(
  saga: Saga,
  base: MarkStatusStep['base'],
  machine: { status: MachineStatus; hostName: string },
  restore: MarkStatusStep['restore'],
) {
  const previous = machine.status;
  await markMachineStatus(saga, { base, status: 'updating', from: HARDWARE_FROM, previous, restore });
  return { previous, host: hostActivities(machine.hostName), undo: hostUndo(machine.hostName) };
}

/**
 * The end of a network operation that leaves the network `active`: the `finalize` write (from one of
 * `write.from`, with its fields and event), then the hold ends, last: until then the undo of the row's
 * first step can tell this operation's row apart.
 */
export async function activateNetwork(
  saga: Saga,
  release: () => Promise<void>,
  write: Omit<Parameters<ControlActivities['setNetworkStatus']>[0], 'status'>,
): Promise<void> {
  await saga.step('finalize', () => db.setNetworkStatus({ ...write, status: 'active' }));
  await release();
}

/**
 * {@link runOperation} for an operation on one image (`images:*` events, workflow id `image-<imageId>`): the
 * input is recorded as the operation's input. On failure or cancellation `onFailure` runs after the
 * compensations (non-cancellable); it is where the image is marked `failed` with the reason.
 */
export function runImageOperation<T>(
  type: OperationType,
  input: OperationContext & { imageId: string },
  body: (saga: Saga) => Promise<T>,
  onFailure: (err: unknown) => Promise<void>,
): Promise<T> {
  return runOperation(
    { ...input, type, resource: 'images', resourceId: input.imageId },
    null,
    { ...input },
    body,
    { onFailure: (err) => onFailure(err) },
  );
}
