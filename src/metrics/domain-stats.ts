/**
 * libvirt's bulk domain statistics (`virConnectGetAllDomainStats`, through the binding's
 * `Connection.getAllDomainStats`) turned into what vmflow stores: one {@link DomainCounters} per domain
 * (cumulative counters as libvirt reports them) and, from two of them, the rates of a
 * {@link HostMetrics} sample (CPU %, block and network bytes per second) plus the balloon's view of memory.
 * Pure: no I/O, nothing thrown for a record that lacks a group (a domain busy with a job, a driver that
 * does not report a field): what is missing is null.
 */
import { type DomainStatsRecord } from '../libvirt/connection';

/** The stats groups vmflow asks libvirt for. */
export const STATS_GROUPS = ['state', 'cpu', 'balloon', 'vcpu', 'interface', 'block'] as const;

/** The cumulative counters of one domain at one moment. */
export interface DomainCounters {
  /** The vmflow machine id (from the `vmflow-<id>` domain name); null for a domain that is not vmflow's. */
  machineId: string | null;
  name: string;
  /** Total CPU time of the domain (ns), all vCPUs. */
  cpuTimeNs: number | null;
  /** vCPUs online now. */
  vcpus: number | null;
  /** Memory the balloon gives the guest now, and the most it may give (bytes; `balloon.current`, `.maximum`). */
  memAssignedBytes: number | null;
  memMaxBytes: number | null;
  /** Guest-reported memory (virtio balloon statistics): total usable by the guest and free/reclaimable. */
  memGuestTotalBytes: number | null;
  memGuestUsableBytes: number | null;
  memGuestUnusedBytes: number | null;
  /** Resident memory of the QEMU process on the host (bytes; `balloon.rss`). */
  hostRssBytes: number | null;
  /** Sums over the domain's disks and NICs. */
  blockReadBytes: number | null;
  blockWriteBytes: number | null;
  blockReadOps: number | null;
  blockWriteOps: number | null;
  netRxBytes: number | null;
  netTxBytes: number | null;
  netRxPackets: number | null;
  netTxPackets: number | null;
}

/** The host's (libvirt's) view of a VM over one interval. */
export interface HostMetrics {
  /** CPU use over the interval, in % of the VM's vCPUs (0..100). */
  cpuPct: number | null;
  memAssignedBytes: number | null;
  /** Guest memory in use as the balloon driver reports it (total − usable), when the guest reports it. */
  memUsedBytes: number | null;
  memTotalBytes: number | null;
  hostRssBytes: number | null;
  diskReadBps: number | null;
  diskWriteBps: number | null;
  netRxBps: number | null;
  netTxBps: number | null;
}

const DOMAIN_NAME = /^vmflow-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** The machine id of a vmflow domain name (`vmflow-<uuid>`), else null. */
export function machineIdOfDomain(name: string): string | null {
  return DOMAIN_NAME.exec(name)?.[1] ?? null;
}

type Stats = DomainStatsRecord['stats'];

/** A finite non-negative number, else null. */
function num(stats: Stats, key: string): number | null {
  const v = stats[key];
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null;
}

const kib = (v: number | null) => (v === null ? null : v * 1024);

/**
 * Sums `<group>.<i>.<field>` over `<group>.count` entries, each device once: the first entry of a name
 * (with the backing-chain flag libvirt lists a disk's backing images after it under the same name; and
 * libvirt 9 gives even the top image a `backingIndex`, so that field cannot tell them apart). Null when no
 * entry reports the field.
 */
function sum(stats: Stats, group: 'block' | 'net', field: string): number | null {
  const count = num(stats, `${group}.count`);
  if (count === null) return null;
  let total: number | null = null;
  const names = new Set<unknown>();
  for (let i = 0; i < Math.min(count, 1024); i++) {
    const name = stats[`${group}.${i}.name`];
    if (name !== undefined && names.has(name)) continue;
    names.add(name);
    const v = num(stats, `${group}.${i}.${field}`);
    if (v !== null) total = (total ?? 0) + v;
  }
  return total;
}

/** The counters of one bulk-stats record (disks and NICs summed, each once). */
export function parseDomainStats(record: DomainStatsRecord): DomainCounters {
  const s = record.stats;
  return {
    machineId: machineIdOfDomain(record.name),
    name: record.name,
    cpuTimeNs: num(s, 'cpu.time'),
    vcpus: num(s, 'vcpu.current'),
    memAssignedBytes: kib(num(s, 'balloon.current')),
    memMaxBytes: kib(num(s, 'balloon.maximum')),
    memGuestTotalBytes: kib(num(s, 'balloon.available')),
    memGuestUsableBytes: kib(num(s, 'balloon.usable')),
    memGuestUnusedBytes: kib(num(s, 'balloon.unused')),
    hostRssBytes: kib(num(s, 'balloon.rss')),
    blockReadBytes: sum(s, 'block', 'rd.bytes'),
    blockWriteBytes: sum(s, 'block', 'wr.bytes'),
    blockReadOps: sum(s, 'block', 'rd.reqs'),
    blockWriteOps: sum(s, 'block', 'wr.reqs'),
    netRxBytes: sum(s, 'net', 'rx.bytes'),
    netTxBytes: sum(s, 'net', 'tx.bytes'),
    netRxPackets: sum(s, 'net', 'rx.pkts'),
    netTxPackets: sum(s, 'net', 'tx.pkts'),
  };
}

/** Per-second rate of a counter between two readings; null when unknown or reset (domain restarted). */
function rate(prev: number | null | undefined, cur: number | null, seconds: number): number | null {
  if (prev === null || prev === undefined || cur === null || seconds <= 0 || cur < prev) return null;
  return (cur - prev) / seconds;
}

/**
 * The host's metrics of an interval from two readings `elapsedMs` apart (`prev` null: the first reading,
 * rates unknown). CPU % is CPU time over wall time and vCPUs, clamped to 0..100 (a vCPU cannot run more
 * than the wall clock; jitter in when libvirt read the counter can overshoot slightly).
 */
export function hostMetrics(
  prev: DomainCounters | null,
  cur: DomainCounters,
  elapsedMs: number,
): HostMetrics {
  const seconds = elapsedMs / 1000;
  const cpuNsPerS = rate(prev?.cpuTimeNs, cur.cpuTimeNs, seconds);
  const cpuPct = cpuNsPerS === null || !cur.vcpus ? null : Math.min(100, (cpuNsPerS / 1e9 / cur.vcpus) * 100);
  const free = cur.memGuestUsableBytes ?? cur.memGuestUnusedBytes;
  return {
    cpuPct,
    memAssignedBytes: cur.memAssignedBytes,
    memTotalBytes: cur.memGuestTotalBytes,
    memUsedBytes:
      cur.memGuestTotalBytes !== null && free !== null ? Math.max(0, cur.memGuestTotalBytes - free) : null,
    hostRssBytes: cur.hostRssBytes,
    diskReadBps: rate(prev?.blockReadBytes, cur.blockReadBytes, seconds),
    diskWriteBps: rate(prev?.blockWriteBytes, cur.blockWriteBytes, seconds),
    netRxBps: rate(prev?.netRxBytes, cur.netRxBytes, seconds),
    netTxBps: rate(prev?.netTxBytes, cur.netTxBytes, seconds),
  };
}
