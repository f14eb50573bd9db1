/**
 * The host side of vmflow's guest agent (protocol: src/guests/agent-protocol.ts): in each host's worker,
 * outside workflow code, it finds the running vmflow domains (libvirt lifecycle events plus a periodic
 * reconcile), connects to each one's `org.vmflow.agent.0` channel socket, sends `sync`, and keeps what the
 * agent says: its hello, its last metrics and counters. It reconnects with backoff when the socket closes
 * (agent restart, guest reboot, domain restart: the path is re-read from the live XML each time) and
 * forgets domains that stop. Everything comes from libvirt and the guests: a restarted worker rebuilds it.
 *
 * The guest is untrusted. Lines are capped (the decoder), messages are rate-limited per VM (token bucket;
 * persistent flooding disconnects the VM for a cool-down), every message is validated, and an agent whose
 * hello claims another machine's id is marked `lying` and its data ignored: what a guest sends is only
 * ever attributed to the domain whose socket it came from. Nothing a guest sends throws out of here.
 * Memory is bounded per VM: one partial line (≤ 64 KiB), the last hello and metrics (bounded by their
 * schemas), at most `maxPending` requests, and no write when the socket's send buffer is full.
 */
import { randomUUID } from 'node:crypto';
import net from 'node:net';
import {
  type AgentCommand,
  type CommandArgs,
  type CommandResult,
  commandResultSchemas,
  encodeRequest,
  encodeSync,
  type Hello,
  LineDecoder,
  type Metrics,
  parseGuestLine,
  type Response,
} from '../guests/agent-protocol';
import { type Connection, isLibvirtError, LibvirtErrorCode } from '../libvirt/connection';
import { attr, children, descend, parseRoot } from '../libvirt/xml/dom';
import { VMFLOW_AGENT_CHANNEL, VMFLOW_METADATA_NS } from '../libvirt/xml/domain';
import { AgentAbsentError, AgentBusyError, AgentCommandError, AgentTimeoutError } from './agent-errors';

export { AgentAbsentError, AgentBusyError, AgentCommandError, AgentTimeoutError } from './agent-errors';

// ---- where the domains come from -------------------------------------------------------------------

/** A running vmflow domain with an agent channel. */
export interface AgentDomain {
  name: string;
  machineId: string;
  socketPath: string;
}

/** How the watcher learns about domains: libvirt in production ({@link libvirtDomainSource}), fakes in tests. */
export interface AgentDomainSource {
  /** Names of the domains that are running now (paused ones included: their sockets stay). */
  listRunning(): Promise<string[]>;
  /** The domain's machine id and channel socket, from its live XML; null if it is not a running vmflow domain. */
  resolve(name: string): Promise<AgentDomain | null>;
  /** Calls `cb` when a domain starts (`up`) or stops (`down`). Resolves with an unsubscribe function. */
  subscribe(cb: (name: string, change: 'up' | 'down') => void): Promise<() => Promise<void>>;
}

const DOMAIN_NAME = /^vmflow-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/**
 * The machine id (vmflow metadata `machineId`, else the `vmflow-<id>` name) and the agent channel's socket
 * path of a live domain XML; either is undefined when the domain has none.
 */
export function agentChannelOf(liveXml: string): { machineId?: string; socketPath?: string } {
  const root = parseRoot(liveXml, 'domain');
  let machineId: string | undefined;
  const metadata = descend(root, 'metadata');
  for (const holder of metadata ? children(metadata) : []) {
    if (holder.namespaceURI !== VMFLOW_METADATA_NS) continue;
    const item = children(holder).find(
      (c) => c.namespaceURI === VMFLOW_METADATA_NS && c.localName === 'machineId',
    );
    if (item?.textContent) machineId = item.textContent.trim();
  }
  machineId ??= DOMAIN_NAME.exec(children(root, 'name')[0]?.textContent ?? '')?.[1];
  const devices = descend(root, 'devices');
  const channel = (devices ? children(devices, 'channel') : []).find(
    (c) => attr(descend(c, 'target'), 'name') === VMFLOW_AGENT_CHANNEL,
  );
  const socketPath = attr(descend(channel, 'source'), 'path');
  return { machineId: machineId || undefined, socketPath: socketPath || undefined };
}

/** Libvirt as the watcher's domain source. Follows `get()`'s reconnects: events are re-subscribed on the next list. */
export function libvirtDomainSource(
  libvirt: { get(): Promise<Connection> },
  filter: {
    /**
     * Whether this host owns the machine (its worker's database says so). A domain of any other machine is
     * left alone: QEMU serves one client per channel socket, so watching another control plane's VMs on a
     * shared libvirtd (a test run beside `up.sh`) would take their agents from them. Default: every machine.
     */
    owns?: (machineId: string) => Promise<boolean> | boolean;
  } = {},
): AgentDomainSource {
  let listener: ((name: string, change: 'up' | 'down') => void) | null = null;
  let subscribedTo: Connection | null = null;
  let unsubscribe: (() => Promise<void>) | null = null;
  const ensureSubscribed = async (conn: Connection) => {
    if (!listener || subscribedTo === conn) return;
    const cb = listener;
    await unsubscribe?.().catch(() => undefined);
    unsubscribe = await conn.onDomainLifecycle((ev) => {
      if (ev.event === 'started' || ev.event === 'resumed') cb(ev.domainName, 'up');
      else if (ev.event === 'stopped') cb(ev.domainName, 'down');
    });
    subscribedTo = conn;
  };
  return {
    async listRunning() {
      const conn = await libvirt.get();
      await ensureSubscribed(conn);
      const domains = await conn.listAllDomains({ active: true });
      return Promise.all(domains.map((d) => d.getName()));
    },
    async resolve(name) {
      try {
        const domain = await (await libvirt.get()).lookupDomainByName(name);
        if (!(await domain.isActive())) return null; // inactive: no socket
        const { machineId, socketPath } = agentChannelOf(await domain.getXML());
        if (!machineId || !socketPath) return null;
        if (filter.owns && !(await filter.owns(machineId))) return null;
        return { name, machineId, socketPath };
      } catch (e) {
        if (isLibvirtError(e, LibvirtErrorCode.NO_DOMAIN)) return null;
        throw e;
      }
    },
    async subscribe(cb) {
      listener = cb;
      await ensureSubscribed(await libvirt.get());
      return async () => {
        listener = null;
        subscribedTo = null;
        await unsubscribe?.().catch(() => undefined);
        unsubscribe = null;
      };
    },
  };
}

// ---- the watcher -----------------------------------------------------------------------------------

/** `connected`: a valid hello with the domain's own machine id; `lying`: a hello with another id. */
export type AgentState = 'connected' | 'absent' | 'lying';

/** Per-VM counters (monotonic while the domain is watched; totals survive it in {@link AgentWatcher.counters}). */
export interface AgentCounters {
  /** Valid messages received (hello, metrics, response). */
  messages: number;
  /** Lines that were not valid messages, over-long lines included. */
  malformed: number;
  /** Valid lines of an unknown type or a higher protocol version (ignored). */
  unknown: number;
  /** Lines dropped by the rate limit, unread. */
  rateLimited: number;
  /** Disconnections for persistent flooding. */
  floodDisconnects: number;
  /** Connections made after the first one. */
  reconnects: number;
  /** Hellos that claimed another machine's id. */
  idMismatches: number;
  /** Metrics ignored: before a hello, or from a lying agent. */
  ignoredMetrics: number;
  /** Responses to no request in flight (late after a timeout, or invented). */
  unmatchedResponses: number;
}

/** What the agent said about itself in its last trusted hello. */
export type AgentHello = Pick<Hello, 'agentVersion' | 'os' | 'hostname' | 'capabilities' | 'intervalS'>;
/** A metrics sample without its envelope. */
export type AgentMetrics = Omit<Metrics, 'v' | 'type'>;

/** A VM's agent as the watcher sees it. */
export interface AgentStatus {
  machineId: string;
  domainName: string;
  state: AgentState;
  /** Why the state is what it is (`connecting`, `no hello yet`, `socket closed`, `flooding`, `silent`…). */
  reason: string;
  /** Whether the host is connected to the channel socket (QEMU accepts it with or without an agent). */
  socket: 'open' | 'closed';
  hello: AgentHello | null;
  helloAt: Date | null;
  metrics: AgentMetrics | null;
  metricsAt: Date | null;
  counters: AgentCounters;
}

/** Totals over every VM, for Prometheus. */
export interface WatcherCounters extends AgentCounters {
  guests: number;
  connected: number;
  absent: number;
  lying: number;
}

/** The logging the watcher does (a pino logger fits). Message contents are only ever logged at debug. */
export interface WatcherLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** Options of {@link createAgentWatcher}. */
export interface AgentWatcherOptions {
  /** libvirt (the worker's provider); or `source` instead. */
  connection?: { get(): Promise<Connection> };
  /** Where domains come from; default: {@link libvirtDomainSource} over `connection`. */
  source?: AgentDomainSource;
  hostName: string;
  logger: WatcherLogger;
  /** Called with each accepted sample, attributed to the domain's machine id, with the host's time. */
  onMetrics?(machineId: string, metrics: AgentMetrics, receivedAt: Date): void;
  /** Called when a VM's state changes. */
  onStatus?(machineId: string, status: AgentStatus): void;
  /** Reconcile with libvirt every this many ms (default 30 s). */
  reconcileMs?: number;
  /** Liveness and re-sync checks every this many ms (default 5 s). */
  tickMs?: number;
  /** Rate limit per VM: bucket size (default 20 lines) and refill per second (default 2). */
  rateBurst?: number;
  ratePerSecond?: number;
  /** More than this many dropped lines within `floodWindowMs` disconnect the VM (default 200 in 10 s). */
  floodThreshold?: number;
  floodWindowMs?: number;
  /** How long a flooding VM stays disconnected (default 60 s). */
  floodCooldownMs?: number;
  /** Reconnect backoff: first delay and ceiling (default 500 ms, 30 s; jittered). */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Requests in flight per VM (default 4: what the agent runs at once). */
  maxPending?: number;
  /** An agent is silent after three of its intervals plus this (default 5 s). */
  silenceGraceMs?: number;
  /** Unanswered `sync` re-sent after this long while no hello came (default 30 s). */
  resyncMs?: number;
}

/** The watcher's API. */
export interface AgentWatcher {
  /** Subscribes to lifecycle events and reconciles now and periodically. */
  start(): Promise<void>;
  /** Closes every socket and rejects every request in flight. */
  stop(): Promise<void>;
  /** Reconciles with the domain source now (also done every `reconcileMs`). */
  reconcile(): Promise<void>;
  /** A VM's agent, or null when the VM is not watched (not running here, or no agent channel). */
  status(machineId: string): AgentStatus | null;
  list(): AgentStatus[];
  counters(): WatcherCounters;
  /**
   * Runs a command in the guest. Rejects with {@link AgentAbsentError}, {@link AgentBusyError},
   * {@link AgentTimeoutError} or {@link AgentCommandError}; resolves with the result, checked against the
   * command's schema.
   */
  request<C extends AgentCommand>(
    machineId: string,
    command: C,
    args: CommandArgs<C>,
    timeoutMs: number,
  ): Promise<CommandResult<C>>;
}

interface Pending {
  command: AgentCommand;
  resolve(result: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

/** The send buffer beyond which nothing more is written: a guest that does not read gets no more. */
const MAX_WRITE_BUFFER = 64 * 1024;

const zeroCounters = (): AgentCounters => ({
  messages: 0,
  malformed: 0,
  unknown: 0,
  rateLimited: 0,
  floodDisconnects: 0,
  reconnects: 0,
  idMismatches: 0,
  ignoredMetrics: 0,
  unmatchedResponses: 0,
});

/** One watched domain. */
class Link {
  state: AgentState = 'absent';
  reason = 'connecting';
  socket: net.Socket | null = null;
  connectedOnce = false;
  attempt = 0;
  timer: NodeJS.Timeout | null = null;
  forgotten = false;
  readonly decoder = new LineDecoder();
  tokens: number;
  refilledAt = Date.now();
  floodWindowAt = Date.now();
  floodDrops = 0;
  cooldownUntil = 0;
  lastRxAt = 0;
  lastSyncAt = 0;
  hello: AgentHello | null = null;
  helloAt: Date | null = null;
  metrics: AgentMetrics | null = null;
  metricsAt: Date | null = null;
  readonly pending = new Map<string, Pending>();
  readonly counters = zeroCounters();

  constructor(
    readonly name: string,
    public machineId: string,
    public socketPath: string,
    burst: number,
  ) {
    this.tokens = burst;
  }
}

/** Builds the host's agent watcher (not started). */
export function createAgentWatcher(opts: AgentWatcherOptions): AgentWatcher {
  if (!opts.source && !opts.connection)
    throw new TypeError('createAgentWatcher needs a connection or a source');
  const source = opts.source ?? libvirtDomainSource(opts.connection!);
  const log = opts.logger;
  const burst = opts.rateBurst ?? 20;
  const perMs = (opts.ratePerSecond ?? 2) / 1000;
  const floodThreshold = opts.floodThreshold ?? 200;
  const floodWindowMs = opts.floodWindowMs ?? 10_000;
  const floodCooldownMs = opts.floodCooldownMs ?? 60_000;
  const backoffMs = opts.backoffMs ?? 500;
  const maxBackoffMs = opts.maxBackoffMs ?? 30_000;
  const maxPending = opts.maxPending ?? 4;
  const resyncMs = opts.resyncMs ?? 30_000;
  const silenceGraceMs = opts.silenceGraceMs ?? 5_000;

  const links = new Map<string, Link>(); // by domain name
  const byMachine = new Map<string, Link>();
  /** Running domains that are not vmflow's or have no agent channel: not re-read until they stop. */
  const ignored = new Set<string>();
  const resolving = new Map<string, Promise<void>>();
  const retired = zeroCounters();
  let running = false;
  let reconcileTimer: NodeJS.Timeout | null = null;
  let tickTimer: NodeJS.Timeout | null = null;
  let unsubscribe: (() => Promise<void>) | null = null;
  let reconciling: Promise<void> | null = null;

  const fields = (l: Link) => ({ host: opts.hostName, machineId: l.machineId, domain: l.name });

  const snapshot = (l: Link): AgentStatus => ({
    machineId: l.machineId,
    domainName: l.name,
    state: l.state,
    reason: l.reason,
    socket: l.socket && !l.socket.connecting ? 'open' : 'closed',
    hello: l.hello,
    helloAt: l.helloAt,
    metrics: l.metrics,
    metricsAt: l.metricsAt,
    counters: { ...l.counters },
  });

  /** Calls a consumer's callback; a consumer that throws is logged, never lets the error reach a socket. */
  const notify = (what: string, fn: () => void) => {
    try {
      fn();
    } catch (err) {
      log.warn(
        { host: opts.hostName, err: (err as Error).message },
        `agent watcher: ${what} callback failed`,
      );
    }
  };

  const setState = (l: Link, state: AgentState, reason: string) => {
    const changed = l.state !== state;
    l.state = state;
    l.reason = reason;
    if (!changed) return;
    if (state !== 'connected') rejectPending(l, reason);
    (state === 'lying' ? log.warn : log.info).call(
      log,
      { ...fields(l), state, reason },
      `guest agent ${state}`,
    );
    if (opts.onStatus) notify('onStatus', () => opts.onStatus!(l.machineId, snapshot(l)));
  };

  const rejectPending = (l: Link, reason: string) => {
    for (const [id, p] of l.pending) {
      clearTimeout(p.timer);
      l.pending.delete(id);
      p.reject(new AgentAbsentError(l.machineId, reason));
    }
  };

  const write = (l: Link, line: string): boolean => {
    const s = l.socket;
    if (!s || s.destroyed || s.writableLength > MAX_WRITE_BUFFER) return false;
    s.write(line);
    return true;
  };

  const sendSync = (l: Link) => {
    l.lastSyncAt = Date.now();
    write(l, encodeSync(randomUUID()));
  };

  // ---- messages --------------------------------------------------------------------------------------

  const onHello = (l: Link, m: Hello, now: number) => {
    if (m.machineId !== l.machineId) {
      l.counters.idMismatches++;
      log.debug({ ...fields(l), claimed: m.machineId }, 'guest agent hello with another machine id');
      setState(l, 'lying', "hello claims another machine's id");
      return;
    }
    l.hello = {
      agentVersion: m.agentVersion,
      os: m.os,
      hostname: m.hostname,
      capabilities: m.capabilities,
      intervalS: m.intervalS,
    };
    l.helloAt = new Date(now);
    l.attempt = 0;
    setState(l, 'connected', 'hello');
  };

  const onMetrics = (l: Link, m: Metrics, now: number) => {
    if (l.state !== 'connected') {
      l.counters.ignoredMetrics++;
      return;
    }
    const { v: _v, type: _t, ...sample } = m;
    l.metrics = sample;
    l.metricsAt = new Date(now);
    if (opts.onMetrics) notify('onMetrics', () => opts.onMetrics!(l.machineId, sample, l.metricsAt!));
  };

  const onResponse = (l: Link, m: Response) => {
    const p = l.pending.get(m.id);
    if (!p) {
      l.counters.unmatchedResponses++;
      return;
    }
    clearTimeout(p.timer);
    l.pending.delete(m.id);
    if (!m.ok) {
      p.reject(new AgentCommandError(l.machineId, p.command, m.error.code, m.error.message));
      return;
    }
    const checked = commandResultSchemas[p.command].safeParse(m.result);
    if (checked.success) p.resolve(checked.data);
    else {
      l.counters.malformed++;
      const issue = checked.error.issues[0];
      p.reject(
        new AgentCommandError(
          l.machineId,
          p.command,
          'bad-response',
          `${issue?.path.join('.')}: ${issue?.message}`,
        ),
      );
    }
  };

  /** Takes a token; false when the VM is over its rate (the line is dropped unread). */
  const take = (l: Link, now: number): boolean => {
    l.tokens = Math.min(burst, l.tokens + (now - l.refilledAt) * perMs);
    l.refilledAt = now;
    if (l.tokens >= 1) {
      l.tokens -= 1;
      return true;
    }
    l.counters.rateLimited++;
    if (now - l.floodWindowAt > floodWindowMs) {
      l.floodWindowAt = now;
      l.floodDrops = 0;
    }
    if (++l.floodDrops > floodThreshold) {
      l.counters.floodDisconnects++;
      l.cooldownUntil = now + floodCooldownMs;
      disconnect(l, 'flooding');
    }
    return false;
  };

  const onData = (l: Link, socket: net.Socket, chunk: Buffer) => {
    const now = Date.now();
    l.decoder.push(
      chunk,
      (line) => {
        if (l.socket !== socket) return false; // cut off (flooding) while in this chunk
        if (!take(l, now)) return l.socket === socket;
        const parsed = parseGuestLine(line);
        if (parsed.kind === 'malformed') {
          l.counters.malformed++;
          log.debug({ ...fields(l), reason: parsed.reason }, 'guest agent: malformed line skipped');
        } else if (parsed.kind === 'unknown') l.counters.unknown++;
        else {
          l.counters.messages++;
          l.lastRxAt = now; // only valid messages show an agent alive, not junk
          const m = parsed.message;
          if (m.type === 'hello') onHello(l, m, now);
          else if (m.type === 'metrics') onMetrics(l, m, now);
          else onResponse(l, m);
        }
        return l.socket === socket;
      },
      () => {
        if (l.socket !== socket) return false;
        if (!take(l, now)) return l.socket === socket;
        l.counters.malformed++;
        log.debug(fields(l), 'guest agent: over-long line skipped');
        return true;
      },
    );
  };

  // ---- connections -----------------------------------------------------------------------------------

  const connect = (l: Link) => {
    if (l.forgotten || !running) return;
    const socket = net.createConnection(l.socketPath);
    l.socket = socket;
    socket.on('connect', () => {
      if (l.socket !== socket) return;
      if (l.connectedOnce) l.counters.reconnects++;
      l.connectedOnce = true;
      l.decoder.reset();
      l.lastRxAt = Date.now();
      l.reason = 'no hello yet';
      log.debug(fields(l), 'guest agent channel connected');
      sendSync(l);
    });
    socket.on('data', (chunk: Buffer) => {
      if (l.socket !== socket) return;
      try {
        onData(l, socket, chunk);
      } catch (err) {
        // A bug of ours, not the guest's: cut this VM off rather than let it reach the worker.
        log.warn({ ...fields(l), err: (err as Error).message }, 'guest agent: error handling data');
        socket.destroy();
      }
    });
    socket.on('error', (err) => {
      log.debug({ ...fields(l), err: err.message }, 'guest agent channel error');
    });
    socket.on('close', () => {
      if (l.socket === socket) disconnect(l, 'socket closed');
    });
  };

  /** Drops the VM's connection (closed by the guest, or cut off) and schedules the next one. */
  const disconnect = (l: Link, reason: string) => {
    const socket = l.socket;
    l.socket = null;
    l.decoder.reset();
    socket?.destroy();
    setState(l, 'absent', reason);
    rejectPending(l, reason);
    scheduleReconnect(l);
  };

  const scheduleReconnect = (l: Link, delayMs?: number) => {
    if (l.forgotten || !running || l.timer) return;
    const backoff = Math.min(maxBackoffMs, backoffMs * 2 ** Math.min(l.attempt, 20));
    let delay = delayMs ?? backoff * (0.5 + Math.random() / 2);
    l.attempt++;
    delay = Math.max(delay, l.cooldownUntil - Date.now());
    l.timer = setTimeout(() => {
      l.timer = null;
      void reopen(l);
    }, delay);
    l.timer.unref();
  };

  /** Re-reads the domain (a restarted domain has a new socket path) and connects, or forgets it. */
  const reopen = async (l: Link) => {
    if (l.forgotten || !running || l.socket) return;
    let found: AgentDomain | null;
    try {
      found = await source.resolve(l.name);
    } catch (err) {
      log.debug({ ...fields(l), err: (err as Error).message }, 'agent watcher: domain lookup failed');
      scheduleReconnect(l);
      return;
    }
    if (l.forgotten || !running || l.socket) return;
    if (!found || found.machineId !== l.machineId) {
      forget(l.name, 'domain stopped');
      if (found) void watch(l.name);
      return;
    }
    l.socketPath = found.socketPath;
    connect(l);
  };

  /** Starts watching a domain; one look-up at a time per name (a second caller waits for the first). */
  const watch = (name: string): Promise<void> => {
    if (!running || links.has(name) || ignored.has(name)) return Promise.resolve();
    let lookup = resolving.get(name);
    if (!lookup) {
      lookup = lookUp(name).finally(() => resolving.delete(name));
      resolving.set(name, lookup);
    }
    return lookup;
  };

  const lookUp = async (name: string) => {
    try {
      const found = await source.resolve(name);
      if (!running || links.has(name)) return;
      if (!found) {
        ignored.add(name);
        return;
      }
      if (byMachine.has(found.machineId)) {
        log.warn(
          { host: opts.hostName, machineId: found.machineId, domain: name },
          'agent watcher: two domains with one machine id; the second is not watched',
        );
        ignored.add(name);
        return;
      }
      const l = new Link(name, found.machineId, found.socketPath, burst);
      links.set(name, l);
      byMachine.set(l.machineId, l);
      log.info(fields(l), 'guest agent watch started');
      connect(l);
    } catch (err) {
      log.warn(
        { host: opts.hostName, domain: name, err: (err as Error).message },
        'agent watcher: lookup failed',
      );
    }
  };

  const forget = (name: string, reason: string) => {
    const l = links.get(name);
    if (!l) return;
    l.forgotten = true;
    if (l.timer) clearTimeout(l.timer);
    l.timer = null;
    setState(l, 'absent', reason);
    rejectPending(l, reason);
    l.socket?.destroy();
    l.socket = null;
    links.delete(name);
    if (byMachine.get(l.machineId) === l) byMachine.delete(l.machineId);
    for (const k of Object.keys(retired) as Array<keyof AgentCounters>) retired[k] += l.counters[k];
    log.info({ ...fields(l), reason }, 'guest agent watch ended');
  };

  const reconcile = (): Promise<void> => {
    reconciling ??= (async () => {
      try {
        const names = new Set(await source.listRunning());
        for (const name of [...links.keys()]) if (!names.has(name)) forget(name, 'domain not running');
        for (const name of [...ignored]) if (!names.has(name)) ignored.delete(name);
        await Promise.all([...names].map((n) => watch(n)));
      } finally {
        reconciling = null;
      }
    })();
    return reconciling;
  };

  /** Liveness: an agent silent for three of its intervals is absent; an unanswered sync is re-sent. */
  const tick = () => {
    const now = Date.now();
    for (const l of links.values()) {
      if (!l.socket || l.socket.connecting) continue;
      if (l.state === 'connected') {
        const silentMs = 3 * (l.hello?.intervalS ?? 10) * 1000 + silenceGraceMs;
        if (now - l.lastRxAt > silentMs) {
          setState(l, 'absent', 'silent');
          sendSync(l);
        }
      } else if (now - l.lastSyncAt > resyncMs) sendSync(l);
    }
  };

  return {
    async start() {
      if (running) return;
      running = true;
      unsubscribe = await source.subscribe((name, change) => {
        if (!running) return;
        if (change === 'down') {
          ignored.delete(name);
          forget(name, 'domain stopped');
          return;
        }
        const l = links.get(name);
        if (!l) void watch(name);
        else if (!l.socket) {
          // A restart: connect to the new socket now, not after the backoff.
          if (l.timer) clearTimeout(l.timer);
          l.timer = null;
          l.attempt = 0;
          void reopen(l);
        }
      });
      await reconcile().catch((err) =>
        log.warn({ host: opts.hostName, err: (err as Error).message }, 'agent watcher: reconcile failed'),
      );
      reconcileTimer = setInterval(() => {
        reconcile().catch((err) =>
          log.warn({ host: opts.hostName, err: (err as Error).message }, 'agent watcher: reconcile failed'),
        );
      }, opts.reconcileMs ?? 30_000);
      reconcileTimer.unref();
      tickTimer = setInterval(tick, opts.tickMs ?? 5_000);
      tickTimer.unref();
    },

    async stop() {
      if (!running) return;
      if (reconcileTimer) clearInterval(reconcileTimer);
      if (tickTimer) clearInterval(tickTimer);
      await reconciling?.catch(() => undefined);
      running = false;
      for (const name of [...links.keys()]) forget(name, 'watcher stopped');
      ignored.clear();
      await unsubscribe?.().catch(() => undefined);
      unsubscribe = null;
    },

    reconcile,

    status(machineId) {
      const l = byMachine.get(machineId);
      return l ? snapshot(l) : null;
    },

    list() {
      return [...links.values()].map(snapshot);
    },

    counters() {
      const total: WatcherCounters = { ...retired, guests: links.size, connected: 0, absent: 0, lying: 0 };
      for (const l of links.values()) {
        total[l.state]++;
        for (const k of Object.keys(retired) as Array<keyof AgentCounters>) total[k] += l.counters[k];
      }
      return total;
    },

    request(machineId, command, args, timeoutMs) {
      return new Promise((resolve, reject) => {
        const l = byMachine.get(machineId);
        if (!l) return reject(new AgentAbsentError(machineId, 'not running on this host'));
        if (!l.socket || l.state !== 'connected') return reject(new AgentAbsentError(machineId, l.reason));
        if (l.pending.size >= maxPending) return reject(new AgentBusyError(machineId, l.pending.size));
        const id = randomUUID();
        const line = encodeRequest(id, command, args); // throws on arguments the contract forbids
        if (!write(l, line)) return reject(new AgentAbsentError(machineId, 'agent not reading'));
        const timer = setTimeout(() => {
          l.pending.delete(id);
          reject(new AgentTimeoutError(machineId, command, timeoutMs));
        }, timeoutMs);
        l.pending.set(id, { command, resolve: resolve as (r: unknown) => void, reject, timer });
      });
    },
  };
}
