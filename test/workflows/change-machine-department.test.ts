/**
 * changeMachineDepartment against the real dev server with stubbed activities: the order of the steps, the
 * VM filter moved to the new department's filter and the old one pruned, a failure at every step undone in
 * reverse (filters, row and status as before), cancellation, and the statuses it refuses.
 */
import type { MachineView } from '../../src/activities/db';
import { FailureType, libvirtNames, type ChangeMachineDepartmentInput } from '../../src/workflows/shared';
import { filterSnapshot, firewallWorld } from '../support/firewall-stubs';
import { uniqueId } from '../support/temporal';
import {
  useWorkflowHarness,
  expectOperationFailure,
  operationContext,
  within,
} from '../support/workflow-harness';
import { INJECTED, createStubs, machineFixture, type StubOptions } from '../support/workflow-stubs';
import { itEndsAsRecorded } from './history-scenarios-firewall';

const h = useWorkflowHarness();

describe('recorded scenarios', () => {
  itEndsAsRecorded(h, 'changeMachineDepartment');
});

const TARGET = 'dept-2';
const targetFilter = libvirtNames.departmentFilter(TARGET);

function setUp(machine: Partial<MachineView> = {}, opts: Partial<StubOptions> = {}) {
  const hostName = uniqueId('host');
  const m = machineFixture(uniqueId('m'), hostName, { status: 'running', ...machine });
  const stubs = createStubs({ hostName, machines: [m], ...opts });
  const input: ChangeMachineDepartmentInput = {
    ...operationContext(),
    machineId: m.id,
    departmentId: TARGET,
  };
  return { stubs, m, input };
}

const HAPPY = [
  'beginOperation',
  'planDepartmentChange',
  'setMachineStatus:updating',
  'readFilters',
  'ensureDepartmentFilter',
  'ensureVmFilter',
  'setMachineDepartment',
  'planPrune',
  'pruneFilters',
  'setMachineStatus:running',
  'finishOperation:succeeded',
];

describe('changeMachineDepartment', () => {
  it.concurrent.each(['running', 'off', 'suspended'] as const)(
    '%s machine: the VM filter references the new department, the old one is pruned, status back',
    async (status) => {
      const { stubs, m, input } = setUp({ status });

      const result = await h.withWorkers(stubs, (run) => run.execute('changeMachineDepartment', input));

      expect(result).toEqual({ machineId: m.id, status });
      expect(stubs.labels()).toEqual(
        HAPPY.map((l) => (l === 'setMachineStatus:running' ? `setMachineStatus:${status}` : l)),
      );
      const libvirt = firewallWorld(stubs).libvirt;
      expect(libvirt.get(m.filterName)!.filterrefs).toEqual([{ filter: targetFilter }]);
      expect(libvirt.has(targetFilter)).toBe(true);
      expect(libvirt.has(m.departmentFilterName)).toBe(false); // nothing else on the host used it
      expect(stubs.world.machines.get(m.id)).toMatchObject({
        departmentId: TARGET,
        status,
        currentOperationId: null,
      });
      expect(stubs.releases).toEqual([{ machineId: m.id, operationId: input.operationId }]);
    },
  );

  it('the old department filter stays while another machine of it is on the host', async () => {
    const hostName = uniqueId('host');
    const m = machineFixture(uniqueId('m'), hostName, { status: 'off' });
    const other = machineFixture(uniqueId('other'), hostName, { status: 'off' });
    const stubs = createStubs({ hostName, machines: [m, other] });

    await h.withWorkers(stubs, (run) =>
      run.execute('changeMachineDepartment', {
        ...operationContext(),
        machineId: m.id,
        departmentId: TARGET,
      }),
    );

    expect(stubs.labels()).toContain('planPrune');
    expect(stubs.labels()).not.toContain('pruneFilters');
    expect(firewallWorld(stubs).libvirt.has(m.departmentFilterName)).toBe(true);
  });

  it('the same department: a no-op that changes nothing', async () => {
    const { stubs, m, input } = setUp();
    const result = await h.withWorkers(stubs, (run) =>
      run.execute('changeMachineDepartment', { ...input, departmentId: m.departmentId }),
    );
    expect(result).toEqual({ machineId: m.id, status: 'running', outcome: 'noop' });
    expect(stubs.labels()).toEqual(['beginOperation', 'planDepartmentChange', 'finishOperation:succeeded']);
  });

  it.concurrent.each(['creating', 'updating', 'destroying', 'failed'] as const)(
    'a %s machine is refused; nothing changes',
    async (status) => {
      const { stubs, input } = setUp({ status });
      const before = filterSnapshot(stubs);
      await h.withWorkers(stubs, (run) =>
        expectOperationFailure(run.execute('changeMachineDepartment', input), FailureType.IllegalTransition),
      );
      expect(stubs.labels()).toEqual(['beginOperation', 'planDepartmentChange', 'finishOperation:failed']);
      expect(filterSnapshot(stubs)).toEqual(before);
    },
  );

  describe('a failure at every step compensates exactly what was registered, in reverse', () => {
    const status = 'setMachineStatus:running';
    const cases: Array<{ call: string; undos: string[] }> = [
      { call: 'planDepartmentChange', undos: [] },
      { call: 'setMachineStatus:updating', undos: [status] },
      { call: 'readFilters', undos: [status] },
      { call: 'ensureDepartmentFilter', undos: ['restoreFilters', status] },
      { call: 'ensureVmFilter', undos: ['restoreFilters', 'restoreFilters', status] },
      {
        call: 'setMachineDepartment',
        undos: ['setMachineDepartment', 'restoreFilters', 'restoreFilters', status],
      },
      { call: 'planPrune', undos: ['setMachineDepartment', 'restoreFilters', 'restoreFilters', status] },
      {
        call: 'pruneFilters',
        undos: ['restoreFilters', 'setMachineDepartment', 'restoreFilters', 'restoreFilters', status],
      },
    ];
    it.concurrent.each(cases)(
      'failure at $call → undo $undos; filters, row and status as before',
      async ({ call, undos }) => {
        const { stubs, m, input } = setUp({}, { fail: { [call]: INJECTED } });
        const before = filterSnapshot(stubs);

        await h.withWorkers(stubs, (run) =>
          expectOperationFailure(run.execute('changeMachineDepartment', input), INJECTED),
        );

        const labels = stubs.labels();
        expect(labels.slice(labels.indexOf(call) + 1)).toEqual([...undos, 'finishOperation:failed']);
        expect(filterSnapshot(stubs)).toEqual(before);
        expect(stubs.world.machines.get(m.id)).toMatchObject({
          departmentId: m.departmentId,
          status: 'running',
          currentOperationId: null,
        });
      },
    );

    it('failure at the final status write: everything is undone as well', async () => {
      const { stubs, m, input } = setUp(
        {},
        { fail: { 'setMachineStatus:running': { type: INJECTED, times: 1 } } },
      );
      const before = filterSnapshot(stubs);
      await h.withWorkers(stubs, (run) =>
        expectOperationFailure(run.execute('changeMachineDepartment', input), INJECTED),
      );
      expect(filterSnapshot(stubs)).toEqual(before);
      expect(stubs.world.machines.get(m.id)).toMatchObject({
        departmentId: m.departmentId,
        status: 'running',
      });
    });
  });

  it('cancelled while the VM filter is redefined: filters, row and status as before', async () => {
    const { stubs, m, input } = setUp();
    const gate = stubs.gate('ensureVmFilter');
    const before = filterSnapshot(stubs);

    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('changeMachineDepartment', input);
      await within(gate.entered, 'the VM filter redefine');
      await handle.cancel();
      await expectOperationFailure(handle.result(), FailureType.Cancelled);
    });

    expect(stubs.labels().slice(-5)).toEqual([
      'ensureVmFilter:cancelled',
      'restoreFilters',
      'restoreFilters',
      'setMachineStatus:running',
      'finishOperation:cancelled',
    ]);
    expect(filterSnapshot(stubs)).toEqual(before);
    expect(stubs.world.machines.get(m.id)).toMatchObject({ departmentId: m.departmentId, status: 'running' });
  });
});
