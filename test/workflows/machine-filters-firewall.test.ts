/**
 * The filters of a machine's lifecycle (workflow tier, stubbed activities): create defines the compiled
 * department and VM filters; a failed create prunes the department filter it defined when nothing else on
 * the host uses it; destroy prunes the department's filter and the custom filters after removing the VM's,
 * and keeps them while another machine of the department is on the host.
 */
import { libvirtNames } from '../../src/workflows/shared';
import { firewallWorld } from '../support/firewall-stubs';
import { uniqueId } from '../support/temporal';
import { WorkflowHarness, expectOperationFailure, operationContext } from '../support/workflow-harness';
import { INJECTED, createStubs, machineFixture } from '../support/workflow-stubs';

let h: WorkflowHarness;
beforeAll(async () => {
  h = await WorkflowHarness.create();
});
afterAll(async () => {
  await h?.teardown();
});

const deptFilter = libvirtNames.departmentFilter('dept-1');
const create = () => ({
  ...operationContext(),
  machineId: uniqueId('m'),
  name: 'web',
  templateId: 'template-1',
  departmentId: 'dept-1',
  ownerId: 'owner-1',
});

describe('machine filters', () => {
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
