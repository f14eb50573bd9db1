/**
 * Behaviour that applies to every activity, as activity interceptors the worker registers
 * (`src/worker/worker.ts`): heartbeating, and in tests the fault injector. Activity bodies carry neither.
 */
import { type Context } from '@temporalio/activity';
import { type Next } from '@temporalio/common';
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

/** Options of {@link activityInterceptors}. */
export interface ActivityInterceptorOptions {
  /** Test-only fault injector; production has none, and then no fault interceptor exists. */
  faults?: FaultInjector;
  /** Heartbeat interval (default 1 s). */
  heartbeatEveryMs?: number;
}

/**
 * The activity interceptors of a worker, outermost first: heartbeats wrap the fault checks, so an
 * activity hung at an armed step still heartbeats and can be cancelled.
 */
export function activityInterceptors(opts: ActivityInterceptorOptions = {}): ActivityInterceptorsFactory[] {
  const heartbeat = new HeartbeatInterceptor(opts.heartbeatEveryMs ?? 1000);
  const factories: ActivityInterceptorsFactory[] = [() => ({ inbound: heartbeat })];
  const { faults } = opts;
  if (faults) factories.push((ctx) => ({ inbound: new FaultInterceptor(ctx, faults) }));
  return factories;
}
