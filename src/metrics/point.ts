/**
 * One metrics sample of a VM as vmflow stores, serves and pushes it: the host's view (libvirt bulk stats,
 * src/metrics/domain-stats.ts) merged with the guest's own (vmflow's agent, src/guests/agent-protocol.ts)
 * when an agent sent a fresh sample. Every value may be null (not known at this moment). The column list
 * {@link METRIC_FIELDS} is the one place the stored fields are named: the tables, the rollup, the API
 * schema and the socket payload all follow it.
 */
import { type Metrics as AgentMetrics } from '../guests/agent-protocol';
import { type HostMetrics } from './domain-stats';

/** The numeric fields of a sample, in storage order. */
export const METRIC_FIELDS = [
  // libvirt (every running VM)
  'cpuPct',
  'memAssignedBytes',
  'memTotalBytes',
  'memUsedBytes',
  'hostRssBytes',
  'diskReadBps',
  'diskWriteBps',
  'netRxBps',
  'netTxBps',
  // vmflow's agent (when connected)
  'guestCpuPct',
  'load1',
  'swapUsedBytes',
  'fsUsedBytes',
  'fsTotalBytes',
  'uptimeS',
  'users',
] as const;
export type MetricField = (typeof METRIC_FIELDS)[number];

/** A sample's values. */
export type MetricValues = Record<MetricField, number | null>;

/** A stored sample: a VM, the host's time of collection and its values. */
export interface MetricPoint extends MetricValues {
  machineId: string;
  at: Date;
  /** True when a fresh agent sample was merged in. */
  agent: boolean;
}

/** The agent sample's part of a point (its memory, when present, is the guest's own and wins). */
export function agentValues(m: Omit<AgentMetrics, 'v' | 'type'>): Partial<MetricValues> {
  const fs = m.filesystems;
  return {
    guestCpuPct: m.cpu.totalPct,
    load1: m.load[0],
    memTotalBytes: m.memory.totalBytes,
    memUsedBytes: m.memory.usedBytes,
    swapUsedBytes: m.memory.swapUsedBytes,
    fsUsedBytes: fs.length ? fs.reduce((a, f) => a + f.usedBytes, 0) : null,
    fsTotalBytes: fs.length ? fs.reduce((a, f) => a + f.totalBytes, 0) : null,
    uptimeS: m.uptimeS,
    users: m.users.length,
  };
}

/** Merges the host's metrics with an agent sample (null: none fresh) into a point. */
export function toPoint(
  machineId: string,
  at: Date,
  host: HostMetrics,
  agent: Omit<AgentMetrics, 'v' | 'type'> | null,
): MetricPoint {
  const values = Object.fromEntries(METRIC_FIELDS.map((f) => [f, null])) as MetricValues;
  Object.assign(values, host);
  if (agent) {
    const a = agentValues(agent);
    for (const f of METRIC_FIELDS) if (a[f] !== undefined && a[f] !== null) values[f] = a[f];
  }
  return { machineId, at, agent: agent !== null, ...values };
}
