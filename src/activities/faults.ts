/**
 * A test-only fault injector carried in the activity deps (never a production flag): tests arm it to
 * make a named step fail before or after its side effect, to prove that every compensation runs and
 * nothing is left behind. The worker turns it into an activity interceptor (`./interceptors`), so the
 * activity bodies carry no hook; in production the deps simply have none, and no interceptor is made.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';

export type FaultPhase = 'before' | 'after';

/**
 * Activities whose fault step is qualified by the status they write (`setMachineStatus:updating`): one
 * activity is several steps of a saga, and a test must be able to fail exactly one of them.
 */
const STATUS_STEPS: ReadonlySet<string> = new Set(['setMachineStatus', 'setNetworkStatus', 'setImageStatus']);

/** The step name tests arm for one activity call: the activity's name, qualified for the status writes. */
export function faultStep(activityType: string, args: readonly unknown[]): string {
  if (!STATUS_STEPS.has(activityType)) return activityType;
  const status = (args[0] as { status?: unknown } | undefined)?.status;
  return typeof status === 'string' ? `${activityType}:${status}` : activityType;
}

/** Decides whether an activity step fails. */
export interface FaultInjector {
  /** Throws when a fault is armed for this step and phase. */
  check(step: string, phase: FaultPhase): void | Promise<void>;
}

/** A simple injector: arm `step:phase` for `times` failures (non-retryable by default, so the saga fails fast). */
export class ArmedFaults implements FaultInjector {
  private readonly armed = new Map<string, { times: number; retryable: boolean; hang: boolean }>();
  /** Called when a step hangs (tests wait for it, then cancel or kill). */
  onHang: (key: string) => void = () => undefined;
  /** Every step:phase checked, in order (lets tests enumerate the steps of a workflow). */
  readonly seen: string[] = [];

  /**
   * Arms a failure at `step:phase`; with `hang`, the step instead waits there until the activity is
   * cancelled (or its process killed), to test cancellation and crashes in the middle of a step.
   */
  arm(
    step: string,
    phase: FaultPhase = 'before',
    opts: { times?: number; retryable?: boolean; hang?: boolean } = {},
  ): this {
    this.armed.set(`${step}:${phase}`, {
      times: opts.times ?? 1,
      retryable: opts.retryable ?? false,
      hang: opts.hang ?? false,
    });
    return this;
  }

  clear(): void {
    this.armed.clear();
    this.seen.length = 0;
  }

  async check(step: string, phase: FaultPhase): Promise<void> {
    const key = `${step}:${phase}`;
    this.seen.push(key);
    const f = this.armed.get(key);
    if (!f || f.times <= 0) return;
    f.times -= 1;
    if (f.hang) {
      this.onHang(key);
      await Context.current().sleep(24 * 3600 * 1000); // throws CancelledFailure when cancelled
      return;
    }
    const msg = `injected fault at ${key}`;
    throw f.retryable
      ? ApplicationFailure.retryable(msg, 'InjectedFault')
      : ApplicationFailure.nonRetryable(msg, 'InjectedFault');
  }
}
