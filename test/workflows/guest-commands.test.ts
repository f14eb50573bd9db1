/**
 * The guest workflows against the real dev server with stubbed activities: exec (started once, waited for,
 * its result stored on the operation, the sealed stdin kept out of the operation row), kill and service
 * actions through vmflow's agent, a machine that is not running refused before anything reaches the
 * guest, a failure of the guest failing the operation without a result, and the reads.
 */
import type { MachineStatus } from '../../src/entities/machine-status';
import { GuestFailureType, type GuestExecResult } from '../../src/workflows/shared';
import { expectOperationFailure, operationContext, useWorkflowHarness } from '../support/workflow-harness';
import { createStubs, machineFixture, type StubOptions } from '../support/workflow-stubs';
import { uniqueId } from '../support/temporal';

const h = useWorkflowHarness();

function setUp(status: MachineStatus = 'running', opts: Partial<StubOptions> = {}) {
  const hostName = uniqueId('host');
  const m = machineFixture(uniqueId('m'), hostName, { status });
  const stubs = createStubs({ hostName, machines: [m], ...opts });
  return { stubs, m, ctx: { ...operationContext(), machineId: m.id } };
}

const SEALED = { v: 1, iv: 'iv', tag: 'tag', data: 'sealed-stdin' } as const;

describe('guestExec', () => {
  it('starts the program once, waits for it and stores its exit code and output as the result', async () => {
    const exec: GuestExecResult = {
      exitCode: 3,
      signal: null,
      timedOut: false,
      stdout: 'out',
      stderr: 'err',
      stdoutTruncated: false,
      stderrTruncated: true,
    };
    const { stubs, m, ctx } = setUp('running', { guest: { exec } });
    const input = { ...ctx, command: '/bin/false', args: ['a b', ''], timeoutS: 5, stdin: SEALED };

    const out = await h.withWorkers(stubs, (run) => run.execute('guestExec', input));

    expect(out).toEqual({ machineId: m.id, result: exec });
    expect(stubs.labels()).toEqual([
      'beginOperation',
      'getMachine',
      'guestExecStart',
      'guestExecWait',
      'setOperationResult',
      'finishOperation:succeeded',
    ]);
    expect(stubs.inputs('guestExecStart')).toEqual([
      {
        internalName: m.internalName,
        machineId: m.id,
        command: '/bin/false',
        args: ['a b', ''],
        stdin: SEALED,
      },
    ]);
    expect(stubs.inputs('guestExecWait')[0]).toMatchObject({ pid: 1000, maxOutputBytes: 64 * 1024 });
    const op = stubs.world.operations.get(ctx.operationId)!;
    expect(op).toMatchObject({ type: 'guest_exec', status: 'succeeded', result: exec });
    // The operation row records the request without its standard input.
    const begun = stubs.inputs<{ input: Record<string, unknown>; actorId: string }>('beginOperation')[0]!;
    expect(begun.actorId).toBe('user-1');
    expect(begun.input).toMatchObject({ command: '/bin/false', args: ['a b', ''], timeoutS: 5 });
    expect(JSON.stringify(begun.input)).not.toContain('sealed-stdin');
    expect(stubs.steps.map((s) => `${s.step}:${s.status}`)).toEqual([
      'validate:started',
      'validate:completed',
      'startProgram:started',
      'startProgram:completed',
      'waitProgram:started',
      'waitProgram:completed',
      'recordResult:started',
      'recordResult:completed',
    ]);
  });

  it('never starts a program twice: a failed start fails the operation, with no result', async () => {
    const { stubs, ctx } = setUp('running', {
      fail: { guestExecStart: { type: GuestFailureType.Unavailable, retryable: true, times: 1 } },
    });
    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('guestExec', { ...ctx, command: '/bin/true', args: [], timeoutS: 5 });
      await expectOperationFailure(handle.result(), GuestFailureType.Unavailable);
    });
    expect(stubs.labels().filter((l) => l === 'guestExecStart')).toHaveLength(1);
    expect(stubs.labels()).not.toContain('guestExecWait');
    expect(stubs.world.operations.get(ctx.operationId)).toMatchObject({ status: 'failed' });
    expect(stubs.world.operations.get(ctx.operationId)?.result).toBeUndefined();
  });

  it.concurrent.each(['off', 'suspended', 'updating'] as const)(
    'a %s machine is refused before anything reaches the guest',
    async (status) => {
      const { stubs, ctx } = setUp(status);
      const failure = await h.withWorkers(stubs, async (run) => {
        const handle = await run.start('guestExec', { ...ctx, command: '/bin/true', args: [], timeoutS: 5 });
        return expectOperationFailure(handle.result(), GuestFailureType.Unavailable);
      });
      expect(failure.message).toBe(`the machine is ${status}, not running`);
      expect(stubs.labels()).toEqual(['beginOperation', 'getMachine', 'finishOperation:failed']);
    },
  );
});

describe('guestKillProcess and guestServiceAction', () => {
  it('kills through the agent and records pid and signal as the result', async () => {
    const { stubs, m, ctx } = setUp();
    const out = await h.withWorkers(stubs, (run) =>
      run.execute('guestKillProcess', { ...ctx, pid: 4242, signal: 'KILL' }),
    );
    expect(out).toEqual({ machineId: m.id, result: { pid: 4242, signal: 'KILL' } });
    expect(stubs.inputs('agentRequest')).toEqual([
      { machineId: m.id, command: 'process.kill', args: { pid: 4242, signal: 'KILL' }, timeoutMs: 60_000 },
    ]);
    expect(stubs.world.operations.get(ctx.operationId)).toMatchObject({
      type: 'guest_kill',
      status: 'succeeded',
      result: { pid: 4242, signal: 'KILL' },
    });
  });

  it('stops a service and records its state after', async () => {
    const { stubs, ctx } = setUp();
    const out = await h.withWorkers(stubs, (run) =>
      run.execute('guestServiceAction', { ...ctx, name: 'cron.service', action: 'stop' }),
    );
    expect(out.result).toEqual({ name: 'cron.service', action: 'stop', state: 'stopped' });
    expect(stubs.inputs('agentRequest')[0]).toMatchObject({
      command: 'service.stop',
      args: { name: 'cron.service' },
    });
    expect(stubs.steps.map((s) => s.step)).toContain('stopService');
  });

  it("the agent's refusal fails the operation with its code, once (no retry)", async () => {
    const { stubs, ctx } = setUp('running', {
      fail: { agentRequest: { type: GuestFailureType.Command, message: 'no such process' } },
    });
    const failure = await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('guestKillProcess', { ...ctx, pid: 99999, signal: 'TERM' });
      return expectOperationFailure(handle.result(), GuestFailureType.Command);
    });
    expect(failure.message).toBe('no such process');
    expect(stubs.labels().filter((l) => l === 'agentRequest')).toHaveLength(1);
    expect(stubs.world.operations.get(ctx.operationId)).toMatchObject({ status: 'failed' });
  });
});

describe('readGuest', () => {
  const readInput = (hostName: string, m: { id: string; internalName: string }, timeoutMs = 1000) => ({
    hostName,
    machineId: m.id,
    internalName: m.internalName,
    what: 'processes' as const,
    timeoutMs,
  });

  it('asks the host once and gives its answer; records no operation', async () => {
    const { stubs, m } = setUp();
    const out = await h.withWorkers(stubs, (run) => run.execute('readGuest', readInput(stubs.hostName, m)));
    expect(out).toEqual({ ok: true, value: { processes: [] } });
    expect(stubs.labels()).toEqual(['readGuest']);
    expect(stubs.inputs('readGuest')[0]).toMatchObject({ what: 'processes', timeoutMs: 1000 });
  });

  it('a guest that cannot answer is an outcome, not a failed workflow', async () => {
    const read = { ok: false, type: GuestFailureType.Unavailable, message: 'not connected' } as const;
    const { stubs, m } = setUp('running', { guest: { read } });
    const out = await h.withWorkers(stubs, (run) => run.execute('readGuest', readInput(stubs.hostName, m)));
    expect(out).toEqual(read);
  });

  it('a host that does not answer within the bound is a timeout outcome (one attempt)', async () => {
    const { stubs, m } = setUp();
    const gate = stubs.gate('readGuest', { cancellable: false });
    try {
      const out = await h.withWorkers(stubs, (run) =>
        run.execute('readGuest', readInput(stubs.hostName, m, 100)),
      );
      expect(out).toEqual({
        ok: false,
        type: GuestFailureType.Timeout,
        message: "the machine's host did not answer in time",
      });
      expect(stubs.labels()).toEqual(['readGuest']);
    } finally {
      gate.release();
    }
  });

  it('an unexpected failure fails the read', async () => {
    const { stubs, m } = setUp('running', { fail: { readGuest: 'SomethingElse' } });
    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('readGuest', readInput(stubs.hostName, m));
      await expect(handle.result()).rejects.toThrow();
    });
    expect(stubs.labels()).toEqual(['readGuest']);
  });
});
