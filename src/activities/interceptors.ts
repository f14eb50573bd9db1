/**
 * Behaviour that applies to every activity, as activity interceptors the worker registers
 * (`src/worker/worker.ts`): heartbeating, outcome metrics, and in tests the fault injector. Activity bodies
 * carry none of them.
 */
import { type Context } from '@temporalio/activity';
import { CancelledFailure, CompleteAsyncError, type Next } from '@temporalio/common';
import {
  type ActivityExecuteInput,
  type ActivityInboundCallsInterceptor,
  type ActivityInterceptorsFactory,
} from '@temporalio/worker';
import { faultStep, type FaultInjector } from './faults';
import { withHeartbeat } from './retry';

type Execute = Next<ActivityInboundCallsInterceptor, 'execute'>;

/**
 * Heartbeats while the activity runs. With a short heartbeat timeout the server notices a dead worker in
 * seconds (not at the start-to-close timeout) and retries the activity elsewhere, and a running activity
 * learns of its cancellation (the heartbeat's answer), which `Context.cancelled`, `Context.sleep` and
 * `cancellationSignal` then deliver.
 */
export class HeartbeatInterceptor implements ActivityInboundCallsInterceptor {
  constructor(private readonly everyMs: number) {}

  execute(input: ActivityExecuteInput, next: Execute): Promise<unknown> {
    return withHeartbeat(() => next(input), undefined, this.everyMs);
  }
}

/**
 * Test-only: runs the fault injector's `before` check ahead of the activity and its `after` check once the
 * activity has returned (so after its side effect, and only when it succeeded). The step is the
 * activity's name ({@link faultStep}).
 */
export class FaultInterceptor implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly ctx: Context,
    private readonly faults: FaultInjector,
  ) {}

  async execute(input: ActivityExecuteInput, next: Execute): Promise<unknown> {
    const step = faultStep(this.ctx.info.activityType, input.args);
    await this.faults.check(step, 'before');
    const result = await next(input);
    await this.faults.check(step, 'after');
    return result;
  }
}

/** How an activity execution ended, as the worker reports it to Temporal. */
export type ActivityOutcome = 'completed' | 'failed' | 'cancelled';

/** Receives one observation per activity execution (the worker's Prometheus metrics: src/worker/metrics.ts). */
export interface ActivityObserver {
  observe(o: { activityType: string; taskQueue: string; outcome: ActivityOutcome; seconds: number }): void;
}

/**
 * Reports each execution's outcome and duration to an observer. The outcome is classified as the SDK
 * classifies it (`@temporalio/worker`'s activity.ts): a cancellation error thrown while the activity's
 * cancellation signal is aborted is `cancelled`, any other error `failed`; an activity that completes
 * asynchronously is not reported (its outcome is not known here).
 */
export class OutcomeInterceptor implements ActivityInboundCallsInterceptor {
  constructor(
    private readonly ctx: Context,
    private readonly observer: ActivityObserver,
  ) {}

  async execute(input: ActivityExecuteInput, next: Execute): Promise<unknown> {
    const start = process.hrtime.bigint();
    let outcome: ActivityOutcome | null = 'completed';
    try {
      return await next(input);
    } catch (err) {
      if (err instanceof CompleteAsyncError) outcome = null;
      else if (
        (err instanceof CancelledFailure || (err as Error | undefined)?.name === 'AbortError') &&
        this.ctx.cancellationSignal.aborted
      )
        outcome = 'cancelled';
      else outcome = 'failed';
      throw err;
    } finally {
      if (outcome) {
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        const { activityType, taskQueue } = this.ctx.info;
        try {
          this.observer.observe({ activityType, taskQueue, outcome, seconds });
        } catch {
          // metrics never change an activity's result
        }
      }
    }
  }
}

/** Options of {@link activityInterceptors}. */
export interface ActivityInterceptorOptions {
  /** Told of every execution's outcome and duration (the worker's metrics); none: nothing is measured. */
  observer?: ActivityObserver;
  /** Test-only fault injector; production has none, and then no fault interceptor exists. */
  faults?: FaultInjector;
  /** Heartbeat interval (default 1 s). */
  heartbeatEveryMs?: number;
}

/**
 * The activity interceptors of a worker, outermost first: the outcome observer (so a duration covers
 * everything), then heartbeats wrapping the fault checks, so an activity hung at an armed step still
 * heartbeats and can be cancelled.
 */
export function activityInterceptors(opts: ActivityInterceptorOptions = {}): ActivityInterceptorsFactory[] {
  const heartbeat = new HeartbeatInterceptor(opts.heartbeatEveryMs ?? 1000);
  const factories: ActivityInterceptorsFactory[] = [];
  const { faults, observer } = opts;
  if (observer) factories.push((ctx) => ({ inbound: new OutcomeInterceptor(ctx, observer) }));
  factories.push(() => ({ inbound: heartbeat }));
  if (faults) factories.push((ctx) => ({ inbound: new FaultInterceptor(ctx, faults) }));
  return factories;
}
