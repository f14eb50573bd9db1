/**
 * createMachine against the real dev server with stubbed activities: the happy paths, a failure at
 * every step (exactly the undos registered so far run, newest first), cancellation, the progress query.
 */
import { FailureType, libvirtNames, progressQuery } from '../../src/workflows/shared';
import {
  useWorkflowHarness,
  createMachineInput,
  expectOperationFailure,
  waitFor,
  within,
} from '../support/workflow-harness';
import { INJECTED, createStubs, machineFixture } from '../support/workflow-stubs';
import { firewallWorld } from '../support/firewall-stubs';
import { uniqueId } from '../support/temporal';

const h = useWorkflowHarness();

const createInput = createMachineInput;

const FORWARD = [
  'beginOperation',
  'planCreate',
  'insertMachine',
  'createVolume',
  'ensureDepartmentFilter',
  'ensureVmFilter',
  'defineDomain',
];
/** The saga step each undo belongs to. */
const UNDO_STEP: Record<string, string> = {
  deleteVolume: 'createVolume',
  removeVmFilter: 'createVmFilter',
  pruneFilters: 'ensureDepartmentFilter',
  undefineDomain: 'defineDomain',
  forceOffDomain: 'startDomain',
};

describe('createMachine: happy paths', () => {
  it.concurrent.each([
    { start: false, status: 'off', action: 'update' },
    { start: true, status: 'running', action: 'power_on' },
  ])('start=$start runs every step in order and finalizes $status', async ({ start, status, action }) => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    const input = createInput({ start, guestSecrets: { v: 1, iv: 'iv', tag: 'tag', data: 'sealed' } });

    const result = await h.withWorkers(stubs, (run) => run.execute('createMachine', input));

    expect(result).toEqual({ machineId: input.machineId, status });
    expect(stubs.labels()).toEqual([
      ...FORWARD,
      ...(start ? ['startDomain'] : []),
      `setMachineStatus:${status}`,
      'finishOperation:succeeded',
    ]);
    const [finalize] = stubs.inputs(`setMachineStatus:${status}`);
    expect(finalize).toMatchObject({
      from: ['creating'],
      action,
      fields: {
        libvirtUuid: `uuid-${input.machineId}`,
        macAddress: '52:54:00:aa:bb:cc',
        diskPath: expect.stringContaining(input.machineId),
      },
    });
    expect(stubs.world.machines.get(input.machineId)).toMatchObject({ status, currentOperationId: null });
    expect(stubs.world.operations.get(input.operationId)).toMatchObject({
      type: 'create',
      status: 'succeeded',
    });
    expect(stubs.leftovers(input.machineId)).toEqual(['volume', 'domain', 'filter']);
    // The sealed secret reaches insertMachine but not the operation row.
    expect(stubs.inputs('insertMachine')[0]).toMatchObject({ guestSecrets: input.guestSecrets });
    expect(stubs.inputs('beginOperation')[0].input).not.toHaveProperty('guestSecrets');
    expect(stubs.stepLabels().filter((s) => s.endsWith(':completed'))).toEqual(
      [
        'validate',
        'record',
        'createVolume',
        'ensureDepartmentFilter',
        'createVmFilter',
        'defineDomain',
        ...(start ? ['startDomain'] : []),
        'finalize',
      ].map((s) => `${s}:completed`),
    );
  });

  it('retries a transient activity failure without compensating', async () => {
    const stubs = createStubs({
      hostName: uniqueId('host'),
      fail: { insertMachine: { times: 1, retryable: true } },
    });
    const input = createInput();

    const result = await h.withWorkers(stubs, (run) => run.execute('createMachine', input));

    expect(result.status).toBe('off');
    expect(stubs.labels().filter((l) => l === 'insertMachine')).toHaveLength(2);
    expect(stubs.labels()).not.toContain('deleteVolume');
    expect(stubs.labels()).not.toContain('failMachine');
  });
});

describe('createMachine: a failure at every step compensates exactly what was registered, in reverse', () => {
  const cases: Array<{ step: string; call: string; start: boolean; type: string; undos: string[] }> = [
    { step: 'validate', call: 'planCreate', start: true, type: FailureType.Validation, undos: [] },
    { step: 'record', call: 'insertMachine', start: true, type: FailureType.NameTaken, undos: [] },
    { step: 'createVolume', call: 'createVolume', start: true, type: INJECTED, undos: ['deleteVolume'] },
    {
      step: 'ensureDepartmentFilter',
      call: 'ensureDepartmentFilter',
      start: true,
      type: INJECTED,
      // Only department/custom filters nothing on the host uses any more are pruned.
      undos: ['pruneFilters', 'deleteVolume'],
    },
    {
      step: 'createVmFilter',
      call: 'ensureVmFilter',
      start: true,
      type: INJECTED,
      undos: ['removeVmFilter', 'pruneFilters', 'deleteVolume'],
    },
    {
      step: 'defineDomain',
      call: 'defineDomain',
      start: true,
      type: INJECTED,
      undos: ['undefineDomain', 'removeVmFilter', 'pruneFilters', 'deleteVolume'],
    },
    {
      step: 'startDomain',
      call: 'startDomain',
      start: true,
      type: INJECTED,
      undos: ['forceOffDomain', 'undefineDomain', 'removeVmFilter', 'pruneFilters', 'deleteVolume'],
    },
    {
      step: 'finalize',
      call: 'setMachineStatus:running',
      start: true,
      type: FailureType.IllegalTransition,
      undos: ['forceOffDomain', 'undefineDomain', 'removeVmFilter', 'pruneFilters', 'deleteVolume'],
    },
    {
      step: 'finalize',
      call: 'setMachineStatus:off',
      start: false,
      type: INJECTED,
      undos: ['undefineDomain', 'removeVmFilter', 'pruneFilters', 'deleteVolume'],
    },
  ];

  it.concurrent.each(cases)(
    'failure at $step (start=$start) → undo $undos, failMachine, operation failed, $type',
    async ({ step, call, start, type, undos }) => {
      const stubs = createStubs({ hostName: uniqueId('host'), fail: { [call]: type } });
      const input = createInput({ start });

      const failure = await h.withWorkers(stubs, async (run) => {
        const handle = await run.start('createMachine', input);
        return expectOperationFailure(handle.result(), type);
      });

      expect(failure.message).toBe(`injected failure in ${call}`);
      expect(failure.nonRetryable).toBe(true);
      const forward = [
        ...FORWARD,
        ...(start ? ['startDomain'] : []),
        `setMachineStatus:${start ? 'running' : 'off'}`,
      ];
      expect(stubs.labels()).toEqual([
        ...forward.slice(0, forward.indexOf(call) + 1),
        ...undos,
        'failMachine',
        'finishOperation:failed',
      ]);
      // Undo inputs name this machine's resources only.
      for (const undo of undos.filter((u) => u !== 'pruneFilters'))
        expect(JSON.stringify(stubs.inputs(undo)[0])).toContain(input.machineId);
      // The prune names the department's filter only, never another machine's.
      for (const prune of stubs.inputs<{ candidates: string[] }>('pruneFilters'))
        expect(prune.candidates).toEqual([libvirtNames.departmentFilter(input.departmentId)]);
      expect(stubs.inputs('failMachine')[0]).toMatchObject({
        machineId: input.machineId,
        error: `injected failure in ${call}`,
      });
      expect(stubs.world.operations.get(input.operationId)).toEqual({
        type: 'create',
        status: 'failed',
        error: `injected failure in ${call}`,
      });
      expect(stubs.leftovers(input.machineId)).toEqual([]);
      // The row, if it was written, is kept as failed.
      if (call === 'planCreate' || call === 'insertMachine')
        expect(stubs.world.machines.has(input.machineId)).toBe(false);
      else expect(stubs.world.machines.get(input.machineId)?.status).toBe('failed');
      // Progress: the step failed, then each undo ran as compensating → compensated.
      const steps = stubs.stepLabels();
      expect(steps.slice(steps.indexOf(`${step}:started`))).toEqual([
        `${step}:started`,
        `${step}:failed`,
        ...undos.flatMap((u) => [`${UNDO_STEP[u]}:compensating`, `${UNDO_STEP[u]}:compensated`]),
      ]);
    },
  );

  it('an undo that fails for good is recorded and logged; the other undos still run', async () => {
    const stubs = createStubs({
      hostName: uniqueId('host'),
      fail: { defineDomain: INJECTED, removeVmFilter: 'FilterInUse' },
    });
    const input = createInput();

    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('createMachine', input);
      await expectOperationFailure(handle.result(), INJECTED);
    });

    expect(stubs.labels().slice(-6)).toEqual([
      'undefineDomain',
      'removeVmFilter',
      'pruneFilters',
      'deleteVolume',
      'failMachine',
      'finishOperation:failed',
    ]);
    expect(stubs.steps).toContainEqual({
      step: 'createVmFilter',
      status: 'failed',
      error: 'compensation failed: injected failure in removeVmFilter',
    });
    expect(stubs.world.operations.get(input.operationId)?.error).toBe(
      'injected failure in defineDomain (compensation failed: createVmFilter)',
    );
    expect(h.logger.entries).toContainEqual(
      expect.objectContaining({
        level: 'ERROR',
        message: 'compensation failed',
        meta: expect.objectContaining({ step: 'createVmFilter' }),
      }),
    );
  });
});

describe('createMachine: progress and cancellation', () => {
  it('the progress query returns the recorded steps while the workflow is blocked mid-way', async () => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    const gate = stubs.gate('createVolume');
    const input = createInput();

    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('createMachine', input);
      await within(gate.entered, 'createVolume to start');
      await waitFor(
        () => stubs.stepLabels().includes('createVolume:started'),
        'the createVolume step to be recorded',
      );
      const progress = await handle.query(progressQuery);
      expect(progress.map((s) => `${s.name}:${s.status}`)).toEqual([
        'validate:started',
        'validate:completed',
        'record:started',
        'record:completed',
        'createVolume:started',
      ]);
      expect(progress.map((s) => `${s.name}:${s.status}`)).toEqual(stubs.stepLabels());
      for (const s of progress) expect(new Date(s.at).toISOString()).toBe(s.at);
      gate.release();
      await within(handle.result(), 'createMachine to finish');
      const final = await handle.query(progressQuery);
      expect(final.at(-1)).toMatchObject({ name: 'finalize', status: 'completed' });
    });
  });

  it.concurrent.each([
    { blocked: 'createVolume', undos: ['deleteVolume'] },
    { blocked: 'defineDomain', undos: ['undefineDomain', 'removeVmFilter', 'pruneFilters', 'deleteVolume'] },
  ])(
    'cancel while $blocked runs: it is told, then $undos run, the row is deleted, the operation is cancelled',
    async ({ blocked, undos }) => {
      const stubs = createStubs({ hostName: uniqueId('host') });
      const gate = stubs.gate(blocked);
      const input = createInput({ start: true });

      await h.withWorkers(stubs, async (run) => {
        const handle = await run.start('createMachine', input);
        await within(gate.entered, `${blocked} to start`);
        await handle.cancel();
        await expectOperationFailure(handle.result(), FailureType.Cancelled);
        // The run fails (typed) rather than ending as Cancelled: callers match on OperationCancelledError.
        expect((await handle.describe()).status.name).toBe('FAILED');
      });

      const forward = FORWARD.slice(0, FORWARD.indexOf(blocked) + 1);
      // WAIT_CANCELLATION_COMPLETED: the compensations start only once the activity has acknowledged.
      expect(stubs.labels()).toEqual([
        ...forward,
        `${blocked}:cancelled`,
        ...undos,
        'deleteMachine',
        'finishOperation:cancelled',
      ]);
      expect(stubs.labels()).not.toContain('failMachine');
      expect(stubs.leftovers(input.machineId)).toEqual([]);
      expect(stubs.world.machines.has(input.machineId)).toBe(false);
      expect(stubs.world.operations.get(input.operationId)).toEqual({
        type: 'create',
        status: 'cancelled',
        error: 'operation cancelled',
      });
    },
  );
});

describe('createMachine: cancellation races (workflow bugs: these fail until fixed, see the report)', () => {
  it('a cancel that arrives while the operation is being marked succeeded does not undo the finished machine', async () => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    const gate = stubs.gate('finishOperation:succeeded', { cancellable: false });
    const input = createInput({ start: true });

    const outcome = await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('createMachine', input);
      await within(gate.entered, 'finishOperation(succeeded) to start');
      await handle.cancel();
      await run.waitUntilCancelSeen(handle);
      gate.release();
      return within(
        handle.result().then(
          (r) => ({ ok: r }),
          (e: unknown) => ({ failed: String((e as { cause?: unknown }).cause ?? e) }),
        ),
        'createMachine to finish',
      );
    });

    expect(stubs.labels()).not.toContain('undefineDomain');
    expect(stubs.labels()).not.toContain('deleteVolume');
    expect(stubs.labels()).not.toContain('deleteMachine');
    expect(outcome).toEqual({ ok: { machineId: input.machineId, status: 'running' } });
    expect(stubs.world.machines.get(input.machineId)?.status).toBe('running');
    expect(stubs.leftovers(input.machineId)).toEqual(['volume', 'domain', 'filter']);
  });

  it('a cancel while the row is being inserted leaves no orphan row', async () => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    // A DB write is not interrupted by cancellation: it commits whatever the workflow does meanwhile.
    const gate = stubs.gate('insertMachine', { cancellable: false });
    const input = createInput();

    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('createMachine', input);
      await within(gate.entered, 'insertMachine to start');
      await handle.cancel();
      await run.releaseAfterCancel(handle, gate);
      await expectOperationFailure(handle.result(), FailureType.Cancelled);
    });

    expect(stubs.world.machines.has(input.machineId)).toBe(false);
  });

  it('a cancel during beginOperation still ends the operation row', async () => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    const gate = stubs.gate('beginOperation', { cancellable: false });
    const input = createInput();

    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('createMachine', input);
      await within(gate.entered, 'beginOperation to start');
      await handle.cancel();
      await run.waitUntilCancelSeen(handle);
      gate.release();
      await within(
        handle.result().catch(() => undefined),
        'createMachine to finish',
      );
    });

    expect(stubs.world.operations.get(input.operationId)?.status).toBe('cancelled');
  });
});

/** The filters of a machine's creation: create defines the compiled department and VM filters; a failed
 * create prunes the department filter it defined when nothing else on the host uses it. */
describe('machine filters', () => {
  const deptFilter = libvirtNames.departmentFilter('dept-1');
  const create = () => createMachineInput({ name: 'web' });

  it('create defines the compiled department filter and the VM filter referencing it', async () => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    const input = create();
    await h.withWorkers(stubs, (run) => run.execute('createMachine', input));
    const libvirt = firewallWorld(stubs).libvirt;
    expect(libvirt.get(deptFilter)!.filterrefs).toEqual([{ filter: 'clean-traffic' }]);
    expect(libvirt.get(libvirtNames.vmFilter(input.machineId))!.filterrefs).toEqual([{ filter: deptFilter }]);
    expect(stubs.inputs('ensureDepartmentFilter')[0]).toMatchObject({
      name: deptFilter,
      specs: [expect.objectContaining({ name: deptFilter })],
    });
  });

  it('a failed create prunes the department filter it defined (nothing else uses it)', async () => {
    const stubs = createStubs({ hostName: uniqueId('host'), fail: { defineDomain: INJECTED } });
    const input = create();
    await h.withWorkers(stubs, (run) =>
      expectOperationFailure(run.execute('createMachine', input), INJECTED),
    );
    const labels = stubs.labels();
    expect(labels.slice(labels.indexOf('defineDomain') + 1, -2)).toEqual([
      'undefineDomain',
      'removeVmFilter',
      'pruneFilters',
      'deleteVolume',
    ]);
    expect(stubs.inputs('pruneFilters')).toEqual([{ candidates: [deptFilter], cascade: true }]);
    expect(firewallWorld(stubs).libvirt.size).toBe(0);
  });

  it('a failed create keeps the department filter another machine uses', async () => {
    const hostName = uniqueId('host');
    const stubs = createStubs({
      hostName,
      machines: [machineFixture(uniqueId('other'), hostName)],
      fail: { defineDomain: INJECTED },
    });
    await h.withWorkers(stubs, (run) =>
      expectOperationFailure(run.execute('createMachine', create()), INJECTED),
    );
    expect(firewallWorld(stubs).libvirt.has(deptFilter)).toBe(true);
  });
});
