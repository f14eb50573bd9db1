/**
 * The network activities against the real libvirtd: each one run twice gives the same result (define,
 * start, autostart, DHCP edits, stop, undefine); a libvirt network that carries vmflow's name but not its
 * id is never touched, by an activity or by a create's compensation; bridge mode uses an existing host
 * bridge (no dnsmasq, the bridge survives the delete) and refuses one the host does not have.
 */
import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import { createNetworkActivities } from '../../../src/activities/network';
import { buildNetworkXml } from '../../../src/libvirt/xml';
import { designNetwork, networkSpecOf } from '../../../src/networks/validate';
import { FailureType, libvirtNames } from '../../../src/workflows/shared';
import {
  NETNS,
  NO_NETWORK_TRACE,
  definitionsOf,
  dnsmasqOf,
  linkExists,
  networkTraces,
  rangesOf,
  removeNetwork,
  runNetworkOperation,
  subnets,
} from '../../support/networks';
import { startStack, type Stack } from '../../support/stack';

const run = promisify(execFile);
const nextSubnet = subnets(253, 60);

describe('network activities: idempotent, and never touch what is not theirs', () => {
  let stack: Stack;
  let acts: ReturnType<typeof createNetworkActivities>;
  const made: string[] = [];
  const bridges: string[] = [];

  beforeAll(async () => {
    stack = await startStack();
    acts = createNetworkActivities({ libvirt: stack.libvirt });
  });
  afterAll(async () => {
    for (const id of made) await removeNetwork(stack, id).catch(() => undefined);
    for (const b of bridges) await run('ip', ['-n', NETNS, 'link', 'del', b]).catch(() => undefined);
    await stack?.stop();
  });

  it('every step run twice: the same network, the same DHCP entries, then nothing', async () => {
    const s = await nextSubnet(stack);
    const networkId = randomUUID();
    made.push(networkId);
    const ref = { networkId, internalName: libvirtNames.network(networkId) };
    const designed = designNetwork({
      name: 'idem',
      mode: 'isolated',
      cidr: s.cidr,
      dhcpStart: s.dhcpStart,
      dhcpEnd: s.dhcpEnd,
    });
    if (!designed.ok) throw new Error('fixture');
    const spec = networkSpecOf(designed.design, { ...ref, bridgeName: libvirtNames.bridge(networkId) });
    for (let i = 0; i < 2; i++) {
      expect(await acts.defineNetwork({ ...ref, spec })).toEqual({
        bridgeName: libvirtNames.bridge(networkId),
      });
      await acts.startNetwork(ref);
      await acts.setNetworkAutostart({ ...ref, on: true });
    }
    expect(await networkTraces(stack, networkId)).toMatchObject({
      libvirt: true,
      active: true,
      bridge: true,
    });
    const lease = { mac: '52:54:00:25:60:01', ip: s.at(10), name: 'twice' };
    const range = { start: s.at(20), end: s.at(30) };
    for (let i = 0; i < 2; i++) {
      await acts.addDhcpRange({ ...ref, range });
      await acts.addDhcpHost({ ...ref, host: lease });
    }
    let d = await definitionsOf(stack, networkId);
    for (const xml of [d.liveXml!, d.configXml]) {
      expect(rangesOf(xml)).toEqual([{ start: s.dhcpStart, end: s.dhcpEnd }, range]);
      expect(xml.match(new RegExp(lease.mac, 'g'))).toHaveLength(1);
    }
    for (let i = 0; i < 2; i++) {
      await acts.removeDhcpRange({ ...ref, range });
      // Removed by MAC, whatever else the entry holds now.
      await acts.removeDhcpHost({ ...ref, host: { mac: lease.mac, ip: s.at(99) } });
    }
    d = await definitionsOf(stack, networkId);
    for (const xml of [d.liveXml!, d.configXml]) {
      expect(rangesOf(xml)).toEqual([{ start: s.dhcpStart, end: s.dhcpEnd }]);
      expect(xml).not.toContain(lease.mac);
    }
    for (let i = 0; i < 2; i++) {
      await acts.stopNetwork(ref);
      await acts.undefineNetwork(ref);
    }
    expect(await networkTraces(stack, networkId)).toEqual({ ...NO_NETWORK_TRACE, row: null });
  });

  it('a libvirt network with our name but another UUID is left alone, by the activities and by a failed create', async () => {
    const networkId = randomUUID();
    const name = libvirtNames.network(networkId);
    const foreign = await (
      await stack.libvirt.get()
    ).defineNetwork(
      buildNetworkXml({
        name,
        uuid: randomUUID(),
        mode: 'isolated',
        bridgeName: `vfx${randomBytes(4).toString('hex')}`,
      }),
    );
    try {
      const ref = { networkId, internalName: name };
      await expect(acts.undefineNetwork(ref)).rejects.toMatchObject({ type: FailureType.Refused });
      await expect(acts.startNetwork(ref)).rejects.toMatchObject({ type: FailureType.Refused });
      await expect(
        runNetworkOperation(stack.env.client, 'createNetwork', {
          networkId,
          name: `foreign ${networkId.slice(0, 8)}`,
          mode: 'isolated',
          hostName: stack.hostName,
        }),
      ).rejects.toThrow(WorkflowFailedError);
      expect(await foreign.isPersistent()).toBe(true);
      expect((await networkTraces(stack, networkId)).row).toBeNull();
    } finally {
      await foreign.undefine();
    }
  });

  it('bridge mode: attaches to an existing host bridge (no dnsmasq); the delete leaves that bridge; a missing bridge is refused', async () => {
    const br = `vftb${randomBytes(4).toString('hex')}`;
    await run('ip', ['-n', NETNS, 'link', 'add', br, 'type', 'bridge']);
    bridges.push(br);
    const networkId = randomUUID();
    made.push(networkId);
    await runNetworkOperation(stack.env.client, 'createNetwork', {
      networkId,
      name: `bridged ${networkId.slice(0, 8)}`,
      mode: 'bridge',
      bridgeName: br,
      hostName: stack.hostName,
    });
    const { live } = await definitionsOf(stack, networkId);
    expect(live).toMatchObject({ mode: 'bridge', bridgeName: br, ips: [] });
    expect(await dnsmasqOf(libvirtNames.network(networkId))).toEqual([]);
    expect((await networkTraces(stack, networkId)).row).toMatchObject({
      mode: 'bridge',
      bridgeName: br,
      status: 'active',
    });
    await runNetworkOperation(stack.env.client, 'deleteNetwork', { networkId });
    expect(await networkTraces(stack, networkId)).toMatchObject({ libvirt: false, row: null, dnsmasq: 0 });
    expect(await linkExists(br)).toBe(true);

    const missing = randomUUID();
    const err = await runNetworkOperation(stack.env.client, 'createNetwork', {
      networkId: missing,
      name: `nobridge ${missing.slice(0, 8)}`,
      mode: 'bridge',
      bridgeName: `vfno${randomBytes(4).toString('hex')}`,
      hostName: stack.hostName,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause).toMatchObject({
      type: FailureType.Validation,
      message: expect.stringMatching(/no bridge named/),
    });
    expect(await networkTraces(stack, missing)).toMatchObject({ libvirt: false, row: null });
  });
});
