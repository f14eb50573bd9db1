/**
 * createNetwork against the real dev server with stubbed activities: the happy paths, a failure at every step
 * (exactly the undos registered so far run, newest first, and the world is as before), cancellation, and
 * the refusals that must change nothing.
 */
import { FailureType, libvirtNames, type CreateNetworkInput } from '../../src/workflows/shared';
import { useWorkflowHarness, expectOperationFailure, within } from '../support/workflow-harness';
import { INJECTED } from '../support/workflow-stubs';
import { CREATE, createInput, labels, world } from './network-fixtures';

const h = useWorkflowHarness();

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
