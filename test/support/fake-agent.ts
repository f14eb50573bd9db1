/**
 * Fake vmflow guest agents for the watcher's tests: valid messages of the protocol (docs/guest-agent.md)
 * and agents served on real unix sockets, as libvirt serves a domain's `org.vmflow.agent.0` channel.
 */
import { rm } from 'node:fs/promises';
import net from 'node:net';
import { type AgentDomain, type AgentDomainSource } from '../../src/worker/agent-watcher';
/** A valid hello as the contract shows it. */
export const hello = (over: Record<string, unknown> = {}) => ({
  v: 1,
  type: 'hello',
  machineId: '2b5d1a9e-0000-4000-8000-000000000001',
  agentVersion: '1.0.0',
  os: { family: 'linux', name: 'Debian GNU/Linux', version: '12', kernel: '6.1.0-18-amd64', arch: 'amd64' },
  hostname: 'web-1',
  capabilities: ['metrics', 'processes.list'],
  intervalS: 10,
  ...over,
});

/** A valid metrics message. */
export const metrics = (over: Record<string, unknown> = {}) => ({
  v: 1,
  type: 'metrics',
  seq: 1,
  uptimeS: 12.5,
  cpu: { totalPct: 12.5, perCorePct: [10, 15] },
  load: [0.1, 0.2, 0.3],
  memory: {
    totalBytes: 1024,
    availableBytes: 512,
    usedBytes: 512,
    swapTotalBytes: 0,
    swapUsedBytes: 0,
  },
  filesystems: [{ mount: '/', fsType: 'ext4', totalBytes: 100, usedBytes: 50 }],
  nics: [{ name: 'eth0', rxBytes: 1, txBytes: 2, rxPackets: 3, txPackets: 4 }],
  disks: [{ name: 'vda', readBytes: 1, writeBytes: 2, reads: 3, writes: 4 }],
  users: [{ name: 'alice', tty: 'pts/0', since: '2026-01-02T03:04:05Z' }],
  topCpu: [{ pid: 1, name: 'init', cpuPct: 150, rssBytes: 10 }],
  topMemory: [],
  ...over,
});
/** Waits until `check` returns a truthy value, failing after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A host → guest message as the fake agent received it. */
export interface HostLine {
  v: number;
  type: string;
  id: string;
  command?: string;
  args?: Record<string, unknown>;
}

/** What a fake agent does. */
export interface FakeAgentBehaviour {
  /** The machine id its hellos claim. */
  machineId: string;
  /** Answer `sync` with a hello (default true). */
  answerSync?: boolean;
  /** Fields of its hellos other than the machine id. */
  hello?: Record<string, unknown>;
  /** The response to a request (without v/type/id), or null to stay silent. Default: `{ ok: true, result: {} }`. */
  onRequest?(req: HostLine): Record<string, unknown> | null;
}

/**
 * A fake agent on a real unix socket: a server at `socketPath`, as QEMU serves a channel. It remembers the
 * last 100 lines the host sent.
 */
export class FakeAgent {
  readonly received: HostLine[] = [];
  readonly connections = new Set<net.Socket>();
  connectionsAccepted = 0;
  private server: net.Server | null = null;

  constructor(
    public socketPath: string,
    public behaviour: FakeAgentBehaviour,
  ) {}

  /** Listens (again) at the socket path. */
  async listen(): Promise<this> {
    await rm(this.socketPath, { force: true });
    const server = net.createServer((socket) => this.accept(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, resolve);
    });
    this.server = server;
    return this;
  }

  private accept(socket: net.Socket): void {
    this.connectionsAccepted++;
    this.connections.add(socket);
    socket.on('close', () => this.connections.delete(socket));
    socket.on('error', () => undefined);
    let buf = '';
    socket.on('data', (chunk) => {
      buf += chunk.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) !== -1) {
        const msg = JSON.parse(buf.slice(0, nl)) as HostLine;
        buf = buf.slice(nl + 1);
        this.received.push(msg);
        if (this.received.length > 100) this.received.shift();
        this.answer(socket, msg);
      }
    });
  }

  private answer(socket: net.Socket, msg: HostLine): void {
    if (msg.type === 'sync' && this.behaviour.answerSync !== false)
      socket.write(
        `${JSON.stringify(hello({ ...this.behaviour.hello, machineId: this.behaviour.machineId, sync: msg.id }))}\n`,
      );
    if (msg.type === 'request') {
      const body = this.behaviour.onRequest ? this.behaviour.onRequest(msg) : { ok: true, result: {} };
      if (body) socket.write(`${JSON.stringify({ v: 1, type: 'response', id: msg.id, ...body })}\n`);
    }
  }

  /** Writes to every connected host: an object as one JSON line, a string or bytes as they are. */
  send(what: object | string | Buffer): void {
    const data = Buffer.isBuffer(what) || typeof what === 'string' ? what : `${JSON.stringify(what)}\n`;
    for (const s of this.connections) s.write(data);
  }

  /** Stops listening and drops every connection (the agent, or QEMU, is gone). */
  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.connections) s.destroy();
    if (server) await new Promise((r) => server.close(r));
    await rm(this.socketPath, { force: true });
  }
}

/** Domains as a test presents them to the watcher, with libvirt's lifecycle events at the test's command. */
export class FakeDomainSource implements AgentDomainSource {
  readonly domains = new Map<string, AgentDomain>();
  private listener: ((name: string, change: 'up' | 'down') => void) | null = null;

  /** A domain starts (`event`: libvirt tells the watcher; otherwise only a reconcile finds it). */
  add(domain: AgentDomain, event = true): void {
    this.domains.set(domain.name, domain);
    if (event) this.listener?.(domain.name, 'up');
  }

  /** A domain stops. */
  remove(name: string, event = true): void {
    this.domains.delete(name);
    if (event) this.listener?.(name, 'down');
  }

  async listRunning(): Promise<string[]> {
    return [...this.domains.keys()];
  }

  async resolve(name: string): Promise<AgentDomain | null> {
    return this.domains.get(name) ?? null;
  }

  async subscribe(cb: (name: string, change: 'up' | 'down') => void): Promise<() => Promise<void>> {
    this.listener = cb;
    return async () => {
      this.listener = null;
    };
  }
}

/** A logger that keeps what it is told, for assertions. */
export function memoryLogger() {
  const lines: Array<{ level: string; msg: string; obj: object }> = [];
  const at = (level: string) => (obj: object, msg: string) => {
    lines.push({ level, msg, obj });
    if (lines.length > 1000) lines.shift();
  };
  return { lines, info: at('info'), warn: at('warn'), debug: at('debug') };
}
