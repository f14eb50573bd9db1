/**
 * The event relay (DESIGN decisions 7 and 10): reads the event table for rows above its watermark
 * (`batch` rows at a time) and emits each as `<resource>:<action>` to the rooms allowed to see it
 * (src/api/permissions.ts). Each API process runs one; events are written by activities in any worker.
 *
 * When. With a wake source (Redis pub/sub, src/events/wake.ts) the relay looks as soon as a writer says
 * an event committed, and otherwise every `fallbackPollMs`; without one, or while it is down, every
 * `pollMs`. A tick that stopped at a new hole looks again after `holeRecheckMs`.
 *
 * Ordering. Auto-increment ids are assigned at insert but become visible at commit, so a row can appear
 * after a higher one (a hole that fills later), and ids lost to rolled-back or ignored inserts leave holes
 * that never fill. The relay never steps over a hole blindly: it holds the rows above it, and asks the
 * database whether a transaction still holds the missing id (a locking read with NOWAIT fails on an
 * uncommitted row). A hole nobody holds is permanent and skipped; a held one is waited for, up to
 * `maxHoldMs`, after which the relay moves on and delivers the row late if it ever commits. So clients get
 * events in id order, and the watermark is a safe "everything up to here" point for catch-up.
 *
 * Holes are kept as ranges of ids, never as lists: after the table is emptied (or purged) AUTO_INCREMENT
 * keeps counting while the watermark starts at MAX(id), so the first new id can lie millions above it.
 *
 * Catch-up. A socket that connects with `lastEventId` is served on the relay's own queue, between two
 * polls: it gets the events it may see in (lastEventId, watermark], then joins its rooms, so the next poll
 * continues exactly after — no gap, no duplicate.
 */
import { type Logger } from 'pino';
import { type Server, type Socket } from 'socket.io';
import { type DataSource } from 'typeorm';
import { Event } from '../entities/event';
import { type WakeSource } from '../events/wake';
import { EventRouter, eventName, loadVisibleEvents, toClientEvent, type RoutedEvent } from './events';
import {
  loadPrincipal,
  METRICS_ROOM_PREFIX,
  roomsForEvent,
  roomsForPrincipal,
  type Principal,
} from './permissions';

/** Relay tuning. */
export interface RelayOptions {
  /** Poll period without a wake source, or while it is down. */
  pollMs?: number;
  /** Wake-ups from writers (Redis pub/sub); the relay then polls only every `fallbackPollMs`. */
  wake?: WakeSource;
  /** Poll period while the wake source is connected (a safety net for lost wake-ups). */
  fallbackPollMs?: number;
  /** How soon a tick that stopped at a new hole looks again. */
  holeRecheckMs?: number;
  batch?: number;
  /** How long to wait for a hole held by an open transaction before moving on. */
  maxHoldMs?: number;
  /** Most events one catch-up sends before telling the client to reload instead (`relay:overflow`). */
  catchUpMax?: number;
}

/** Ids `lo..hi`, both included. */
interface IdRange {
  lo: number;
  hi: number;
}

/** `range` less the parts that `cut` covers (both sorted or not; small lists). */
function subtract(range: IdRange, cut: readonly IdRange[]): IdRange[] {
  let parts: IdRange[] = [range];
  for (const c of cut) {
    parts = parts.flatMap((p) => {
      if (c.hi < p.lo || c.lo > p.hi) return [p];
      const left = c.lo > p.lo ? [{ lo: p.lo, hi: c.lo - 1 }] : [];
      const right = c.hi < p.hi ? [{ lo: c.hi + 1, hi: p.hi }] : [];
      return [...left, ...right];
    });
  }
  return parts;
}

const overlaps = (a: IdRange, b: IdRange) => a.lo <= b.hi && b.lo <= a.hi;

/** `(id BETWEEN ? AND ?) OR …` and its values, for a list of ranges. */
function rangeSql(ranges: readonly IdRange[]): { sql: string; values: number[] } {
  return {
    sql: ranges.map(() => '(id BETWEEN ? AND ?)').join(' OR '),
    values: ranges.flatMap((r) => [r.lo, r.hi]),
  };
}

/** What the relay knows about a socket. */
export interface SocketData {
  principal: Principal;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isLockError(err: unknown): boolean {
  const e = err as { errno?: number; code?: string; driverError?: { errno?: number } };
  const errno = e?.errno ?? e?.driverError?.errno;
  return (
    errno === 1205 || errno === 3572 || e?.code === 'ER_LOCK_WAIT_TIMEOUT' || e?.code === 'ER_LOCK_NOWAIT'
  );
}

/** Polls the event table and emits to Socket.IO rooms. */
export class EventRelay {
  readonly router: EventRouter;
  private io: Server | null = null;
  private mark = -1;
  private running = false;
  private loop: Promise<void> | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  /** Holes seen above the watermark, with when each was first seen. */
  private holes: Array<IdRange & { since: number }> = [];
  /** Holes stepped over (never to be waited for again). */
  private skipped: IdRange[] = [];
  /** Holes given up on while still held: their rows are delivered late if they commit. */
  private late: Array<IdRange & { since: number; delivered: Set<number> }> = [];
  private readonly pollMs: number;
  private readonly fallbackPollMs: number;
  private readonly holeRecheckMs: number;
  private readonly batch: number;
  private wakeConnected = false;
  private recheckSoon = false;
  /** Set by a wake-up; the loop's wait ends at once when set. */
  private poked = false;
  private wakeWaiter: (() => void) | null = null;
  private readonly maxHoldMs: number;
  private readonly catchUpMax: number;
  private readonly listeners = new Set<(events: RoutedEvent[]) => void>();
  private readonly wake: WakeSource | null;

  constructor(
    private readonly ds: DataSource,
    private readonly logger: Logger,
    opts: RelayOptions = {},
  ) {
    this.router = new EventRouter(ds);
    this.pollMs = opts.pollMs ?? 100;
    this.fallbackPollMs = opts.fallbackPollMs ?? 1_000;
    this.holeRecheckMs = opts.holeRecheckMs ?? 20;
    this.wake = opts.wake ?? null;
    this.batch = opts.batch ?? 500;
    this.maxHoldMs = opts.maxHoldMs ?? 10_000;
    this.catchUpMax = opts.catchUpMax ?? 5_000;
  }

  /** Every event id up to this one has been delivered (or is known never to exist). */
  get watermark(): number {
    return this.mark;
  }

  /** Calls `fn` with each delivered batch (metrics, benches). Returns an unsubscribe function. */
  onDelivered(fn: (events: RoutedEvent[]) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Starts polling, from the current end of the table (history is served by catch-up). */
  async start(io: Server | null): Promise<void> {
    if (this.running) return;
    this.io = io;
    const row = await this.ds
      .getRepository(Event)
      .createQueryBuilder('e')
      .select('MAX(e.id)', 'max')
      .getRawOne<{ max: string | null }>();
    this.mark = Number(row?.max ?? 0);
    this.running = true;
    this.wake?.subscribe(
      () => this.poke(),
      (up) => {
        this.wakeConnected = up;
        this.poke(); // (re)connected: wake-ups may have been lost meanwhile; dropped: poll quickly now
      },
    );
    this.loop = (async () => {
      while (this.running) {
        const soon = await this.enqueue(() => this.tick());
        await this.idle(soon ? this.holeRecheckMs : this.wakeConnected ? this.fallbackPollMs : this.pollMs);
      }
    })();
  }

  /** Stops polling (waits for the current tick). */
  async stop(): Promise<void> {
    this.running = false;
    this.poke();
    await this.wake?.close();
    await this.loop;
    await this.queue;
  }

  /** True while wake-ups arrive (the relay polls only as a fallback). */
  get wakeUpsConnected(): boolean {
    return this.wakeConnected;
  }

  /** Look now: ends the current wait, or the next one if a tick is running. */
  private poke(): void {
    this.poked = true;
    this.wakeWaiter?.();
  }

  /** Waits `ms`, or less if poked. */
  private async idle(ms: number): Promise<void> {
    if (this.poked || !this.running) {
      this.poked = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakeWaiter = done;
    });
    this.wakeWaiter = null;
    this.poked = false;
  }

  /** Runs `fn` on the relay's queue (never concurrently with a tick or another catch-up). */
  private enqueue<T>(fn: () => Promise<T>): Promise<T | undefined> {
    const next = this.queue.then(fn).catch((err: unknown) => {
      this.logger.error({ err }, 'event relay step failed');
      return undefined;
    });
    this.queue = next;
    return next;
  }

  /**
   * One poll: deliver what is committed above the watermark, in order. True when it stopped at a hole
   * worth looking at again shortly (new, or filled meanwhile); a hole that a transaction holds is looked
   * at on the usual cadence (its commit wakes the relay anyway).
   */
  private async tick(): Promise<boolean> {
    let blocked = false;
    this.recheckSoon = false;
    for (let round = 0; round < 20; round++) {
      const rows = await this.ds
        .getRepository(Event)
        .createQueryBuilder('e')
        .where('e.id > :mark', { mark: this.mark })
        .orderBy('e.id', 'ASC')
        .limit(this.batch)
        .getMany();
      if (!rows.length) break;
      const ready: Event[] = [];
      let expected = this.mark + 1;
      for (const row of rows) {
        const id = Number(row.id);
        if (id > expected) {
          const missing = subtract({ lo: expected, hi: id - 1 }, this.skipped);
          if (missing.length && !(await this.settleHole(missing))) {
            blocked = true;
            break;
          }
        }
        ready.push(row);
        expected = id + 1;
      }
      if (ready.length) {
        await this.deliver(ready);
        this.advance(Number(ready[ready.length - 1]!.id));
      }
      if (blocked || rows.length < this.batch) break;
    }
    await this.deliverLate();
    return blocked && this.recheckSoon;
  }

  private advance(to: number): void {
    this.mark = to;
    this.skipped = this.skipped.filter((r) => r.hi > to);
    this.holes = this.holes.filter((r) => r.hi > to);
  }

  /** True when the missing ids may be stepped over (no transaction holds them, or held too long). */
  private async settleHole(missing: IdRange[]): Promise<boolean> {
    const now = Date.now();
    let first = now;
    for (const h of this.holes) if (missing.some((m) => overlaps(h, m))) first = Math.min(first, h.since);
    for (const m of missing)
      if (!this.holes.some((h) => h.lo === m.lo && h.hi === m.hi)) this.holes.push({ ...m, since: now });
    if (first === now) {
      this.recheckSoon = true; // new: most holes are commits a few ms away; look again shortly
      return false;
    }
    let held = false;
    let present = false;
    try {
      present = (await this.probe(missing)) > 0;
    } catch (err) {
      if (!isLockError(err)) throw err;
      held = true;
    }
    if (present) {
      this.recheckSoon = true; // committed just now: the next query reads it in order
      return false;
    }
    if (held && now - first < this.maxHoldMs) return false;
    this.skipped.push(...missing);
    if (held) this.late.push(...missing.map((m) => ({ ...m, since: now, delivered: new Set<number>() })));
    if (held)
      this.logger.warn(
        { ranges: missing },
        'event relay: moving past events still uncommitted; they will be delivered late',
      );
    return true;
  }

  /**
   * Counts the missing ids that are committed now; throws a lock error when a transaction still holds one
   * (a locking read with NOWAIT, in READ COMMITTED so that it takes no gap locks). Runs on the driver's
   * connection directly: the expected lock error is not a failure worth logging.
   */
  private async probe(ranges: IdRange[]): Promise<number> {
    const qr = this.ds.createQueryRunner();
    try {
      const conn = (await qr.connect()) as {
        query(sql: string, values: unknown[], cb: (err: unknown, rows: unknown) => void): void;
      };
      const q = (sql: string, values: unknown[] = []) =>
        new Promise<unknown>((resolve, reject) =>
          conn.query(sql, values, (err, rows) => (err ? reject(err) : resolve(rows))),
        );
      await q('SET TRANSACTION ISOLATION LEVEL READ COMMITTED');
      await q('START TRANSACTION');
      try {
        const where = rangeSql(ranges);
        const rows = await q(
          `SELECT id FROM \`event\` WHERE ${where.sql} LOCK IN SHARE MODE NOWAIT`,
          where.values,
        );
        return (rows as unknown[]).length;
      } finally {
        await q('ROLLBACK');
      }
    } finally {
      await qr.release();
    }
  }

  private async deliverLate(): Promise<void> {
    const now = Date.now();
    this.late = this.late.filter((r) => now - r.since <= 5 * 60_000);
    if (!this.late.length) return;
    const params: Record<string, number> = {};
    const where = this.late
      .map((l, i) => {
        params[`lo${i}`] = l.lo;
        params[`hi${i}`] = l.hi;
        return `(e.id BETWEEN :lo${i} AND :hi${i})`;
      })
      .join(' OR ');
    const rows = await this.ds
      .getRepository(Event)
      .createQueryBuilder('e')
      .where(where, params)
      .orderBy('e.id', 'ASC')
      .getMany();
    const fresh = rows.filter((r) => {
      const id = Number(r.id);
      const range = this.late.find((l) => l.lo <= id && id <= l.hi)!;
      if (range.delivered.has(id)) return false;
      range.delivered.add(id);
      return true;
    });
    if (fresh.length) await this.deliver(fresh);
  }

  private async deliver(rows: Event[]): Promise<void> {
    const routed = await this.router.route(rows);
    for (const { row, route } of routed) {
      if (this.io) {
        if (row.resource === 'users' && row.resourceId) await this.refreshRooms(`user:${row.resourceId}`);
        if (row.resource === 'departments' && row.resourceId)
          await this.refreshRooms(`department:${row.resourceId}`);
        this.io.to(roomsForEvent(route)).emit(eventName(row), toClientEvent(row));
      }
    }
    for (const fn of this.listeners) fn(routed);
  }

  /** Recomputes the rooms of the sockets in a room (membership or role changed; user deleted). */
  private async refreshRooms(room: string): Promise<void> {
    if (!this.io) return;
    const sockets = await this.io.in(room).fetchSockets();
    for (const s of sockets) {
      const p = await loadPrincipal(this.ds, (s.data as SocketData).principal.id);
      if (!p) {
        s.disconnect(true);
        continue;
      }
      (s.data as SocketData).principal = p;
      const want = new Set(roomsForPrincipal(p));
      // Metrics subscriptions are the metrics feed's (it re-checks them after this delivery).
      for (const r of s.rooms)
        if (r !== s.id && !want.has(r) && !r.startsWith(METRICS_ROOM_PREFIX)) s.leave(r);
      s.join([...want]);
    }
  }

  /**
   * Serves a socket that just connected: the events it missed after `lastEventId` (null: none), then its
   * rooms. Emits `relay:synced {lastEventId}` when live delivery starts.
   */
  attach(socket: Socket, lastEventId: number | null): Promise<unknown> {
    return this.enqueue(() => this.serve(socket, lastEventId, Date.now()));
  }

  private async serve(socket: Socket, lastEventId: number | null, since: number): Promise<void> {
    if (!socket.connected) return;
    const p = (socket.data as SocketData).principal;
    let after = lastEventId ?? this.mark;
    if (after > this.mark) {
      // The client saw more than this process has relayed yet (another API process): wait for it, briefly.
      const row = await this.ds
        .getRepository(Event)
        .createQueryBuilder('e')
        .select('MAX(e.id)', 'max')
        .getRawOne<{ max: string | null }>();
      if (after > Number(row?.max ?? 0))
        after = this.mark; // not an id that exists: start from now
      else if (Date.now() - since < 5_000) {
        void this.sleepThenServe(socket, lastEventId, since);
        return;
      } else after = this.mark;
    }
    let sent = 0;
    let overflow = false;
    while (after < this.mark) {
      const page = await loadVisibleEvents(this.ds, this.router, p, after, this.mark, 500);
      for (const { row, event } of page.events) socket.emit(eventName(row), event);
      sent += page.events.length;
      after = page.lastEventId;
      if (!page.hasMore) break;
      if (sent >= this.catchUpMax) {
        overflow = true;
        break;
      }
    }
    if (overflow) socket.emit('relay:overflow', { lastEventId: this.mark });
    socket.join(roomsForPrincipal(p));
    socket.emit('relay:synced', { lastEventId: this.mark });
  }

  private async sleepThenServe(socket: Socket, lastEventId: number | null, since: number): Promise<void> {
    await sleep(this.pollMs);
    await this.enqueue(() => this.serve(socket, lastEventId, since));
  }
}
