/**
 * changeMachineNetwork against the real dev server with stubbed activities: the happy paths, a failure at every step
 * (exactly the undos registered so far run, newest first, and the world is as before), cancellation, and
 * the refusals that must change nothing.
 */
import { randomUUID } from 'node:crypto';
import { FailureType, type ChangeMachineNetworkInput } from '../../src/workflows/shared';
import { useWorkflowHarness, expectOperationFailure, operationContext } from '../support/workflow-harness';
import { INJECTED, createStubs, machineFixture, type StubOptions } from '../support/workflow-stubs';
import {
  libvirtFixture,
  networkFixture,
  networkWorld,
  type NetworkStubOptions,
} from '../support/network-stubs';
import { uniqueId } from '../support/temporal';

const h = useWorkflowHarness();

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
