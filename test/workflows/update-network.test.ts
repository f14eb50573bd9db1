/**
 * updateNetwork against the real dev server with stubbed activities: the happy paths, a failure at every step
 * (exactly the undos registered so far run, newest first, and the world is as before), cancellation, and
 * the refusals that must change nothing.
 */
import { randomUUID } from 'node:crypto';
import { FailureType } from '../../src/workflows/shared';
import { useWorkflowHarness, expectOperationFailure, within } from '../support/workflow-harness';
import { INJECTED, createStubs, machineFixture, type StubOptions } from '../support/workflow-stubs';
import { libvirtFixture, networkFixture } from '../support/network-stubs';
import { uniqueId } from '../support/temporal';
import { labels, update, withNetwork } from './network-fixtures';

const h = useWorkflowHarness();

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
