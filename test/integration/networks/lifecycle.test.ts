/**
 * Networks end to end on the real stack (libvirtd in its namespace, MariaDB, Temporal): create (bridge
 * and dnsmasq up, autostart), live DHCP range and static lease updates visible in libvirt's live and
 * persistent XML, a safe redefine to a new subnet and one whose new definition fails to start (the old
 * network runs again), machines created on a network and moved between networks (same MAC and filterref,
 * live), the delete refused while a machine is attached and complete after, leaving no bridge and no
 * dnsmasq, the host's real networks refused as overlaps, and QoS refused on this kernel (no sfq).
 */
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { Host } from '../../../src/entities/host';
import { Machine } from '../../../src/entities/machine';
import { Network } from '../../../src/entities/network';
import { parseDomainXml } from '../../../src/libvirt/xml';
import { FailureType, libvirtNames } from '../../../src/workflows/shared';
import {
  createMachine,
  destroyIfPresent,
  domainOf,
  runMachineOperation,
  seedWorld,
  type World,
} from '../../support/machines';
import {
  NO_NETWORK_TRACE,
  bridgePorts,
  definitionsOf,
  dnsmasqOf,
  linkExists,
  networkTraces,
  nicFilterOn,
  rangesOf,
  removeNetwork,
  runNetworkOperation,
  subnets,
} from '../../support/networks';
import { startStack, type Stack } from '../../support/stack';

const nextSubnet = subnets(253, 110);

/** The failure type of a failed workflow. */
async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => {
      throw new Error('expected the workflow to fail');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  return cause as ApplicationFailure;
}

describe('networks on the real stack', () => {
  let stack: Stack;
  let world: World;
  const made: string[] = [];

  const create = async (over: Record<string, unknown> = {}) => {
    const s = await nextSubnet(stack);
    const networkId = randomUUID();
    made.push(networkId);
    const input = {
      networkId,
      name: `net ${networkId.slice(0, 8)}`,
      mode: 'nat' as const,
      cidr: s.cidr,
      dhcpStart: s.dhcpStart,
      dhcpEnd: s.dhcpEnd,
      hostName: stack.hostName,
      ...over,
    };
    return {
      networkId,
      s,
      input,
      result: await runNetworkOperation(stack.env.client, 'createNetwork', input),
    };
  };

  beforeAll(async () => {
    stack = await startStack();
    world = await seedWorld(stack.dataSource);
  });
  afterAll(async () => {
    for (const m of await stack.dataSource
      .getRepository(Machine)
      .findBy({ departmentId: world.department.id }))
      await destroyIfPresent(stack, m.id).catch(() => undefined);
    for (const id of made) await removeNetwork(stack, id).catch(() => undefined);
    await stack?.stop();
  });

  it('the host was probed at registration: no QoS on this kernel, and why in plain words', async () => {
    const host = await stack.dataSource.getRepository(Host).findOneByOrFail({ name: stack.hostName });
    expect(host.capabilities).toEqual({
      qos: false,
      qosReason: expect.stringMatching(/'sfq' queueing discipline/),
    });
  });

  it('creates a nat network: libvirt network running with autostart, bridge and dnsmasq up, row active', async () => {
    const { networkId, s, result } = await create();
    expect(result).toEqual({ networkId, status: 'active' });
    const net = await (await stack.libvirt.get()).lookupNetworkByName(libvirtNames.network(networkId));
    expect(await net.getUUID()).toBe(networkId);
    expect(await net.getAutostart()).toBe(true);
    const { live } = await definitionsOf(stack, networkId);
    expect(live).toMatchObject({
      mode: 'nat',
      bridgeName: libvirtNames.bridge(networkId),
      ip: { address: s.gateway, prefix: 24, dhcp: { start: s.dhcpStart, end: s.dhcpEnd } },
    });
    const traces = await networkTraces(stack, networkId);
    expect(traces).toMatchObject({ libvirt: true, active: true, bridge: true, dnsmasq: expect.any(Number) });
    expect(traces.dnsmasq).toBeGreaterThan(0);
    expect(traces.row).toMatchObject({
      status: 'active',
      currentOperationId: null,
      cidr: s.cidr,
      gateway: s.gateway,
    });
  });

  it('updates the DHCP range and static leases live: visible at once in the live and persistent XML', async () => {
    const { networkId, s } = await create();
    const pidsBefore = await dnsmasqOf(libvirtNames.network(networkId));
    const lease = { mac: '52:54:00:25:31:01', ip: s.at(10), name: 'db1' };

    const result = await runNetworkOperation(stack.env.client, 'updateNetwork', {
      networkId,
      dhcpStart: s.at(50),
      dhcpEnd: s.at(60),
      staticHosts: [lease],
    });

    expect(result).toEqual({ networkId, status: 'active', applied: 'live' });
    const { liveXml, configXml } = await definitionsOf(stack, networkId);
    for (const xml of [liveXml!, configXml]) {
      expect(rangesOf(xml)).toEqual([{ start: s.at(50), end: s.at(60) }]);
      expect(xml).toContain(`<host mac='${lease.mac}' name='db1' ip='${lease.ip}'/>`);
    }
    // Live: the network kept running (the same bridge), dnsmasq serves the new range.
    expect(await linkExists(libvirtNames.bridge(networkId))).toBe(true);
    expect((await dnsmasqOf(libvirtNames.network(networkId))).length).toBeGreaterThan(0);
    expect(pidsBefore.length).toBeGreaterThan(0);
    const row = await stack.dataSource.getRepository(Network).findOneByOrFail({ id: networkId });
    expect(row).toMatchObject({
      dhcpStart: s.at(50),
      dhcpEnd: s.at(60),
      staticHosts: [lease],
      status: 'active',
    });

    // Then the lease changes (same MAC, new address) and the range goes: still live.
    await runNetworkOperation(stack.env.client, 'updateNetwork', {
      networkId,
      dhcpStart: null,
      dhcpEnd: null,
      staticHosts: [],
    });
    const after = await definitionsOf(stack, networkId);
    for (const xml of [after.liveXml!, after.configXml]) {
      expect(rangesOf(xml)).toEqual([]);
      expect(xml).not.toContain(lease.mac);
    }
  });

  it('redefines to a new subnet (no machine on it): the network runs on the new definition', async () => {
    const { networkId } = await create();
    const t = await nextSubnet(stack);
    const result = await runNetworkOperation(stack.env.client, 'updateNetwork', {
      networkId,
      cidr: t.cidr,
      dhcpStart: t.dhcpStart,
      dhcpEnd: t.dhcpEnd,
    });
    expect(result).toEqual({ networkId, status: 'active', applied: 'redefined' });
    const { live, config } = await definitionsOf(stack, networkId);
    for (const def of [live!, config])
      expect(def.ip).toMatchObject({ address: t.gateway, dhcp: { start: t.dhcpStart } });
    expect(await networkTraces(stack, networkId)).toMatchObject({ active: true, bridge: true });
    expect(await stack.dataSource.getRepository(Network).findOneByOrFail({ id: networkId })).toMatchObject({
      cidr: t.cidr,
      gateway: t.gateway,
      status: 'active',
    });
  });

  it('safe redefine: when the new definition fails to start, the old network is put back and runs', async () => {
    const { networkId, s } = await create();
    const before = await definitionsOf(stack, networkId);
    const row = await stack.dataSource.getRepository(Network).findOneByOrFail({ id: networkId });
    const t = await nextSubnet(stack);
    stack.faults.arm('restartNetwork', 'before');
    try {
      const failure = await failureOf(
        runNetworkOperation(stack.env.client, 'updateNetwork', {
          networkId,
          cidr: t.cidr,
          dhcpStart: t.dhcpStart,
          dhcpEnd: t.dhcpEnd,
        }),
      );
      expect(failure.type).toBe(FailureType.Refused);
      expect(failure.message).toMatch(/did not start .* the previous one runs again/);
    } finally {
      stack.faults.clear();
    }
    const after = await definitionsOf(stack, networkId);
    expect(after.live).toEqual(before.live);
    expect(after.config).toEqual(before.config);
    expect(after.live?.ip?.address).toBe(s.gateway);
    expect(await networkTraces(stack, networkId)).toMatchObject({ active: true, bridge: true });
    const now = await stack.dataSource.getRepository(Network).findOneByOrFail({ id: networkId });
    expect({ ...now, updatedAt: null }).toEqual({ ...row, updatedAt: null });
  });

  it("refuses a subnet overlapping one of the host's libvirt networks (vmflow-default 10.250.0.0/24)", async () => {
    const networkId = randomUUID();
    const failure = await failureOf(
      runNetworkOperation(stack.env.client, 'createNetwork', {
        networkId,
        name: `overlap ${networkId.slice(0, 8)}`,
        mode: 'isolated',
        cidr: '10.250.0.0/23',
        hostName: stack.hostName,
      }),
    );
    expect(failure.type).toBe(FailureType.Validation);
    expect(failure.details?.[0]).toMatchObject({ field: 'cidr' });
    expect(failure.message).toMatch(/overlaps libvirt network vmflow-default/);
    expect(await networkTraces(stack, networkId)).toEqual({ ...NO_NETWORK_TRACE, row: null });
  });

  it('refuses bandwidth on this host (the kernel has no sfq): Unsupported, nothing made', async () => {
    const networkId = randomUUID();
    const s = await nextSubnet(stack);
    const failure = await failureOf(
      runNetworkOperation(stack.env.client, 'createNetwork', {
        networkId,
        name: `qos ${networkId.slice(0, 8)}`,
        mode: 'isolated',
        cidr: s.cidr,
        hostName: stack.hostName,
        bandwidth: { inbound: { average: 1000 } },
      }),
    );
    expect(failure.type).toBe(FailureType.Unsupported);
    expect(failure.message).toMatch(/bandwidth: .*'sfq' queueing discipline/);
    expect(await networkTraces(stack, networkId)).toEqual({ ...NO_NETWORK_TRACE, row: null });
  });

  it('a host that claims QoS but cannot: libvirt refuses at start, the create is undone completely', async () => {
    const hosts = stack.dataSource.getRepository(Host);
    const host = await hosts.findOneByOrFail({ name: stack.hostName });
    await hosts.update({ id: host.id }, { capabilities: { qos: true } });
    const networkId = randomUUID();
    try {
      const s = await nextSubnet(stack);
      const failure = await failureOf(
        runNetworkOperation(stack.env.client, 'createNetwork', {
          networkId,
          name: `qos2 ${networkId.slice(0, 8)}`,
          mode: 'isolated',
          cidr: s.cidr,
          hostName: stack.hostName,
          bandwidth: { outbound: { average: 1000 } },
        }),
      );
      expect(failure.type).toBe(FailureType.Refused);
      // Outbound limits need tc's police action (and inbound ones sfq): this kernel has neither.
      expect(failure.message).toMatch(/could not start .*tc .*police/);
    } finally {
      await hosts.update({ id: host.id }, { capabilities: host.capabilities });
    }
    expect(await networkTraces(stack, networkId)).toEqual({ ...NO_NETWORK_TRACE, row: null });
  });

  it('machines on a network: created on it, moved live to another (same MAC and filter, its DHCP server that of the new network), the delete refused while attached, then nothing left', async () => {
    const a = await create();
    const b = await create();
    const netA = libvirtNames.network(a.networkId);
    const netB = libvirtNames.network(b.networkId);
    const vm = await createMachine(stack, world, { networkName: netA, start: true });
    const dom = await domainOf(stack, vm.machineId);
    const nic = () =>
      Promise.all([dom.getXML(), dom.getXML({ inactive: true })]).then((xs) =>
        xs.map((x) => parseDomainXml(x).interfaces[0]!),
      );
    const [liveA, configA] = await nic();
    expect(liveA).toMatchObject({ source: netA });
    expect(configA).toMatchObject({ source: netA });
    const vmFilter = libvirtNames.vmFilter(vm.machineId);
    expect(configA.filterref).toEqual(await nicFilterOn(stack, netA, vmFilter));
    // On B: the same MAC and filter, the address learned from B's DHCP server.
    const onB = { source: netB, filterref: await nicFilterOn(stack, netB, vmFilter) };

    // Refused while attached: nothing changes.
    const refused = await failureOf(
      runNetworkOperation(stack.env.client, 'deleteNetwork', { networkId: a.networkId }),
    );
    expect(refused.type).toBe(FailureType.InUse);
    expect(refused.details?.[0]).toMatchObject({ machines: [{ id: vm.machineId, name: vm.name }] });
    expect(await networkTraces(stack, a.networkId)).toMatchObject({
      libvirt: true,
      active: true,
      bridge: true,
    });
    expect((await networkTraces(stack, a.networkId)).row).toMatchObject({
      status: 'active',
      currentOperationId: null,
    });

    // Moved live to B: the running NIC is on B's bridge, with the same MAC and filterref.
    const moved = await runMachineOperation(stack.env.client, 'changeMachineNetwork', {
      machineId: vm.machineId,
      networkId: b.networkId,
      actorId: null,
    });
    expect(moved).toEqual({ machineId: vm.machineId, status: 'running', outcome: 'done' });
    const [liveB, configB] = await nic();
    expect(liveB).toEqual({ ...liveA, ...onB });
    expect(configB).toEqual({ ...configA, ...onB });
    expect((await dom.getXML()).match(/<source network='[^']+'[^>]*bridge='([^']+)'/)?.[1]).toBe(
      libvirtNames.bridge(b.networkId),
    );
    expect(await stack.dataSource.getRepository(Machine).findOneByOrFail({ id: vm.machineId })).toMatchObject(
      {
        networkName: netB,
        status: 'running',
        currentOperationId: null,
      },
    );

    // A is free now: deleted, no bridge, no dnsmasq, no files, no row.
    expect(await runNetworkOperation(stack.env.client, 'deleteNetwork', { networkId: a.networkId })).toEqual({
      networkId: a.networkId,
      status: 'deleted',
    });
    expect(await networkTraces(stack, a.networkId)).toEqual({ ...NO_NETWORK_TRACE, row: null });

    // B is refused until the machine is gone; after, the same.
    await failureOf(runNetworkOperation(stack.env.client, 'deleteNetwork', { networkId: b.networkId }));
    await destroyIfPresent(stack, vm.machineId);
    await runNetworkOperation(stack.env.client, 'deleteNetwork', { networkId: b.networkId });
    expect(await networkTraces(stack, b.networkId)).toEqual({ ...NO_NETWORK_TRACE, row: null });
  });

  it('moves a machine that is off: the definition names the new network, MAC and filter unchanged', async () => {
    const a = await create();
    const b = await create();
    const vm = await createMachine(stack, world, { networkName: libvirtNames.network(a.networkId) });
    const dom = await domainOf(stack, vm.machineId);
    const before = parseDomainXml(await dom.getXML({ inactive: true })).interfaces[0]!;
    await runMachineOperation(stack.env.client, 'changeMachineNetwork', {
      machineId: vm.machineId,
      networkId: b.networkId,
      actorId: null,
    });
    const after = parseDomainXml(await dom.getXML({ inactive: true })).interfaces[0]!;
    const netB = libvirtNames.network(b.networkId);
    expect(after).toEqual({
      ...before,
      source: netB,
      filterref: await nicFilterOn(stack, netB, libvirtNames.vmFilter(vm.machineId)),
    });
    expect(before.filterref?.filter).toBe(libvirtNames.vmFilter(vm.machineId));
    expect((await dom.getState()).state).toBe('shutoff');
    // It boots on the new network.
    await runMachineOperation(stack.env.client, 'powerMachine', {
      machineId: vm.machineId,
      action: 'start',
      actorId: null,
    });
    expect(parseDomainXml(await dom.getXML()).interfaces[0]!.source).toBe(libvirtNames.network(b.networkId));
    await destroyIfPresent(stack, vm.machineId);
  });

  it('deleting a machine removes its tap from the bridge and leaves the network intact; deleting a network twice finishes quietly', async () => {
    const a = await create();
    const bridge = libvirtNames.bridge(a.networkId);
    const vm = await createMachine(stack, world, {
      networkName: libvirtNames.network(a.networkId),
      start: true,
    });
    const tap = parseDomainXml(await (await domainOf(stack, vm.machineId)).getXML()).interfaces[0]!
      .targetDev!;
    expect(await bridgePorts(bridge)).toEqual([tap]);
    await destroyIfPresent(stack, vm.machineId);
    expect(await linkExists(tap)).toBe(false);
    expect(await bridgePorts(bridge)).toEqual([]);
    expect(await networkTraces(stack, a.networkId)).toMatchObject({
      libvirt: true,
      active: true,
      bridge: true,
    });
    await runNetworkOperation(stack.env.client, 'deleteNetwork', { networkId: a.networkId });
    expect(
      await runNetworkOperation(stack.env.client, 'deleteNetwork', { networkId: a.networkId }),
    ).toMatchObject({
      applied: 'noop',
    });
    expect(await networkTraces(stack, a.networkId)).toEqual({ ...NO_NETWORK_TRACE, row: null });
  });
});
