/**
 * The activity interceptors (heartbeats, test faults) and the heartbeat/poll helpers in the SDK's
 * MockActivityEnvironment: heartbeats flow while an activity runs, a cancellation that answers a
 * heartbeat reaches the activity, and faults fire before or after the activity's own work.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { ArmedFaults, faultStep } from '../../../src/activities/faults';
import { type ActivityObserver, activityInterceptors } from '../../../src/activities/interceptors';
import { pollUntil, withHeartbeat } from '../../../src/activities/retry';

const EVERY_MS = 20;
/** Failed activities are logged as warnings: expected here. */
const logger = new DefaultLogger('ERROR');
const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A mock activity environment with the worker's interceptors, for an activity named `activityType`. */
function envFor(activityType: string, faults?: ArmedFaults): MockActivityEnvironment {
  return new MockActivityEnvironment(
    { activityType },
    { interceptors: activityInterceptors({ faults, heartbeatEveryMs: EVERY_MS }), logger },
  );
}

/** Cancels the activity when it first heartbeats, as the server's answer to a heartbeat would. */
function cancelOnHeartbeat(env: MockActivityEnvironment): { heartbeats: () => number } {
  let n = 0;
  env.on('heartbeat', () => {
    n += 1;
    if (n === 1) env.cancel();
  });
  return { heartbeats: () => n };
}

/** Resolves 'cancelled' when the activity's context is cancelled, else 'not cancelled' after `ms`. */
async function cancelledWithin(ms: number): Promise<'cancelled' | 'not cancelled'> {
  return Promise.race([
    Context.current().cancelled.then(
      () => 'not cancelled' as const,
      (e) => {
        if (!(e instanceof CancelledFailure)) throw e;
        return 'cancelled' as const;
      },
    ),
    wait(ms).then(() => 'not cancelled' as const),
  ]);
}

describe('heartbeat interceptor', () => {
  it('heartbeats while a long activity runs, never at its start, and stops with it', async () => {
    // A short activity ends before the first interval: no beat (one server call saved on every short step).
    const quick = envFor('longStep');
    let quickBeats = 0;
    quick.on('heartbeat', () => (quickBeats += 1));
    await expect(quick.run(async () => 'done')).resolves.toBe('done');
    expect(quickBeats).toBe(0);

    // A long one beats on its own while it runs: it ends only once it has seen three beats.
    const env = envFor('longStep');
    let beats = 0;
    let third: () => void = () => undefined;
    const sawThree = new Promise<void>((resolve) => (third = resolve));
    env.on('heartbeat', () => {
      beats += 1;
      if (beats === 3) third();
    });
    await expect(env.run(async () => (await sawThree, 'done'))).resolves.toBe('done');
    // It stops with the activity.
    const after = beats;
    await wait(4 * EVERY_MS);
    expect(beats).toBe(after);
  });

  it('a cancellation delivered with a heartbeat reaches the running activity', async () => {
    const env = envFor('longStep');
    const { heartbeats } = cancelOnHeartbeat(env);
    await expect(env.run(() => cancelledWithin(2000))).resolves.toBe('cancelled');
    expect(heartbeats()).toBeGreaterThanOrEqual(1);
  });

  it('a cancelled activity that sleeps fails with CancelledFailure (pollUntil)', async () => {
    const env = envFor('shutdownDomain');
    cancelOnHeartbeat(env);
    let polls = 0;
    const poll = () =>
      pollUntil(async () => void (polls += 1), { deadlineMs: 5000, intervalMs: 10 * EVERY_MS });
    await expect(env.run(poll)).rejects.toBeInstanceOf(CancelledFailure);
    expect(polls).toBeLessThan(5);
  });

  it('leaves local activities alone (they cannot heartbeat)', async () => {
    const env = new MockActivityEnvironment(
      { activityType: 'local', isLocal: true },
      { interceptors: activityInterceptors({ heartbeatEveryMs: EVERY_MS }), logger },
    );
    let beats = 0;
    env.on('heartbeat', () => (beats += 1));
    await env.run(() => wait(5 * EVERY_MS));
    expect(beats).toBe(0);
  });

  it('passes failures through as they are: retryable stays retryable, non-retryable stays permanent', async () => {
    const env = envFor('step');
    const permanent = ApplicationFailure.nonRetryable('no', 'Validation');
    const transient = new Error('connection reset');
    await expect(env.run(async () => Promise.reject(permanent))).rejects.toBe(permanent);
    await expect(env.run(async () => Promise.reject(transient))).rejects.toBe(transient);
  });
});

describe('withHeartbeat', () => {
  it('runs the call outside an activity (scripts, benches)', async () => {
    await expect(withHeartbeat(async () => 7)).resolves.toBe(7);
  });

  it('lets a native call that cannot be interrupted finish, and returns its result after a cancellation', async () => {
    const env = new MockActivityEnvironment({ activityType: 'createVolume' }, { logger });
    cancelOnHeartbeat(env);
    let cancelled = false;
    const call = async () => {
      const ctx = Context.current();
      ctx.cancelled.catch(() => (cancelled = true));
      return withHeartbeat(async () => (await wait(5 * EVERY_MS), 'made'), { step: 'clone' }, EVERY_MS);
    };
    await expect(env.run(call)).resolves.toBe('made');
    expect(cancelled).toBe(true);
  });

  it('sends its details with every heartbeat', async () => {
    const env = new MockActivityEnvironment({ activityType: 'createVolume' }, { logger });
    const details: unknown[] = [];
    env.on('heartbeat', (d: unknown) => details.push(d));
    await env.run(() => withHeartbeat(() => wait(3 * EVERY_MS), { step: 'clone' }, EVERY_MS));
    expect(details.length).toBeGreaterThanOrEqual(2);
    expect(details.every((d) => (d as { step?: string }).step === 'clone')).toBe(true);
  });
});

describe('pollUntil', () => {
  it('returns the first defined value, or undefined at the deadline', async () => {
    let n = 0;
    await expect(
      pollUntil(async () => (++n >= 3 ? n : undefined), { deadlineMs: 1000, intervalMs: 1 }),
    ).resolves.toBe(3);
    await expect(
      pollUntil(async () => undefined, { deadlineMs: 30, intervalMs: 5 }),
    ).resolves.toBeUndefined();
  });
});

describe('outcome interceptor', () => {
  /** An environment whose executions are reported to the returned list. */
  function observed(activityType: string) {
    const seen: Array<Parameters<ActivityObserver['observe']>[0]> = [];
    const env = new MockActivityEnvironment(
      { activityType, taskQueue: 'host-a' },
      {
        interceptors: activityInterceptors({
          heartbeatEveryMs: EVERY_MS,
          observer: { observe: (o) => seen.push(o) },
        }),
        logger,
      },
    );
    return { env, seen };
  }

  it('reports completed, failed and cancelled executions with their type, queue and a duration', async () => {
    const ok = observed('describeHost');
    await ok.env.run(async () => 'fine');
    const bad = observed('startDomain');
    await expect(bad.env.run(async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    const cancelled = observed('createVolume');
    cancelOnHeartbeat(cancelled.env);
    await expect(cancelled.env.run(async () => Context.current().cancelled)).rejects.toBeInstanceOf(
      CancelledFailure,
    );
    const outcomes = [...ok.seen, ...bad.seen, ...cancelled.seen].map(({ seconds, ...rest }) => {
      expect(seconds).toBeGreaterThanOrEqual(0);
      return rest;
    });
    expect(outcomes).toEqual([
      { activityType: 'describeHost', taskQueue: 'host-a', outcome: 'completed' },
      { activityType: 'startDomain', taskQueue: 'host-a', outcome: 'failed' },
      { activityType: 'createVolume', taskQueue: 'host-a', outcome: 'cancelled' },
    ]);
  });

  it('never lets an observer that throws change the result', async () => {
    const env = new MockActivityEnvironment(
      { activityType: 'x' },
      {
        interceptors: activityInterceptors({
          observer: {
            observe() {
              throw new Error('metrics broke');
            },
          },
        }),
        logger,
      },
    );
    await expect(env.run(async () => 7)).resolves.toBe(7);
  });
});

describe('fault interceptor', () => {
  it('is not made without faults (production)', () => {
    expect(activityInterceptors()).toHaveLength(1);
    expect(activityInterceptors({ faults: new ArmedFaults() })).toHaveLength(2);
  });

  it('a fault before the step fails it before its side effect', async () => {
    const faults = new ArmedFaults().arm('createVolume', 'before');
    let made = 0;
    await expect(envFor('createVolume', faults).run(async () => void (made += 1))).rejects.toMatchObject({
      type: 'InjectedFault',
      nonRetryable: true,
    });
    expect(made).toBe(0);
    expect(faults.seen).toEqual(['createVolume:before']);
  });

  it('a fault after the step fails it after its side effect, and only once', async () => {
    const faults = new ArmedFaults().arm('createVolume', 'after');
    let made = 0;
    const env = envFor('createVolume', faults);
    await expect(env.run(async () => (made += 1))).rejects.toMatchObject({ type: 'InjectedFault' });
    expect(made).toBe(1);
    await expect(env.run(async () => (made += 1))).resolves.toBe(2);
    expect(faults.seen).toEqual([
      'createVolume:before',
      'createVolume:after',
      'createVolume:before',
      'createVolume:after',
    ]);
  });

  it('no after-check when the step itself failed', async () => {
    const faults = new ArmedFaults();
    await expect(envFor('deleteVolume', faults).run(() => Promise.reject(new Error('x')))).rejects.toThrow(
      'x',
    );
    expect(faults.seen).toEqual(['deleteVolume:before']);
  });

  it('retryable faults are retryable, the default is not', async () => {
    const faults = new ArmedFaults().arm('a', 'before', { retryable: true }).arm('b', 'before');
    await expect(envFor('a', faults).run(async () => 1)).rejects.toMatchObject({ nonRetryable: false });
    await expect(envFor('b', faults).run(async () => 1)).rejects.toMatchObject({ nonRetryable: true });
  });

  it('other activities and phases are untouched', async () => {
    const faults = new ArmedFaults().arm('defineDomain', 'after');
    await expect(envFor('createVolume', faults).run(async () => 'ok')).resolves.toBe('ok');
  });

  it('qualifies the status writes by the status they write', async () => {
    expect(faultStep('setMachineStatus', [{ status: 'updating' }])).toBe('setMachineStatus:updating');
    expect(faultStep('setNetworkStatus', [{ status: 'active' }])).toBe('setNetworkStatus:active');
    expect(faultStep('insertMachine', [{ status: 'creating' }])).toBe('insertMachine');
    const faults = new ArmedFaults().arm('setMachineStatus:updating', 'before');
    const env = envFor('setMachineStatus', faults);
    await expect(env.run(async (_: { status: string }) => 1, { status: 'running' })).resolves.toBe(1);
    await expect(env.run(async (_: { status: string }) => 1, { status: 'updating' })).rejects.toMatchObject({
      type: 'InjectedFault',
    });
  });

  it('a hung step heartbeats and ends with CancelledFailure when cancelled, its work never done', async () => {
    const faults = new ArmedFaults().arm('startDomain', 'before', { hang: true });
    const hung: string[] = [];
    faults.onHang = (key) => hung.push(key);
    const env = envFor('startDomain', faults);
    const { heartbeats } = cancelOnHeartbeat(env);
    let started = 0;
    await expect(env.run(async () => void (started += 1))).rejects.toBeInstanceOf(CancelledFailure);
    expect(hung).toEqual(['startDomain:before']);
    expect(heartbeats()).toBeGreaterThanOrEqual(1);
    expect(started).toBe(0);
  });
});
