/**
 * vmflow's in-guest agent in the project's image, booted under libvirt (TCG): a domain defined through
 * vmflow's XML builder with the `org.vmflow.agent.0` channel and the machine id as SMBIOS serial. The test
 * is the host side of the protocol (docs/guest-agent.md): it connects to the channel's unix socket from the
 * live XML, sends `sync` and expects the agent's `hello` with that machine id, then `metrics`, then answers
 * to requests. One guest, removed with its volumes afterwards.
 */
import { randomUUID } from 'node:crypto';
import { copyFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection, type Domain, type StoragePool } from '../../../src/libvirt/connection';
import { VMFLOW_AGENT_CHANNEL, buildDomainXml } from '../../../src/libvirt/xml/domain';
import {
  LIBVIRT_URI,
  createPool,
  domainType,
  execFileAsync,
  qcow2VolumeXml,
  removeDomain,
  removePool,
  uniqueName,
  waitFor,
} from '../libvirt/support';

type Message = Record<string, unknown> & { v: number; type: string };

/** The host end of the channel: newline-delimited JSON both ways. */
class AgentClient {
  readonly messages: Message[] = [];
  #buffer = '';
  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.#buffer += chunk;
      let nl: number;
      while ((nl = this.#buffer.indexOf('\n')) >= 0) {
        const line = this.#buffer.slice(0, nl);
        this.#buffer = this.#buffer.slice(nl + 1);
        this.messages.push(JSON.parse(line) as Message);
      }
    });
  }

  send(msg: object): void {
    this.socket.write(`${JSON.stringify({ v: 1, ...msg })}\n`);
  }

  /** Takes the first message received (now or later) that matches. */
  async take(what: string, match: (m: Message) => boolean, timeoutMs: number): Promise<Message> {
    return waitFor<Message | undefined>(
      what,
      () => {
        const i = this.messages.findIndex(match);
        return i >= 0 ? this.messages.splice(i, 1)[0] : undefined;
      },
      timeoutMs,
    ) as Promise<Message>;
  }

  async request(command: string, args: object = {}): Promise<Message> {
    const id = `req-${randomUUID()}`;
    this.send({ type: 'request', id, command, args });
    return this.take(`response to ${command}`, (m) => m.type === 'response' && m.id === id, 60_000);
  }
}

function connect(socketPath: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(socketPath);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

describe('vmflow guest agent in the project image (booted, TCG)', () => {
  const machineId = randomUUID();
  const name = uniqueName('agent');
  let conn: Connection;
  let pool: StoragePool | undefined;
  let dom: Domain | undefined;
  let client: AgentClient | undefined;
  let startedAt = 0;
  let socketPath = '';

  beforeAll(async () => {
    const { stdout } = await execFileAsync(
      'bash',
      [path.resolve(__dirname, '../../../scripts/image/build.sh')],
      {
        maxBuffer: 1 << 20,
      },
    );
    const image = stdout.trim().split('\n').at(-1)!;
    conn = await Connection.open(LIBVIRT_URI);
    pool = await createPool(conn, 'agent-pool');
    const dir = /<path>([^<]+)<\/path>/.exec(await pool.getXML())![1];
    const base = path.join(dir, 'base.qcow2');
    copyFileSync(image, base);
    await pool.refresh();
    const overlay = await pool.createVolume(qcow2VolumeXml('disk.qcow2', 3 * 1024 ** 3, base));
    dom = await conn.defineDomain(
      buildDomainXml({
        name,
        type: domainType(),
        memoryMiB: 512,
        vcpus: 1,
        disks: [
          {
            path: await overlay.getPath(),
            format: 'qcow2',
            target: 'vda',
            bus: 'virtio',
            boot: 1,
            backingStore: { path: base, format: 'qcow2' },
          },
        ],
        interfaces: [],
        vmflowAgent: true,
        smbiosSerial: machineId,
      }),
    );
    await dom.start();
    startedAt = Date.now();
  }, 180_000);

  afterAll(async () => {
    client?.socket.destroy();
    await removeDomain(dom);
    await removePool(pool);
    await conn?.close();
  });

  it('answers sync with a hello carrying the SMBIOS machine id, then sends metrics', async () => {
    const xml = await dom!.getXML();
    const channel = [...xml.matchAll(/<channel type='unix'>([\s\S]*?)<\/channel>/g)]
      .map((m) => m[1])
      .find((c) => c.includes(`name='${VMFLOW_AGENT_CHANNEL}'`))!;
    socketPath = /<source mode='bind' path='([^']+)'/.exec(channel)![1];
    client = new AgentClient(await connect(socketPath));

    // The agent may (re)open its port just after our sync (the guest side drops what arrived while
    // the port was closed), so sync again until the answer carries our id.
    const syncId = `sync-${randomUUID()}`;
    let hello: Message | undefined;
    const deadline = Date.now() + 300_000;
    while (!hello) {
      if (Date.now() > deadline) throw new Error('no hello with our sync id within 300 s');
      client.send({ type: 'sync', id: syncId });
      hello = await client
        .take('hello', (m) => m.type === 'hello' && m.sync === syncId, 3_000)
        .catch(() => undefined);
    }
    const helloAfterS = (Date.now() - startedAt) / 1000;
    console.log(`hello ${helloAfterS.toFixed(1)} s after the domain started`);
    expect(hello).toMatchObject({
      v: 1,
      machineId,
      agentVersion: '1.0.0',
      os: { family: 'linux', name: 'Debian GNU/Linux', version: '12', arch: 'amd64' },
      intervalS: 10,
    });
    expect((hello.os as { kernel: string }).kernel).toMatch(/^6\.1\./);
    expect(hello.capabilities).toEqual(
      expect.arrayContaining(['metrics', 'processes.list', 'process.kill', 'services.list', 'packages.list']),
    );

    const metrics = await client.take('metrics', (m) => m.type === 'metrics', 30_000);
    const m = metrics as unknown as {
      seq: number;
      uptimeS: number;
      cpu: { totalPct: number; perCorePct: number[] };
      load: number[];
      memory: { totalBytes: number; usedBytes: number; availableBytes: number };
      filesystems: Array<{ mount: string; fsType: string; totalBytes: number; usedBytes: number }>;
      disks: Array<{ name: string; readBytes: number }>;
      topMemory: Array<{ pid: number; name: string; rssBytes: number }>;
      topCpu: unknown[];
    };
    expect(m.seq).toBeGreaterThanOrEqual(1);
    expect(m.uptimeS).toBeGreaterThan(0);
    expect(m.cpu.perCorePct).toHaveLength(1);
    expect(m.cpu.totalPct).toBeGreaterThanOrEqual(0);
    expect(m.cpu.totalPct).toBeLessThanOrEqual(100);
    expect(m.load).toHaveLength(3);
    expect(m.memory.totalBytes).toBeGreaterThan(300 * 1024 ** 2);
    expect(m.memory.totalBytes).toBeLessThanOrEqual(512 * 1024 ** 2);
    expect(m.memory.usedBytes + m.memory.availableBytes).toBe(m.memory.totalBytes);
    const rootFs = m.filesystems.find((f) => f.mount === '/');
    expect(rootFs).toMatchObject({ fsType: 'ext4' });
    expect(rootFs!.totalBytes).toBeGreaterThan(2 * 1024 ** 3); // grown to the 3 GiB disk (or the image's)
    expect(m.filesystems.map((f) => f.fsType)).not.toEqual(
      expect.arrayContaining(['proc', 'sysfs', 'tmpfs']),
    );
    expect(m.disks.map((d) => d.name)).toEqual(['vda']);
    expect(m.disks[0].readBytes).toBeGreaterThan(0);
    expect(m.topMemory.length).toBeGreaterThan(0);
    expect(m.topMemory.length).toBeLessThanOrEqual(5);
    expect(m.topCpu.length).toBeLessThanOrEqual(5);
  }, 420_000);

  it('answers requests: processes, services, packages; refuses pid 1 and unknown commands', async () => {
    const procs = await client!.request('processes.list');
    expect(procs.ok).toBe(true);
    const list = (
      procs.result as { processes: Array<{ pid: number; name: string; user: string; cmdline: string }> }
    ).processes;
    expect(list.find((p) => p.pid === 1)).toMatchObject({ name: 'systemd', user: 'root' });
    expect(list.find((p) => p.cmdline.startsWith('/usr/local/sbin/vmflow-agent'))).toMatchObject({
      user: 'root',
    });

    const services = await client!.request('services.list');
    expect(services.ok).toBe(true);
    const svcs = (services.result as { services: Array<{ name: string; state: string; enabled: boolean }> })
      .services;
    expect(svcs.find((s) => s.name === 'ssh.service')).toMatchObject({ enabled: true });
    expect(svcs.find((s) => s.name === 'vmflow-agent.service')).toMatchObject({
      state: 'running',
      enabled: true,
    });

    const pkgs = await client!.request('packages.list');
    expect(pkgs.ok).toBe(true);
    const names = (pkgs.result as { packages: Array<{ name: string }> }).packages.map((p) => p.name);
    expect(names).toEqual(expect.arrayContaining(['openssh-server', 'cloud-init', 'systemd']));

    expect(await client!.request('process.kill', { pid: 1, signal: 'KILL' })).toMatchObject({
      ok: false,
      error: { code: 'denied' },
    });
    expect(await client!.request('service.stop', { name: 'ssh; reboot' })).toMatchObject({
      ok: false,
      error: { code: 'invalid' },
    });
    expect(await client!.request('guest.exec', { command: 'reboot' })).toMatchObject({
      ok: false,
      error: { code: 'unsupported' },
    });
  }, 180_000);
  it('sends a fresh hello after the host disconnects and comes back, and answers a new sync', async () => {
    client!.socket.destroy();
    // Away for a while: the agent's reads end at once while nobody is connected, so it keeps closing,
    // backing off (up to 5 s) and reopening the port.
    await new Promise((r) => setTimeout(r, 8_000));
    const back = Date.now();
    client = new AgentClient(await connect(socketPath));
    const hello = await client.take(
      'unsolicited hello after reconnecting',
      (m) => m.type === 'hello',
      30_000,
    );
    console.log(`hello ${((Date.now() - back) / 1000).toFixed(1)} s after the host reconnected`);
    expect(hello).toMatchObject({ machineId });
    expect(hello.sync).toBeUndefined();
    const syncId = `sync-${randomUUID()}`;
    client.send({ type: 'sync', id: syncId });
    expect(
      await client.take('hello to the new sync', (m) => m.type === 'hello' && m.sync === syncId, 30_000),
    ).toMatchObject({ machineId });
    const metrics = await client.take('metrics after reconnecting', (m) => m.type === 'metrics', 30_000);
    expect(metrics.seq).toBeGreaterThan(1); // the same agent process: its sequence went on
  }, 120_000);
});
