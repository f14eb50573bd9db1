/**
 * The live `vms:metrics` event (docs/metrics.md). A socket asks for a VM with `vms:metrics:subscribe
 * {machineId}` (acknowledged `{ok: true}` or a problem); the VM is loaded once and checked with the same
 * rule as GET /api/machines/:id ({@link canViewMachine}): a VM the caller may not see is "not found" and
 * the socket joins nothing. A subscribed socket sits in the VM's room ({@link metricsRoom}); Socket.IO
 * drops it from the room on disconnect, and `vms:metrics:unsubscribe` leaves it.
 *
 * How samples get here. Each host's worker writes its batch to `machine_metric_raw` (the source of truth)
 * and then publishes a wake-up on Redis (`vmflow:metrics`, src/events/wake.ts: the message carries
 * nothing). On a wake-up — or every `pollMs` when Redis is absent or down, and every `fallbackPollMs`
 * while it is up — the feed reads, in one query, the recent raw rows of the VMs that have subscribers in
 * this process, and emits each VM's newest sample to its room, at most once per VM per `throttleMs`. So
 * the cost per sample does not depend on how many sockets are connected: no per-socket database work, one
 * emit per VM to its room; sockets that subscribed to nothing cost nothing.
 *
 * Re-checks. When the relay delivers an event about a subscribed VM (owner or department changed, VM
 * deleted), the VM is reloaded (once) and every socket of its room is checked again; when a user or a
 * department changes (the relay has refreshed the principals of the sockets concerned), every
 * subscription is checked again against the stored VM. A socket that may no longer see the VM leaves its
 * room and is told so (`vms:metrics:unsubscribed {machineId}`).
 *
 * Subscriptions in flight. A subscribe that is still reading the VM counts against the socket's cap (so a
 * burst of subscribes costs at most `maxPerSocket` reads), an unsubscribe (or a disconnect) sent meanwhile
 * cancels it (it joins nothing; its ack is still `{ok: true}`), and a VM event that arrives during the read
 * bumps the VM's generation: the subscribe then reads the VM again and checks the current row, so a VM that
 * moved out of the caller's sight during the read is never joined, nor its stored owner and department
 * replaced by an older row.
 */
import { type Logger } from 'pino';
import { type Server, type Socket } from 'socket.io';
import { type DataSource } from 'typeorm';
import { z } from 'zod';
import { Machine } from '../entities/machine';
import { type WakeSource } from '../events/wake';
import { type MetricPoint } from '../metrics/point';
import { readRawSince } from '../metrics/store';
import { Throttle } from '../metrics/throttle';
import { type RoutedEvent } from './events';
import { canViewMachine, type MachineRef, METRICS_ROOM_PREFIX, metricsRoom } from './permissions';
import { type SocketData } from './relay';

/** The event a subscribed socket receives. */
export const METRICS_EVENT = 'vms:metrics';
/** What a socket sends to subscribe / unsubscribe. */
export const METRICS_SUBSCRIBE = 'vms:metrics:subscribe';
export const METRICS_UNSUBSCRIBE = 'vms:metrics:unsubscribe';
/** Sent to a socket whose subscription was withdrawn (it may no longer see the VM). */
export const METRICS_UNSUBSCRIBED = 'vms:metrics:unsubscribed';

/** Feed tuning. */
export interface MetricsFeedOptions {
  /** Wake-ups from the workers (Redis `vmflow:metrics`). */
  wake?: WakeSource;
  /** Poll period without wake-ups (default 5 s: one sample per VM per throttle window at most anyway). */
  pollMs?: number;
  /** Poll period while wake-ups arrive (a safety net for lost ones; default 15 s). */
  fallbackPollMs?: number;
  /** At most one `vms:metrics` per VM per this many ms (default 5000). */
  throttleMs?: number;
  /** How far back a read looks for samples not yet emitted (default 60 s). */
  lookbackMs?: number;
  /** Most VMs one socket may follow at once (default 100). */
  maxPerSocket?: number;
}

/** A subscribe/unsubscribe acknowledgement. */
export type SubscribeAck = { ok: true } | { ok: false; status: number; detail: string };

const SubscribeMessage = z.strictObject({ machineId: z.uuid() });

/** The payload of `vms:metrics`. */
export function metricsPayload(p: MetricPoint): Record<string, unknown> {
  return { ...p, at: p.at.toISOString() };
}

/** Serves metrics subscriptions and emits `vms:metrics`. One per API process. */
export class MetricsFeed {
  private io: Server | null = null;
  /** The owner and department of each subscribed VM (checked on subscribe, refreshed on its events). */
  private readonly refs = new Map<string, MachineRef>();
  /** Per VM, how many VM events arrived (a read that overlapped one is stale: see {@link subscribe}). */
  private readonly generation = new Map<string, number>();
  /** Per VM, the subscribes reading it now (its events bump the generation while there are any). */
  private readonly reading = new Map<string, number>();
  /** Per socket, its subscribes in flight by VM (each a token: an unsubscribe or a newer subscribe drops it). */
  private readonly pending = new Map<string, Map<string, object>>();
  /** The time of the newest sample emitted per VM. */
  private readonly emitted = new Map<string, number>();
  private readonly throttle: Throttle;
  private readonly pollMs: number;
  private readonly fallbackPollMs: number;
  private readonly lookbackMs: number;
  private readonly maxPerSocket: number;
  private running = false;
  private wakeConnected = false;
  private timer: NodeJS.Timeout | null = null;
  private busy: Promise<void> | null = null;
  private again = false;
  /** Emissions so far (tests, gauges). */
  emittedCount = 0;

  /** Subscribes still reading their VM (tests, gauges): none once each is answered or its socket gone. */
  get inFlight(): number {
    let n = 0;
    for (const k of this.reading.values()) n += k;
    return n;
  }

  constructor(
    private readonly ds: DataSource,
    private readonly logger: Logger,
    private readonly opts: MetricsFeedOptions = {},
  ) {
    this.throttle = new Throttle(opts.throttleMs ?? 5_000);
    this.pollMs = opts.pollMs ?? 5_000;
    this.fallbackPollMs = opts.fallbackPollMs ?? 15_000;
    this.lookbackMs = opts.lookbackMs ?? 60_000;
    this.maxPerSocket = opts.maxPerSocket ?? 100;
  }

  /** Starts serving (after the Socket.IO server exists). */
  start(io: Server): void {
    if (this.running) return;
    this.io = io;
    this.running = true;
    this.opts.wake?.subscribe(
      () => this.poke(),
      (up) => {
        this.wakeConnected = up;
        this.poke();
      },
    );
    this.schedule();
  }

  /** Stops polling (waits for a read in progress). */
  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.opts.wake?.close();
    await this.busy;
  }

  /** Registers the subscribe/unsubscribe handlers of a connected socket. */
  attach(socket: Socket): void {
    socket.on(METRICS_SUBSCRIBE, (msg: unknown, ack?: unknown) => {
      const reply = typeof ack === 'function' ? (ack as (a: SubscribeAck) => void) : () => undefined;
      this.subscribe(socket, msg).then(reply, (err: unknown) => {
        this.logger.error({ err }, 'metrics subscribe failed');
        reply({ ok: false, status: 500, detail: 'subscription failed' });
      });
    });
    socket.on(METRICS_UNSUBSCRIBE, (msg: unknown, ack?: unknown) => {
      const parsed = SubscribeMessage.safeParse(msg);
      if (parsed.success) {
        this.pending.get(socket.id)?.delete(parsed.data.machineId); // a subscribe in flight joins nothing
        void socket.leave(metricsRoom(parsed.data.machineId));
      }
      if (typeof ack === 'function') (ack as (a: SubscribeAck) => void)({ ok: true });
    });
    socket.on('disconnect', () => this.pending.delete(socket.id));
  }

  private async subscribe(socket: Socket, msg: unknown): Promise<SubscribeAck> {
    const parsed = SubscribeMessage.safeParse(msg);
    if (!parsed.success)
      return { ok: false, status: 400, detail: 'machineId: a machine id (UUID) is required' };
    const { machineId } = parsed.data;
    if (!socket.connected) return { ok: true };
    const room = metricsRoom(machineId);
    let inFlight = this.pending.get(socket.id);
    const joined = [...socket.rooms].filter((r) => r.startsWith(METRICS_ROOM_PREFIX)).length;
    const counted = joined + (inFlight?.size ?? 0);
    if (counted >= this.maxPerSocket && !socket.rooms.has(room) && !inFlight?.has(machineId))
      return { ok: false, status: 429, detail: `at most ${this.maxPerSocket} subscriptions per connection` };
    if (!inFlight) this.pending.set(socket.id, (inFlight = new Map()));
    const token = {};
    inFlight.set(machineId, token);
    this.reading.set(machineId, (this.reading.get(machineId) ?? 0) + 1);
    try {
      let m: Machine | null;
      let gen: number;
      do {
        gen = this.generation.get(machineId) ?? 0;
        m = await this.ds.getRepository(Machine).findOne({
          where: { id: machineId },
          select: { id: true, ownerId: true, departmentId: true },
        });
      } while (gen !== (this.generation.get(machineId) ?? 0)); // the VM changed meanwhile: read it again
      // Unsubscribed (or superseded, or disconnected) while reading: nothing to join.
      if (this.pending.get(socket.id)?.get(machineId) !== token || !socket.connected) return { ok: true };
      const p = (socket.data as SocketData).principal;
      if (!m || !canViewMachine(p, m)) return { ok: false, status: 404, detail: 'machine not found' };
      this.refs.set(machineId, { ownerId: m.ownerId, departmentId: m.departmentId });
      await socket.join(room);
      return { ok: true };
    } finally {
      const n = (this.reading.get(machineId) ?? 1) - 1;
      if (n > 0) this.reading.set(machineId, n);
      else {
        this.reading.delete(machineId);
        if (!this.refs.has(machineId)) this.generation.delete(machineId);
      }
      const mine = this.pending.get(socket.id);
      if (mine?.get(machineId) === token) mine.delete(machineId);
      if (mine?.size === 0) this.pending.delete(socket.id);
    }
  }

  /** Re-checks subscriptions after the relay delivered events (wired to `relay.onDelivered`). */
  onEvents(events: RoutedEvent[]): void {
    if (!this.io || (!this.refs.size && !this.reading.size)) return;
    const vms = new Set<string>();
    let everyone = false;
    for (const { row } of events) {
      const id = row.resource === 'vms' ? row.resourceId : null;
      if (id && (this.refs.has(id) || this.reading.has(id))) {
        this.generation.set(id, (this.generation.get(id) ?? 0) + 1); // a subscribe reading it reads again
        if (this.refs.has(id)) vms.add(id);
      } else if (row.resource === 'users' || row.resource === 'departments') everyone = true;
    }
    if (!vms.size && !everyone) return;
    void this.recheck(vms, everyone).catch((err: unknown) =>
      this.logger.error({ err }, 'metrics subscription re-check failed'),
    );
  }

  private async recheck(reload: Set<string>, everyone: boolean): Promise<void> {
    const stale = new Set<string>();
    if (reload.size) {
      const gens = new Map([...reload].map((id) => [id, this.generation.get(id) ?? 0]));
      const rows = await this.ds.getRepository(Machine).find({
        where: [...reload].map((id) => ({ id })),
        select: { id: true, ownerId: true, departmentId: true },
      });
      const found = new Map(rows.map((r) => [r.id, r]));
      for (const id of reload) {
        // A newer event came during the read: its own re-check stores the newer row (never this older one).
        if (gens.get(id) !== (this.generation.get(id) ?? 0)) {
          stale.add(id);
          continue;
        }
        const m = found.get(id);
        if (m) this.refs.set(id, { ownerId: m.ownerId, departmentId: m.departmentId });
        else this.refs.delete(id); // deleted: nobody may follow it
      }
    }
    for (const id of everyone ? this.subscribed() : reload) {
      if (stale.has(id)) continue;
      const ref = this.refs.get(id);
      for (const s of this.socketsIn(id)) {
        if (ref && canViewMachine((s.data as SocketData).principal, ref)) continue;
        void s.leave(metricsRoom(id));
        s.emit(METRICS_UNSUBSCRIBED, { machineId: id });
      }
    }
  }

  /** The VMs with at least one subscribed socket in this process (forgets the others). */
  private subscribed(): string[] {
    const rooms = this.io?.of('/').adapter.rooms;
    const ids: string[] = [];
    for (const id of this.refs.keys()) {
      if (rooms?.get(metricsRoom(id))?.size) ids.push(id);
      else {
        this.refs.delete(id);
        this.emitted.delete(id);
        if (!this.reading.has(id)) this.generation.delete(id);
      }
    }
    return ids;
  }

  private socketsIn(machineId: string): Socket[] {
    const nsp = this.io?.of('/');
    const ids = nsp?.adapter.rooms.get(metricsRoom(machineId));
    if (!nsp || !ids) return [];
    return [...ids].map((sid) => nsp.sockets.get(sid)).filter((s): s is Socket => s !== undefined);
  }

  /** Look now (a worker committed samples). Reads never overlap: a wake-up during one runs another after. */
  poke(): void {
    if (!this.running) return;
    if (this.busy) {
      this.again = true;
      return;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.busy = this.read()
      .catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'metrics feed: read failed'))
      .finally(() => {
        this.busy = null;
        if (this.again) {
          this.again = false;
          this.poke();
        } else this.schedule();
      });
  }

  private schedule(): void {
    if (!this.running || this.timer) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.poke();
      },
      this.wakeConnected ? this.fallbackPollMs : this.pollMs,
    );
    this.timer.unref();
  }

  /** One read: the newest sample of each subscribed VM not emitted yet, throttled per VM. */
  private async read(): Promise<void> {
    const ids = this.subscribed();
    const now = Date.now();
    this.throttle.sweep(now);
    if (!ids.length || !this.io) return;
    const rows = await readRawSince(this.ds, ids, new Date(now - this.lookbackMs));
    const newest = new Map<string, MetricPoint>();
    for (const r of rows) newest.set(r.machineId, r); // oldest first: the last one wins
    for (const [id, p] of newest) {
      const t = p.at.getTime();
      if (t <= (this.emitted.get(id) ?? 0) || !this.refs.has(id)) continue;
      if (!this.throttle.allow(id, now)) continue; // the newest one goes out once the window has passed
      this.emitted.set(id, t);
      this.emittedCount++;
      this.io.to(metricsRoom(id)).emit(METRICS_EVENT, metricsPayload(p));
    }
  }
}
