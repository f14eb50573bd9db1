/**
 * destroyMachine against the real dev server with stubbed activities: forward-only removal, the
 * shutdown deadline, absent machines, linked-clone protection, and finishing a half-done destroy.
 */
import type { MachineView } from '../../src/activities/db';
import { FailureType, type DestroyMachineInput, libvirtNames } from '../../src/workflows/shared';
import {
  useWorkflowHarness,
  expectOperationFailure,
  operationContext,
  within,
} from '../support/workflow-harness';
import {
  INJECTED,
  STUB_POOL,
  type StubOptions,
  createStubs,
  machineFixture,
} from '../support/workflow-stubs';
import { firewallWorld } from '../support/firewall-stubs';
import { uniqueId } from '../support/temporal';

const h = useWorkflowHarness();

function setUp(
  machine: Partial<MachineView> = {},
  opts: Partial<StubOptions> = {},
  input: Partial<DestroyMachineInput> = {},
) {
  const hostName = uniqueId('host');
  const m = machineFixture(uniqueId('m'), hostName, machine);
  const stubs = createStubs({ hostName, machines: [m], ...opts });
  return {
    stubs,
    m,
    input: { ...operationContext(), machineId: m.id, ...input } satisfies DestroyMachineInput,
  };
}

const HEAD = ['beginOperation', 'planDestroy', 'setMachineStatus:destroying', 'getDomainState'];
const REMOVE = ['undefineDomain', 'deleteVolume', 'removeVmFilter', 'pruneFilters', 'deleteMachine'];

describe('destroyMachine', () => {
  it.concurrent.each([
    { state: 'running', outcome: 'done' as const, power: ['shutdownDomain'] },
    { state: 'running', outcome: 'timeout' as const, power: ['shutdownDomain', 'forceOffDomain'] },
    { state: 'paused', outcome: 'done' as const, power: ['forceOffDomain'] },
    { state: 'pmsuspended', outcome: 'done' as const, power: ['forceOffDomain'] },
    { state: 'shutoff', outcome: 'done' as const, power: [] },
    { state: 'absent', outcome: 'done' as const, power: [] },
  ])(
    'domain $state (shutdown $outcome): $power, then undefine, delete disk, filter, row',
    async ({ state, outcome, power }) => {
      const { stubs, m, input } = setUp(
        { status: state === 'running' ? 'running' : 'off' },
        { domainState: state, shutdownOutcome: outcome },
      );

      const result = await h.withWorkers(stubs, (run) => run.execute('destroyMachine', input));

      expect(result).toEqual({ machineId: m.id, status: 'destroyed', outcome: 'done' });
      expect(stubs.labels()).toEqual([...HEAD, ...power, ...REMOVE, 'finishOperation:succeeded']);
      const ref = { internalName: m.internalName, machineId: m.id };
      expect(stubs.inputs('undefineDomain')).toEqual([ref]);
      expect(stubs.inputs('deleteVolume')).toEqual([{ pool: STUB_POOL, name: libvirtNames.volume(m.id) }]);
      expect(stubs.inputs('removeVmFilter')).toEqual([{ name: m.filterName }]);
      if (power.includes('shutdownDomain'))
        expect(stubs.inputs('shutdownDomain')).toEqual([{ ...ref, timeoutSec: 30 }]);
      expect(stubs.world.machines.has(m.id)).toBe(false);
      expect(stubs.leftovers(m.id)).toEqual([]);
      expect(stubs.world.operations.get(input.operationId)?.status).toBe('succeeded');
    },
  );

  it('passes the requested shutdown deadline to the guest shutdown', async () => {
    const { stubs, m, input } = setUp(
      { status: 'running' },
      { domainState: 'running', shutdownOutcome: 'timeout' },
      { shutdownTimeoutSec: 5 },
    );

    await h.withWorkers(stubs, (run) => run.execute('destroyMachine', input));

    expect(stubs.inputs('shutdownDomain')).toEqual([
      { internalName: m.internalName, machineId: m.id, timeoutSec: 5 },
    ]);
    expect(stubs.stepLabels()).toEqual(expect.arrayContaining(['shutdown:completed', 'forceOff:completed']));
  });

  it('an absent machine is a no-op that succeeds without touching the hypervisor', async () => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    const input = { ...operationContext(), machineId: uniqueId('gone') };

    const result = await h.withWorkers(stubs, (run) => run.execute('destroyMachine', input));

    expect(result).toEqual({ machineId: input.machineId, status: 'destroyed', outcome: 'noop' });
    expect(stubs.labels()).toEqual(['beginOperation', 'planDestroy', 'finishOperation:succeeded']);
  });

  it('a machine that backs linked clones is refused and left as it was', async () => {
    const { stubs, m, input } = setUp();
    stubs.world.machines.set(
      'clone-1',
      machineFixture('clone-1', stubs.hostName, { sourceMachineId: m.id, linkedClone: true }),
    );

    const failure = await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('destroyMachine', input);
      return expectOperationFailure(handle.result(), FailureType.Refused);
    });

    expect(failure.message).toMatch(/linked clones/);
    expect(stubs.labels()).toEqual(['beginOperation', 'planDestroy', 'getMachine', 'finishOperation:failed']);
    expect(stubs.world.machines.get(m.id)).toMatchObject({ status: 'off', currentOperationId: null });
    expect(stubs.leftovers(m.id)).toEqual(['volume', 'domain', 'filter']);
  });

  it('a machine in a status that cannot be destroyed is refused without a status change', async () => {
    const { stubs, m, input } = setUp({ status: 'creating' });

    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('destroyMachine', input);
      await expectOperationFailure(handle.result(), FailureType.IllegalTransition);
    });

    expect(stubs.labels()).toEqual([
      'beginOperation',
      'planDestroy',
      'setMachineStatus:destroying',
      'getMachine',
      'finishOperation:failed',
    ]);
    expect(stubs.world.machines.get(m.id)?.status).toBe('creating');
  });

  it('cancel during the graceful shutdown: the shutdown is told, the machine is failed (destroy again to finish), the operation cancelled', async () => {
    const { stubs, m, input } = setUp({ status: 'running' }, { domainState: 'running' });
    const gate = stubs.gate('shutdownDomain');

    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('destroyMachine', input);
      await within(gate.entered, 'the shutdown to start');
      await handle.cancel();
      await expectOperationFailure(handle.result(), FailureType.Cancelled);
    });

    expect(stubs.labels()).toEqual([
      ...HEAD,
      'shutdownDomain',
      'shutdownDomain:cancelled',
      'getMachine',
      'setMachineStatus:failed',
      'finishOperation:cancelled',
    ]);
    expect(stubs.inputs('setMachineStatus:failed')[0]).toMatchObject({
      release: true,
      fields: { lastError: expect.stringMatching(/^destroy failed: /) },
    });
    expect(stubs.world.machines.get(m.id)).toMatchObject({ status: 'failed', currentOperationId: null });
    expect(stubs.world.operations.get(input.operationId)?.status).toBe('cancelled');
  });

  it('a step that fails leaves the machine failed with the reason; destroying again finishes the job', async () => {
    const { stubs, m, input } = setUp(
      { status: 'running' },
      { domainState: 'running', fail: { deleteVolume: { times: 1 } } },
    );

    await h.withWorkers(stubs, async (run) => {
      const first = await run.start('destroyMachine', input);
      await expectOperationFailure(first.result(), INJECTED);
      // Forward-only: nothing is undone; the machine is failed (and released) with the reason.
      expect(stubs.labels()).toEqual([
        ...HEAD,
        'shutdownDomain',
        'undefineDomain',
        'deleteVolume',
        'getMachine',
        'setMachineStatus:failed',
        'finishOperation:failed',
      ]);
      expect(stubs.inputs('setMachineStatus:failed')[0]).toMatchObject({
        release: true,
        fields: { lastError: 'destroy failed: injected failure in deleteVolume' },
      });
      expect(stubs.world.machines.get(m.id)).toMatchObject({ status: 'failed', currentOperationId: null });

      stubs.calls.length = 0;
      const again = { ...input, operationId: uniqueId('op') };
      const second = await run.start('destroyMachine', again);
      expect(await second.result()).toEqual({ machineId: m.id, status: 'destroyed', outcome: 'done' });
      expect(stubs.world.operations.get(again.operationId)?.status).toBe('succeeded');
    });

    expect(stubs.labels()).toEqual([...HEAD, 'shutdownDomain', ...REMOVE, 'finishOperation:succeeded']);
    expect(stubs.world.machines.has(m.id)).toBe(false);
    expect(stubs.leftovers(m.id)).toEqual([]);
    expect(stubs.world.operations.get(input.operationId)?.status).toBe('failed');
  });
});

/** The filters of a machine's destruction: destroy prunes the department's filter and the custom filters
 * after removing the VM's, and keeps them while another machine of the department is on the host. */
describe('machine filters', () => {
  const deptFilter = libvirtNames.departmentFilter('dept-1');

  it('destroy prunes the department filter and the custom filters once the VM filter is gone', async () => {
    const hostName = uniqueId('host');
    const custom = libvirtNames.customFilter('c-1');
    const m = machineFixture(uniqueId('m'), hostName, { filterIncludes: [custom] });
    const stubs = createStubs({
      hostName,
      machines: [m],
      firewall: {
        filters: [
          { name: custom },
          { name: m.filterName, filterrefs: [{ filter: deptFilter }, { filter: custom }] },
        ],
      },
    });
    await h.withWorkers(stubs, (run) =>
      run.execute('destroyMachine', { ...operationContext(), machineId: m.id }),
    );
    const labels = stubs.labels();
    expect(labels.slice(labels.indexOf('removeVmFilter'), -1)).toEqual([
      'removeVmFilter',
      'pruneFilters',
      'deleteMachine',
    ]);
    expect(stubs.inputs('pruneFilters')).toEqual([{ candidates: [deptFilter, custom], cascade: true }]);
    expect(firewallWorld(stubs).libvirt.size).toBe(0);
  });

  it('destroy keeps the department filter while another machine of the department is on the host', async () => {
    const hostName = uniqueId('host');
    const m = machineFixture(uniqueId('m'), hostName);
    const other = machineFixture(uniqueId('other'), hostName);
    const stubs = createStubs({ hostName, machines: [m, other] });
    await h.withWorkers(stubs, (run) =>
      run.execute('destroyMachine', { ...operationContext(), machineId: m.id }),
    );
    const libvirt = firewallWorld(stubs).libvirt;
    expect([...libvirt.keys()].sort()).toEqual([deptFilter, other.filterName].sort());
  });
});
