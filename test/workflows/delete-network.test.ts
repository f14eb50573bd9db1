/**
 * deleteNetwork against the real dev server with stubbed activities: the happy paths, a failure at every step
 * (exactly the undos registered so far run, newest first, and the world is as before), cancellation, and
 * the refusals that must change nothing.
 */
import { randomUUID } from 'node:crypto';
import { FailureType } from '../../src/workflows/shared';
import { useWorkflowHarness, expectOperationFailure, operationContext } from '../support/workflow-harness';
import { INJECTED, createStubs, machineFixture } from '../support/workflow-stubs';
import { libvirtFixture, networkFixture, networkWorld } from '../support/network-stubs';
import { uniqueId } from '../support/temporal';
import { labels, withNetwork, world } from './network-fixtures';

const h = useWorkflowHarness();

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
