/**
 * VM metrics collection (docs/metrics.md), in each host's worker, outside workflow code. Every interval it
 * asks libvirt once for the bulk stats of every running domain (`Connection.getAllDomainStats`), keeps the
 * vmflow domains this host owns, turns two consecutive readings into rates (src/metrics/domain-stats.ts),
 * merges the latest fresh sample of vmflow's guest agent (from the agent watcher), and writes the whole
 * batch in one multi-row insert. Each minute it rolls up the minutes that ended (from the raw rows), and
 * it purges rows past their retention.
 *
 * A (re)started worker catches up on the minutes that raw retention still holds whole — from the minute
 * after the one retention cuts into (that one is partly purged already) — in chunks of
 * `rollupChunkMinutes` (one bounded read each), and leaves any minute already stored as it is (a previous
 * worker computed it from the complete minute). The minutes that end while it runs are written as computed.
 *
 * Memory is bounded by the running VMs: one previous reading per owned domain and one ownership verdict
 * per vmflow domain (ours or not) seen in the last reading; a domain that stops is forgotten at the next
 * one. A verdict is re-asked every `ownsTtlMs`, so a foreign domain costs one `owns` query per TTL, not
 * one per interval. Nothing here throws out of the loop: a failed step is logged and the next interval
 * tries again.
 */
import { type Logger } from 'pino';
import { type DataSource } from 'typeorm';
import { type Connection } from '../libvirt/connection';
import { type DomainCounters, hostMetrics, parseDomainStats, STATS_GROUPS } from '../metrics/domain-stats';
import { type MetricPoint, toPoint } from '../metrics/point';
import { bucketStart } from '../metrics/rollup';
import {
  insertRaw,
  purgeMetrics,
  type PurgeResult,
  ROLLUP_MS,
  rollupMinutes,
  rollupWindows,
} from '../metrics/store';
import { type AgentMetrics } from './agent-watcher';

/** The collector's settings and what it reads from. */
export interface MetricsCollectorOptions {
  /** This host's libvirt connection (opened or reopened on each call). */
  libvirt: { get(): Promise<Pick<Connection, 'getAllDomainStats'>> };
  dataSource: DataSource;
  /** The host whose VMs are rolled up here. */
  hostId: string;
  /** Whether a machine is this host's (the agent watcher's filter); re-asked every `ownsTtlMs`. */
  owns(machineId: string): Promise<boolean>;
  /** The latest sample of the VM's agent and when the host received it (the agent watcher's `status`). */
  agentSample?(machineId: string): { metrics: AgentMetrics; at: Date } | null;
  logger: Pick<Logger, 'warn' | 'debug' | 'info'>;
  intervalMs: number;
  rawRetentionS: number;
  rollupRetentionS: number;
  purgeIntervalMs: number;
  /** An agent sample older than this is not merged (default: two intervals, at least 30 s). */
  agentMaxAgeMs?: number;
  ownsTtlMs?: number;
  /** Minutes rolled up per read when catching up (default 10). */
  rollupChunkMinutes?: number;
  /** Called after each batch is committed (the live feed's wake-up). */
  onBatch?(points: MetricPoint[]): void;
}

/** A running collector. */
export interface MetricsCollector {
  start(): void;
  /** Stops the loop and waits for the step in progress. */
  stop(): Promise<void>;
  /** One collection now (also what the loop runs): the points written. */
  collect(now?: number): Promise<MetricPoint[]>;
  /** Rolls up the minutes that ended since the last roll-up, up to `now`'s minute. */
  rollup(now?: number): Promise<number>;
  purge(now?: number): Promise<PurgeResult>;
  /** Domains whose previous reading is held (bounded by the running VMs). */
  readonly tracked: number;
}

/** Creates the collector (not started). */
export function createMetricsCollector(opts: MetricsCollectorOptions): MetricsCollector {
  const agentMaxAgeMs = opts.agentMaxAgeMs ?? Math.max(2 * opts.intervalMs, 30_000);
  const ownsTtlMs = opts.ownsTtlMs ?? 60_000;
  const prev = new Map<string, { counters: DomainCounters; at: number }>();
  const owned = new Map<string, { owned: boolean; checkedAt: number }>();
  const chunkMinutes = opts.rollupChunkMinutes ?? 10;
  const startedAt = Date.now();
  /** Minutes that ended before this worker started: a previous one may have stored them (kept as stored). */
  const caughtUpTo = bucketStart(startedAt, ROLLUP_MS).getTime();
  /**
   * Minutes before this one are rolled up. A (re)started worker starts at the first minute raw retention
   * holds whole: the one it cuts into is partly purged, its mean would be wrong.
   */
  let rolledTo = bucketStart(startedAt - opts.rawRetentionS * 1000, ROLLUP_MS).getTime() + ROLLUP_MS;
  let lastPurge = 0;
  let timer: NodeJS.Timeout | null = null;
  let running = false;
  let step: Promise<void> = Promise.resolve();

  const isOwned = async (machineId: string, now: number): Promise<boolean> => {
    const known = owned.get(machineId);
    if (known && now - known.checkedAt < ownsTtlMs) return known.owned;
    const verdict = await opts.owns(machineId);
    owned.set(machineId, { owned: verdict, checkedAt: now });
    return verdict;
  };

  const collect = async (now = Date.now()): Promise<MetricPoint[]> => {
    const conn = await opts.libvirt.get();
    const records = await conn.getAllDomainStats({ groups: [...STATS_GROUPS], active: true, nowait: true });
    const at = new Date(now);
    const points: MetricPoint[] = [];
    const seen = new Set<string>();
    const present = new Set<string>();
    for (const record of records) {
      const cur = parseDomainStats(record);
      if (cur.machineId) present.add(cur.machineId);
      if (!cur.machineId || seen.has(cur.machineId) || !(await isOwned(cur.machineId, now))) continue;
      seen.add(cur.machineId);
      const before = prev.get(cur.machineId);
      const host = hostMetrics(before?.counters ?? null, cur, before ? now - before.at : 0);
      prev.set(cur.machineId, { counters: cur, at: now });
      const agent = opts.agentSample?.(cur.machineId);
      const fresh = agent && now - agent.at.getTime() <= agentMaxAgeMs ? agent.metrics : null;
      points.push(toPoint(cur.machineId, at, host, fresh));
    }
    for (const id of prev.keys()) if (!seen.has(id)) prev.delete(id);
    for (const id of owned.keys()) if (!present.has(id)) owned.delete(id); // foreign ones keep their verdict
    await insertRaw(opts.dataSource, points);
    if (points.length) opts.onBatch?.(points);
    return points;
  };

  const rollup = async (now = Date.now()): Promise<number> => {
    const upTo = bucketStart(now, ROLLUP_MS).getTime();
    let written = 0;
    for (const [from, to] of rollupWindows(rolledTo, upTo, caughtUpTo, chunkMinutes)) {
      const keep = to <= caughtUpTo; // catching up: a minute already stored stays as it is
      written += (await rollupMinutes(opts.dataSource, new Date(from), new Date(to), opts.hostId, { keep }))
        .length;
      rolledTo = to;
    }
    return written;
  };

  const purge = (now = Date.now()): Promise<PurgeResult> =>
    purgeMetrics(
      opts.dataSource,
      new Date(now - opts.rawRetentionS * 1000),
      new Date(now - opts.rollupRetentionS * 1000),
    );

  /** One interval: collect, roll up, and purge when due; each step logged on failure, never thrown. */
  const tick = async () => {
    const guard = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        opts.logger.warn({ err: (err as Error).message }, `metrics: ${what} failed`);
      }
    };
    await guard('collection', () => collect());
    await guard('rollup', () => rollup());
    const now = Date.now();
    if (now - lastPurge >= opts.purgeIntervalMs) {
      lastPurge = now;
      await guard('purge', () => purge(now));
    }
  };

  const schedule = () => {
    if (!running) return;
    timer = setTimeout(() => {
      step = tick().finally(schedule);
    }, opts.intervalMs);
    timer.unref();
  };

  return {
    start() {
      if (running) return;
      running = true;
      step = tick().finally(schedule);
    },
    async stop() {
      running = false;
      if (timer) clearTimeout(timer);
      timer = null;
      await step;
    },
    collect,
    rollup,
    purge,
    get tracked() {
      return prev.size;
    },
  };
}
