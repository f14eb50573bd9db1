/**
 * The network workflows (createNetwork, updateNetwork, deleteNetwork, changeMachineNetwork) against the
 * real dev server with stubbed activities: the happy paths, a failure at every step (exactly the undos
 * registered so far run, newest first, and the world is as before), cancellation, and the refusals that
 * must change nothing.
 */
import { randomUUID } from 'node:crypto';
import type { NetworkView } from '../../src/activities/db-network';
import {
  FailureType,
  libvirtNames,
  type ChangeMachineNetworkInput,
  type CreateNetworkInput,
  type UpdateNetworkInput,
} from '../../src/workflows/shared';
import {
  WorkflowHarness,
  expectOperationFailure,
  operationContext,
  within,
} from '../support/workflow-harness';
import {
  INJECTED,
  createStubs,
  machineFixture,
  type StubOptions,
  type Stubs,
} from '../support/workflow-stubs';
import {
  libvirtFixture,
  networkFixture,
  networkWorld,
  type NetworkStubOptions,
} from '../support/network-stubs';
import { uniqueId } from '../support/temporal';

let h: WorkflowHarness;
beforeAll(async () => {
  h = await WorkflowHarness.create();
});
afterAll(async () => {
  await h?.teardown();
});

/** Call labels, with the target status of setNetworkStatus (`setNetworkStatus:active`). */
function labels(stubs: Stubs): string[] {
  return stubs.calls.map((c) =>
    c.name === 'setNetworkStatus' ? `setNetworkStatus:${(c.input as { status: string }).status}` : c.label,
  );
}

/** A stub world with the host's default network (10.250.0.0/24) and the given network rows. */
function world(network: NetworkStubOptions = {}, more: Partial<StubOptions> = {}) {
  const hostName = uniqueId('host');
  const def = networkFixture(randomUUID(), hostName, {
    internalName: 'vmflow-default',
    cidr: '10.250.0.0/24',
  });
  const defaultLibvirt = {
    ...libvirtFixture({ ...def, gateway: '10.250.0.1', dhcpStart: null, dhcpEnd: null }),
  };
  defaultLibvirt.uuid = 'not-a-vmflow-network';
  const stubs = createStubs({
    hostName,
    ...more,
    network: { libvirtNetworks: [defaultLibvirt], ...network },
  });
  return { stubs, hostName, w: networkWorld(stubs) };
}

function createInput(over: Partial<CreateNetworkInput> = {}): CreateNetworkInput {
  return {
    ...operationContext(),
    networkId: randomUUID(),
    name: `lab ${uniqueId('x')}`,
    mode: 'nat',
    cidr: '10.252.7.0/24',
    dhcpStart: '10.252.7.100',
    dhcpEnd: '10.252.7.200',
    ...over,
  };
}

const CREATE = [
  'beginOperation',
  'planNetwork',
  'checkHostNetwork',
  'insertNetwork',
  'defineNetwork',
  'startNetwork',
  'setNetworkAutostart',
  'setNetworkStatus:active',
];

describe('createNetwork', () => {
  it('validates, records, defines, starts, autostarts, marks active, releases', async () => {
    const { stubs, w } = world();
    const input = createInput({ staticHosts: [{ mac: '52:54:00:00:07:01', ip: '10.252.7.10' }] });

    const result = await h.withWorkers(stubs, (run) => run.execute('createNetwork', input));

    expect(result).toEqual({ networkId: input.networkId, status: 'active' });
    expect(labels(stubs)).toEqual([...CREATE, 'releaseNetwork', 'finishOperation:succeeded']);
    expect(w.rows.get(input.networkId)).toMatchObject({
      status: 'active',
      currentOperationId: null,
      cidr: '10.252.7.0/24',
      gateway: '10.252.7.1',
      internalName: libvirtNames.network(input.networkId),
      bridgeName: libvirtNames.bridge(input.networkId),
    });
    const net = w.libvirt.get(libvirtNames.network(input.networkId))!;
    expect(net).toMatchObject({ uuid: input.networkId, active: true, autostart: true });
    expect(net.ranges).toEqual([{ start: '10.252.7.100', end: '10.252.7.200' }]);
    expect(net.hosts).toEqual([{ mac: '52:54:00:00:07:01', ip: '10.252.7.10' }]);
    const step = stubs.inputs<{ resource: string; resourceId: string }>('beginOperation')[0]!;
    expect(step).toMatchObject({ resource: 'networks', resourceId: input.networkId, type: 'create_network' });
  });

  it.each([
    { failing: 'planNetwork', undos: [] as string[] },
    { failing: 'checkHostNetwork', undos: [] },
    { failing: 'insertNetwork', undos: ['deleteNetworkRecord'] },
    { failing: 'defineNetwork', undos: ['undefineNetwork', 'deleteNetworkRecord'] },
    { failing: 'startNetwork', undos: ['stopNetwork', 'undefineNetwork', 'deleteNetworkRecord'] },
    { failing: 'setNetworkAutostart', undos: ['stopNetwork', 'undefineNetwork', 'deleteNetworkRecord'] },
    { failing: 'setNetworkStatus:active', undos: ['stopNetwork', 'undefineNetwork', 'deleteNetworkRecord'] },
  ])('a failure at $failing runs exactly $undos and leaves nothing', async ({ failing, undos }) => {
    const name = failing.split(':')[0]!;
    const { stubs, w } = world({}, { fail: { [name]: INJECTED } });
    const input = createInput();

    await h.withWorkers(stubs, async (run) => {
      await expectOperationFailure((await run.start('createNetwork', input)).result(), INJECTED);
    });

    const forward = CREATE.slice(0, CREATE.indexOf(failing) + 1);
    expect(labels(stubs)).toEqual([...forward, ...undos, 'releaseNetwork', 'finishOperation:failed']);
    expect(w.rows.has(input.networkId)).toBe(false);
    expect(w.libvirt.has(libvirtNames.network(input.networkId))).toBe(false);
    expect(stubs.world.operations.get(input.operationId)).toMatchObject({ status: 'failed' });
  });

  it.each([
    { blocked: 'defineNetwork', undos: ['undefineNetwork', 'deleteNetworkRecord'] },
    { blocked: 'startNetwork', undos: ['stopNetwork', 'undefineNetwork', 'deleteNetworkRecord'] },
  ])('cancelled while $blocked runs: $undos run, nothing is left', async ({ blocked, undos }) => {
    const { stubs, w } = world();
    const gate = stubs.gate(blocked);
    const input = createInput();

    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('createNetwork', input);
      await within(gate.entered, `${blocked} to start`);
      await handle.cancel();
      await expectOperationFailure(handle.result(), FailureType.Cancelled);
    });

    const forward = CREATE.slice(0, CREATE.indexOf(blocked) + 1);
    expect(labels(stubs)).toEqual([
      ...forward,
      `${blocked}:cancelled`,
      ...undos,
      'releaseNetwork',
      'finishOperation:cancelled',
    ]);
    expect(w.rows.size).toBe(0);
    expect(w.libvirt.has(libvirtNames.network(input.networkId))).toBe(false);
  });

  it.each([
    {
      what: 'a subnet overlapping a libvirt network of the host',
      over: { cidr: '10.250.0.0/16', dhcpStart: '10.250.7.100', dhcpEnd: '10.250.7.200' },
      type: FailureType.Validation,
      field: /cidr/,
    },
    {
      what: 'a reversed DHCP range',
      over: { dhcpStart: '10.252.7.200', dhcpEnd: '10.252.7.100' },
      type: FailureType.Validation,
      field: /dhcpEnd/,
    },
    {
      what: 'bandwidth on a host without QoS',
      over: { bandwidth: { inbound: { average: 1000 } } },
      type: FailureType.Unsupported,
      field: /bandwidth/,
    },
  ])('refuses $what and changes nothing', async ({ over, type, field }) => {
    const { stubs, w } = world();
    const input = createInput(over as Partial<CreateNetworkInput>);

    const failure = await h.withWorkers(stubs, async (run) =>
      expectOperationFailure((await run.start('createNetwork', input)).result(), type),
    );

    expect(failure.message).toMatch(field);
    expect(failure.details?.[0]).toMatchObject({ field: expect.stringMatching(field) });
    expect(labels(stubs).filter((l) => /define|start|insert/i.test(l))).toEqual([]);
    expect(w.rows.size).toBe(0);
    expect([...w.libvirt.keys()]).toEqual(['vmflow-default']);
  });
});

/** An active network (row and libvirt network) on a fresh stub host, plus machines. */
function withNetwork(
  over: Partial<NetworkView> = {},
  opts: NetworkStubOptions = {},
  more: Partial<StubOptions> = {},
) {
  const hostName = uniqueId('host');
  const n = networkFixture(randomUUID(), hostName, over, 8);
  const stubs = createStubs({
    hostName,
    ...more,
    network: { networks: [n], libvirtNetworks: [libvirtFixture(n)], ...opts },
  });
  return { stubs, n, w: networkWorld(stubs), hostName };
}

const update = (n: NetworkView, over: Partial<UpdateNetworkInput>): UpdateNetworkInput => ({
  ...operationContext(),
  networkId: n.id,
  ...over,
});

describe('updateNetwork: live edits', () => {
  const lease = { mac: '52:54:00:00:08:01', ip: '10.252.8.10', name: 'web' };
  const LIVE = [
    'beginOperation',
    'planNetworkChange',
    'setNetworkStatus:updating',
    'addDhcpRange',
    'removeDhcpRange',
    'removeDhcpHost',
    'addDhcpHost',
    'setNetworkStatus:active',
  ];
  const base = { staticHosts: [{ mac: '52:54:00:00:08:02', ip: '10.252.8.11' }] };
  const change = { dhcpStart: '10.252.8.50', dhcpEnd: '10.252.8.60', staticHosts: [lease] };

  it('changes the range (new first, then the old one goes) and the leases live; the row follows', async () => {
    const { stubs, n, w } = withNetwork(base);

    const result = await h.withWorkers(stubs, (run) => run.execute('updateNetwork', update(n, change)));

    expect(result).toEqual({ networkId: n.id, status: 'active', applied: 'live' });
    expect(labels(stubs)).toEqual([...LIVE, 'releaseNetwork', 'finishOperation:succeeded']);
    const net = w.libvirt.get(n.internalName)!;
    expect(net.ranges).toEqual([{ start: '10.252.8.50', end: '10.252.8.60' }]);
    expect(net.hosts).toEqual([lease]);
    expect(w.rows.get(n.id)).toMatchObject({
      status: 'active',
      dhcpStart: '10.252.8.50',
      dhcpEnd: '10.252.8.60',
      staticHosts: [lease],
      currentOperationId: null,
    });
  });

  it.each([
    { failing: 'addDhcpRange', undos: ['removeDhcpRange', 'setNetworkStatus:active'] },
    { failing: 'removeDhcpRange', undos: ['addDhcpRange', 'removeDhcpRange', 'setNetworkStatus:active'] },
    {
      failing: 'removeDhcpHost',
      undos: ['addDhcpHost', 'addDhcpRange', 'removeDhcpRange', 'setNetworkStatus:active'],
    },
    {
      failing: 'addDhcpHost',
      undos: ['removeDhcpHost', 'addDhcpHost', 'addDhcpRange', 'removeDhcpRange', 'setNetworkStatus:active'],
    },
    {
      failing: 'setNetworkStatus:active',
      undos: ['removeDhcpHost', 'addDhcpHost', 'addDhcpRange', 'removeDhcpRange', 'setNetworkStatus:active'],
    },
  ])(
    'a failure at $failing runs $undos: libvirt and the row are exactly as before',
    async ({ failing, undos }) => {
      const [name, status] = failing.split(':') as [string, string | undefined];
      // Only the forward call fails: the undo of the same activity must work.
      const fail = {
        [name]: status
          ? { when: (i: { status: string; onlyIfHeldBy?: string }) => i.status === status && !i.onlyIfHeldBy }
          : { type: INJECTED, times: 1 },
      };
      const { stubs, n, w } = withNetwork(base, {}, { fail: fail as StubOptions['fail'] });
      const before = {
        row: structuredClone(w.rows.get(n.id)),
        net: structuredClone(w.libvirt.get(n.internalName)),
      };

      await h.withWorkers(stubs, async (run) => {
        await expectOperationFailure(
          (await run.start('updateNetwork', update(n, change))).result(),
          INJECTED,
        );
      });

      expect(labels(stubs)).toEqual([
        ...LIVE.slice(0, LIVE.indexOf(failing) + 1),
        ...undos,
        'releaseNetwork',
        'finishOperation:failed',
      ]);
      expect(w.rows.get(n.id)).toEqual(before.row);
      expect(w.libvirt.get(n.internalName)).toEqual(before.net);
    },
  );

  it('cancelled during a live edit: the edits made are undone, the row is as before', async () => {
    const { stubs, n, w } = withNetwork(base);
    const gate = stubs.gate('removeDhcpRange');
    const before = {
      row: structuredClone(w.rows.get(n.id)),
      net: structuredClone(w.libvirt.get(n.internalName)),
    };

    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('updateNetwork', update(n, change));
      await within(gate.entered, 'removeDhcpRange to start');
      await handle.cancel();
      await expectOperationFailure(handle.result(), FailureType.Cancelled);
    });

    expect(w.rows.get(n.id)).toEqual(before.row);
    expect(w.libvirt.get(n.internalName)).toEqual(before.net);
  });

  it('a change to nothing new is a no-op', async () => {
    const { stubs, n } = withNetwork();
    const result = await h.withWorkers(stubs, (run) =>
      run.execute('updateNetwork', update(n, { dhcpStart: n.dhcpStart, dhcpEnd: n.dhcpEnd })),
    );
    expect(result).toEqual({ networkId: n.id, status: 'active', applied: 'noop' });
    expect(labels(stubs)).toEqual(['beginOperation', 'planNetworkChange', 'finishOperation:succeeded']);
  });
});

describe('updateNetwork: redefine', () => {
  const newSubnet = { cidr: '10.252.9.0/24', dhcpStart: '10.252.9.100', dhcpEnd: '10.252.9.200' };
  const REDEFINE = [
    'beginOperation',
    'planNetworkChange',
    'checkHostNetwork',
    'networkDomains',
    'setNetworkStatus:updating',
    'getNetworkState',
    'redefineNetwork',
    'setNetworkStatus:active',
  ];

  it('a new subnet: checks the host, redefines (old definition kept for the undo), row follows', async () => {
    const { stubs, n, w } = withNetwork();

    const result = await h.withWorkers(stubs, (run) => run.execute('updateNetwork', update(n, newSubnet)));

    expect(result).toEqual({ networkId: n.id, status: 'active', applied: 'redefined' });
    expect(labels(stubs)).toEqual([...REDEFINE, 'releaseNetwork', 'finishOperation:succeeded']);
    expect(w.libvirt.get(n.internalName)).toMatchObject({
      active: true,
      spec: { ip: { address: '10.252.9.1' } },
    });
    expect(w.rows.get(n.id)).toMatchObject({
      cidr: '10.252.9.0/24',
      gateway: '10.252.9.1',
      status: 'active',
    });
  });

  it('the new definition does not start: the old one runs again, the row is as before', async () => {
    const { stubs, n, w } = withNetwork({}, { redefineStartFails: true });
    const before = {
      row: structuredClone(w.rows.get(n.id)),
      net: structuredClone(w.libvirt.get(n.internalName)),
    };

    await h.withWorkers(stubs, async (run) => {
      await expectOperationFailure(
        (await run.start('updateNetwork', update(n, newSubnet))).result(),
        FailureType.Refused,
      );
    });

    expect(labels(stubs)).toEqual([
      ...REDEFINE.slice(0, REDEFINE.indexOf('redefineNetwork') + 1),
      'restoreNetwork',
      'setNetworkStatus:active',
      'releaseNetwork',
      'finishOperation:failed',
    ]);
    expect(w.rows.get(n.id)).toEqual(before.row);
    expect(w.libvirt.get(n.internalName)).toEqual(before.net);
  });

  it('the final write fails: the old definition is restored', async () => {
    const { stubs, n, w } = withNetwork(
      {},
      {},
      {
        fail: {
          setNetworkStatus: {
            when: (i: { status: string; onlyIfHeldBy?: string }) => i.status === 'active' && !i.onlyIfHeldBy,
          } as never,
        },
      },
    );
    const before = {
      row: structuredClone(w.rows.get(n.id)),
      net: structuredClone(w.libvirt.get(n.internalName)),
    };

    await h.withWorkers(stubs, async (run) => {
      await expectOperationFailure(
        (await run.start('updateNetwork', update(n, newSubnet))).result(),
        INJECTED,
      );
    });

    expect(w.rows.get(n.id)).toEqual(before.row);
    expect(w.libvirt.get(n.internalName)).toEqual(before.net);
  });

  it('refused while a running machine uses the network, before anything changes', async () => {
    const hostName = uniqueId('host');
    const n = networkFixture(randomUUID(), hostName, {}, 8);
    const m = machineFixture(uniqueId('m'), hostName, { status: 'running', networkName: n.internalName });
    const stubs = createStubs({
      hostName,
      machines: [m],
      network: { networks: [n], libvirtNetworks: [libvirtFixture(n)] },
    });

    await h.withWorkers(stubs, async (run) => {
      await expectOperationFailure(
        (await run.start('updateNetwork', update(n, newSubnet))).result(),
        FailureType.Refused,
      );
    });
    expect(labels(stubs)).toEqual([
      'beginOperation',
      'planNetworkChange',
      'releaseNetwork',
      'finishOperation:failed',
    ]);
  });

  it('refused while a domain of the host runs on it (one vmflow has no row for)', async () => {
    const { stubs, n, w } = withNetwork(
      {},
      { domains: [{ domain: 'hand-made', machineId: null, active: true }] },
    );
    await h.withWorkers(stubs, async (run) => {
      await expectOperationFailure(
        (await run.start('updateNetwork', update(n, newSubnet))).result(),
        FailureType.Refused,
      );
    });
    expect(labels(stubs)).not.toContain('redefineNetwork');
    expect(w.rows.get(n.id)).toMatchObject({ status: 'active', cidr: n.cidr, currentOperationId: null });
  });
});

describe('deleteNetwork', () => {
  const DELETE = [
    'beginOperation',
    'planNetworkDelete',
    'networkDomains',
    'setNetworkStatus:deleting',
    'stopNetwork',
    'undefineNetwork',
    'deleteNetworkRecord',
  ];

  it('stops, undefines, deletes the row', async () => {
    const { stubs, n, w } = withNetwork();
    const result = await h.withWorkers(stubs, (run) =>
      run.execute('deleteNetwork', { ...operationContext(), networkId: n.id }),
    );
    expect(result).toEqual({ networkId: n.id, status: 'deleted' });
    expect(labels(stubs)).toEqual([...DELETE, 'finishOperation:succeeded']);
    expect(w.rows.has(n.id)).toBe(false);
    expect(w.libvirt.has(n.internalName)).toBe(false);
  });

  it('refused (InUse) while a machine row names it: nothing changes', async () => {
    const hostName = uniqueId('host');
    const n = networkFixture(randomUUID(), hostName, {}, 8);
    const m = machineFixture(uniqueId('m'), hostName, { networkName: n.internalName });
    const stubs = createStubs({
      hostName,
      machines: [m],
      network: { networks: [n], libvirtNetworks: [libvirtFixture(n)] },
    });
    const w = networkWorld(stubs);

    const failure = await h.withWorkers(stubs, async (run) =>
      expectOperationFailure(
        (await run.start('deleteNetwork', { ...operationContext(), networkId: n.id })).result(),
        FailureType.InUse,
      ),
    );
    expect(failure.details?.[0]).toMatchObject({ machines: [{ id: m.id, name: m.name }] });
    expect(w.rows.get(n.id)).toEqual(n);
    expect(w.libvirt.get(n.internalName)?.active).toBe(true);
  });

  it('refused (InUse) while a libvirt domain has a NIC on it: the row is as before', async () => {
    const { stubs, n, w } = withNetwork(
      {},
      { domains: [{ domain: 'hand-made', machineId: null, active: false }] },
    );
    await h.withWorkers(stubs, async (run) => {
      await expectOperationFailure(
        (await run.start('deleteNetwork', { ...operationContext(), networkId: n.id })).result(),
        FailureType.InUse,
      );
    });
    expect(w.rows.get(n.id)).toEqual(n);
  });

  it('fails at undefineNetwork: the row is `failed` with the reason; deleting again finishes', async () => {
    const { stubs, n, w } = withNetwork({}, {}, { fail: { undefineNetwork: { type: INJECTED, times: 1 } } });
    await h.withWorkers(stubs, async (run) => {
      await expectOperationFailure(
        (await run.start('deleteNetwork', { ...operationContext(), networkId: n.id })).result(),
        INJECTED,
      );
      expect(w.rows.get(n.id)).toMatchObject({
        status: 'failed',
        currentOperationId: null,
        lastError: expect.stringContaining('injected'),
      });
      await run.execute('deleteNetwork', { ...operationContext(), networkId: n.id });
    });
    expect(w.rows.has(n.id)).toBe(false);
    expect(w.libvirt.has(n.internalName)).toBe(false);
  });

  it('a network that is gone already: nothing to do', async () => {
    const { stubs } = world();
    const result = await h.withWorkers(stubs, (run) =>
      run.execute('deleteNetwork', { ...operationContext(), networkId: randomUUID() }),
    );
    expect(result).toMatchObject({ status: 'deleted', applied: 'noop' });
  });
});

describe('changeMachineNetwork', () => {
  function setUp(status: 'off' | 'running', opts: NetworkStubOptions = {}, more: Partial<StubOptions> = {}) {
    const hostName = uniqueId('host');
    const target = networkFixture(randomUUID(), hostName, {}, 8);
    const m = machineFixture(uniqueId('m'), hostName, { status, networkName: 'vmflow-default' });
    const stubs = createStubs({
      hostName,
      machines: [m],
      domainState: status === 'running' ? 'running' : 'shutoff',
      ...more,
      network: { networks: [target], libvirtNetworks: [libvirtFixture(target)], ...opts },
    });
    const input: ChangeMachineNetworkInput = { ...operationContext(), machineId: m.id, networkId: target.id };
    return { stubs, m, target, input, w: networkWorld(stubs) };
  }

  it('running machine: marks updating, moves the NIC live, records the network, back to running', async () => {
    const { stubs, m, target, input, w } = setUp('running');

    const result = await h.withWorkers(stubs, (run) => run.execute('changeMachineNetwork', input));

    expect(result).toEqual({ machineId: m.id, status: 'running', outcome: 'done' });
    expect(stubs.labels()).toEqual([
      'beginOperation',
      'planMachineNetwork',
      'setMachineStatus:updating',
      'moveMachineInterface',
      'setMachineStatus:running',
      'finishOperation:succeeded',
    ]);
    expect(stubs.inputs('moveMachineInterface')).toEqual([
      { internalName: m.internalName, machineId: m.id, mac: m.macAddress, network: target.internalName },
    ]);
    expect(stubs.world.machines.get(m.id)).toMatchObject({
      networkName: target.internalName,
      currentOperationId: null,
    });
    expect(w.nics.get(m.id)).toBe(target.internalName);
    expect(stubs.releases).toEqual([{ machineId: m.id, operationId: input.operationId }]);
  });

  it('libvirt cannot move the running NIC: the definition moves, the operation says it applies at the next boot', async () => {
    const { stubs, input } = setUp('running', { liveMoveUnsupported: true });
    await h.withWorkers(stubs, (run) => run.execute('changeMachineNetwork', input));
    expect(stubs.stepLabels()).toEqual(expect.arrayContaining(['appliesAtNextBoot:completed']));
  });

  it.each([
    { failing: 'moveMachineInterface', undos: ['moveMachineInterface', 'setMachineStatus:off'] },
    { failing: 'setMachineStatus:off', undos: ['moveMachineInterface', 'setMachineStatus:off'] },
  ])('a failure at $failing puts the NIC and the row back ($undos)', async ({ failing, undos }) => {
    const { stubs, m, input, w } = setUp('off', {}, { fail: { [failing]: { type: INJECTED, times: 1 } } });
    const before = structuredClone(stubs.world.machines.get(m.id));

    await h.withWorkers(stubs, async (run) => {
      await expectOperationFailure((await run.start('changeMachineNetwork', input)).result(), INJECTED);
    });

    const forward = [
      'beginOperation',
      'planMachineNetwork',
      'setMachineStatus:updating',
      'moveMachineInterface',
    ];
    expect(stubs.labels()).toEqual([
      ...forward,
      ...(failing === 'setMachineStatus:off' ? ['setMachineStatus:off'] : []),
      ...undos,
      'finishOperation:failed',
    ]);
    expect(stubs.inputs<{ network: string }>('moveMachineInterface').at(-1)!.network).toBe('vmflow-default');
    expect(w.nics.get(m.id)).toBe('vmflow-default');
    expect(stubs.world.machines.get(m.id)).toEqual(before);
  });

  it('already on the network: nothing to do', async () => {
    const { stubs, m, target, input } = setUp('off');
    stubs.world.machines.get(m.id)!.networkName = target.internalName;
    const result = await h.withWorkers(stubs, (run) => run.execute('changeMachineNetwork', input));
    expect(result).toMatchObject({ outcome: 'noop' });
    expect(stubs.labels()).toEqual(['beginOperation', 'planMachineNetwork', 'finishOperation:succeeded']);
  });

  it('refuses a machine that is not off, running or suspended', async () => {
    const { stubs, m, input } = setUp('off');
    stubs.world.machines.get(m.id)!.status = 'creating';
    await h.withWorkers(stubs, async (run) => {
      await expectOperationFailure(
        (await run.start('changeMachineNetwork', input)).result(),
        FailureType.IllegalTransition,
      );
    });
    expect(stubs.labels()).not.toContain('moveMachineInterface');
  });
});
