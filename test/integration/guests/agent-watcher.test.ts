/**
 * The agent watcher against the real libvirtd: a small TCG domain with vmflow's agent channel (no OS, so
 * no agent) is found through libvirt's lifecycle events, its channel socket read from the live XML and
 * connected to, reported `absent` (nothing answers `sync`), followed across a restart to its new socket,
 * and forgotten when destroyed. Only this test's domain is watched: the libvirtd is shared, and a channel
 * socket serves one client, so watching other runs' domains would take their agents' sockets.
 */
import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { type Domain } from '../../../src/libvirt/connection';
import { LibvirtProvider } from '../../../src/libvirt/provider';
import {
  type AgentStatus,
  type AgentWatcher,
  agentChannelOf,
  createAgentWatcher,
  libvirtDomainSource,
} from '../../../src/worker/agent-watcher';
import { memoryLogger } from '../../support/fake-agent';
import { LIBVIRT_URI, domainType, domainXml, removeDomain, uniqueName, waitFor } from '../libvirt/support';

describe('agent watcher on a real domain', () => {
  const libvirt = new LibvirtProvider(LIBVIRT_URI);
  const name = uniqueName('agent');
  const machineId = randomUUID();
  let dom: Domain | undefined;
  let watcher: AgentWatcher | undefined;
  const statuses: AgentStatus[] = [];

  afterAll(async () => {
    await watcher?.stop();
    await removeDomain(dom);
    await libvirt.close();
  });

  it('finds the domain by its event, connects to its channel, reports absent, and forgets it when destroyed', async () => {
    const conn = await libvirt.get();
    const xml = domainXml({ name, type: domainType() }).replace(
      '<devices>',
      `<metadata><vmflow:machine xmlns:vmflow='https://vmflow.dev/xmlns/machine/1'>` +
        `<vmflow:machineId>${machineId}</vmflow:machineId></vmflow:machine></metadata>
  <devices><channel type='unix'><target type='virtio' name='org.vmflow.agent.0'/></channel>`,
    );
    dom = await conn.defineDomain(xml, { validate: true });

    const logger = memoryLogger();
    watcher = createAgentWatcher({
      source: libvirtDomainSource(libvirt, { owns: (id) => id === machineId }),
      hostName: 'integration',
      logger,
      onStatus: (_id, s) => statuses.push(s),
      reconcileMs: 60_000, // far away: the lifecycle event must be what finds it
      backoffMs: 100,
      maxBackoffMs: 500,
      resyncMs: 500,
    });
    await watcher.start();
    expect(watcher.status(machineId)).toBeNull(); // defined, not running

    await dom.start();
    const live = agentChannelOf(await dom.getXML());
    expect(live.machineId).toBe(machineId);
    expect((await stat(live.socketPath!)).isSocket()).toBe(true);

    // found through the 'started' event, connected to QEMU's socket, synced; nobody answers
    await waitFor('connected to the channel', () => watcher!.status(machineId)?.socket === 'open');
    expect(watcher.status(machineId)).toMatchObject({
      domainName: name,
      state: 'absent',
      reason: 'no hello yet',
      hello: null,
      metrics: null,
      counters: { messages: 0, malformed: 0, reconnects: 0 },
    });
    await expect(watcher.request(machineId, 'processes.list', {}, 1000)).rejects.toMatchObject({
      name: 'AgentAbsentError',
    });

    // a restart: a new QEMU, a new socket (path from the live XML again), connected again
    await dom.destroy();
    await waitFor('forgotten on stop', () => watcher!.status(machineId) === null);
    await dom.start();
    await waitFor('watched again', () => watcher!.status(machineId)?.socket === 'open');
    expect(watcher.status(machineId)!.counters.reconnects).toBe(0); // a new watch: counters start over
    expect(watcher.counters()).toMatchObject({ guests: 1, absent: 1, connected: 0 });

    await dom.destroy();
    await waitFor('forgotten', () => watcher!.status(machineId) === null);
    expect(watcher.list()).toEqual([]);
    expect(logger.lines.filter((l) => l.msg === 'guest agent watch ended')).toHaveLength(2);
  });

  it("leaves the domain of a machine it does not own alone (its socket stays free for the owner's watcher)", async () => {
    if ((await dom!.getState()).state === 'shutoff') await dom!.start();
    const stranger = createAgentWatcher({
      source: libvirtDomainSource(libvirt, { owns: () => false }),
      hostName: 'another-control-plane',
      logger: memoryLogger(),
      reconcileMs: 200,
    });
    await stranger.start();
    try {
      await new Promise((r) => setTimeout(r, 1_000)); // several reconciles
      expect(stranger.status(machineId)).toBeNull();
      expect(stranger.list().map((s) => s.machineId)).not.toContain(machineId);
    } finally {
      await stranger.stop();
    }
  });

  it('after a worker restart, a fresh watcher finds the running domain from libvirt alone', async () => {
    await watcher?.stop();
    if ((await dom!.getState()).state === 'shutoff') await dom!.start();
    // a fresh watcher, as after a worker restart: it learns everything from libvirt
    watcher = createAgentWatcher({
      source: libvirtDomainSource(libvirt, { owns: (id) => id === machineId }),
      hostName: 'integration',
      logger: memoryLogger(),
      backoffMs: 100,
    });
    await watcher.start();
    expect(watcher.status(machineId)).toMatchObject({ domainName: name, state: 'absent' });
    await waitFor('connected', () => watcher!.status(machineId)?.socket === 'open');
  });
});
