/**
 * The worker's Prometheus exposition (docs/observability.md), served on `/metrics` at
 * METRICS_HOST:WORKER_METRICS_PORT: per-VM gauges and counters of this host's machines (from a
 * {@link VmStatsSource}: libvirt's bulk domain stats by default), the agent watcher's counters, activity
 * outcomes and durations (an {@link ActivityObserver} the worker's interceptors report to), and the Temporal
 * SDK's runtime metrics, fetched from the SDK's own loopback exporter and appended without duplicate families.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { type DataSource } from 'typeorm';
import { type ActivityObserver } from '../activities/interceptors';
import { Department } from '../entities/department';
import { Machine } from '../entities/machine';
import { type Connection, type DomainStatsRecord } from '../libvirt/connection';
import { type DomainCounters, parseDomainStats, STATS_GROUPS } from '../metrics/domain-stats';
import {
  countedDurations,
  createRegistry,
  mergeExpositions,
  type MetricsServer,
  serveMetrics,
} from '../prometheus/exposition';
import { type WatcherCounters } from './agent-watcher';

// ---- per-VM samples --------------------------------------------------------------------------------

/**
 * One VM's numbers at one moment: libvirt's cumulative counters ({@link DomainCounters}, parsed by
 * src/metrics/domain-stats.ts, the one parser of bulk stats) with the machine's row as identity. null means
 * not reported (no balloon driver in the guest, a domain busy with a job).
 */
export interface VmSample extends Omit<DomainCounters, 'machineId' | 'name'> {
  machineId: string;
  /** The machine's department id (the `department` label). */
  departmentId: string;
  /** The machine's and its department's names (only on `vmflow_vm_info`: names change, ids do not). */
  name: string;
  departmentName: string;
}

/**
 * Where the per-VM numbers come from: this host's running machines only. {@link libvirtVmStats} reads
 * libvirt at each scrape; a collector that already samples libvirt (src/metrics) can serve its last samples
 * instead, so libvirt is read once for both.
 */
export interface VmStatsSource {
  sample(): Promise<VmSample[]>;
}

/** The counters of one bulk-stats record, without the domain's own identity (the row gives it). */
export function countersOf(record: DomainStatsRecord): Omit<DomainCounters, 'machineId' | 'name'> {
  const { machineId: _id, name: _name, ...counters } = parseDomainStats(record);
  return counters;
}

/**
 * libvirt's bulk stats of the running domains (one `getAllDomainStats` call, `nowait`: a domain busy with a
 * job is skipped this time rather than holding the scrape), kept to the machines this host's row owns, as
 * the agent watcher's `owns` filter does: a shared libvirtd's other domains are not ours to report.
 */
export function libvirtVmStats(
  libvirt: { get(): Promise<Pick<Connection, 'getAllDomainStats'>> },
  dataSource: DataSource,
  hostId: string,
): VmStatsSource {
  return {
    async sample() {
      const conn = await libvirt.get();
      const records = await conn.getAllDomainStats({
        active: true,
        nowait: true,
        groups: [...STATS_GROUPS],
      });
      const byName = new Map(records.filter((r) => r.name.startsWith('vmflow-')).map((r) => [r.name, r]));
      if (!byName.size) return [];
      const rows = await dataSource
        .getRepository(Machine)
        .createQueryBuilder('m')
        .innerJoin(Department, 'd', 'd.id = m.departmentId')
        .select(['m.id AS id', 'm.name AS name', 'm.internalName AS internalName'])
        .addSelect(['d.id AS departmentId', 'd.name AS departmentName'])
        .where('m.hostId = :hostId', { hostId })
        .andWhere('m.internalName IN (:...names)', { names: [...byName.keys()] })
        .getRawMany<{
          id: string;
          name: string;
          internalName: string;
          departmentId: string;
          departmentName: string;
        }>();
      return rows.map((r) => ({
        machineId: r.id,
        departmentId: r.departmentId,
        name: r.name,
        departmentName: r.departmentName,
        ...countersOf(byName.get(r.internalName)!),
      }));
    },
  };
}

// ---- the registry ----------------------------------------------------------------------------------

/** Options of {@link createWorkerMetrics}. */
export interface WorkerMetricsOptions {
  hostName: string;
  /** Per-VM numbers; none: no per-VM families. */
  vms?: VmStatsSource;
  /** The agent watcher (its `counters()`); none (AGENT_WATCHER=off): no agent families. */
  agents?: { counters(): WatcherCounters } | null;
  /** The Temporal SDK's own exporter (`http://127.0.0.1:<TEMPORAL_METRICS_PORT>/metrics`); none: not included. */
  sdkUrl?: string;
  /** How long a scrape waits for the SDK's exposition (default 2 s). */
  sdkTimeoutMs?: number;
  /** Process and Node.js runtime metrics (prom-client's defaults). Default true. */
  processMetrics?: boolean;
  /** Told when the per-VM source fails or SDK families are dropped (the scrape still answers). */
  onError?(err: unknown, what: string): void;
}

/** The worker's metrics: the registry, the activity observer to give the worker, and the rendering. */
export interface WorkerMetrics {
  registry: Registry;
  activityObserver: ActivityObserver;
  /** The whole exposition: ours, then the SDK's families that clash with none of ours. */
  render(): Promise<string>;
  /** Serves {@link render} on `GET /metrics`. */
  serve(host: string, port: number): Promise<MetricsServer>;
}

type VmNumber = Exclude<keyof VmSample, 'machineId' | 'departmentId' | 'name' | 'departmentName'>;

/** Per-VM gauges read as they are: family suffix, help, field. */
const VM_GAUGES: Array<[string, string, VmNumber]> = [
  ['vcpus', 'vCPUs online.', 'vcpus'],
  ['memory_assigned_bytes', 'Memory the balloon gives the guest now (balloon.current).', 'memAssignedBytes'],
  ['memory_max_bytes', 'The most memory the balloon may give the guest (balloon.maximum).', 'memMaxBytes'],
  [
    'memory_guest_usable_bytes',
    'Memory usable by the guest, as its balloon driver reports it.',
    'memGuestUsableBytes',
  ],
  [
    'memory_guest_unused_bytes',
    'Memory unused by the guest, as its balloon driver reports it.',
    'memGuestUnusedBytes',
  ],
  ['host_rss_bytes', "Resident memory of the VM's QEMU process on the host.", 'hostRssBytes'],
];

/** Per-VM cumulative counters (libvirt's, since the domain started): family suffix, help, field. */
const VM_COUNTERS: Array<[string, string, VmNumber]> = [
  ['block_read_bytes_total', "Bytes read from all the VM's disks.", 'blockReadBytes'],
  ['block_written_bytes_total', "Bytes written to all the VM's disks.", 'blockWriteBytes'],
  ['block_read_operations_total', "Read requests to all the VM's disks.", 'blockReadOps'],
  ['block_write_operations_total', "Write requests to all the VM's disks.", 'blockWriteOps'],
  ['network_receive_bytes_total', "Bytes received by all the VM's NICs.", 'netRxBytes'],
  ['network_transmit_bytes_total', "Bytes sent by all the VM's NICs.", 'netTxBytes'],
  ['network_receive_packets_total', "Packets received by all the VM's NICs.", 'netRxPackets'],
  ['network_transmit_packets_total', "Packets sent by all the VM's NICs.", 'netTxPackets'],
];

/** Activity duration buckets (s): from a DB read to a long storage copy. */
const ACTIVITY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];

/** The agent watcher's counters as Prometheus counters: family suffix, key, help. */
const AGENT_COUNTERS: Array<[string, keyof WatcherCounters, string]> = [
  ['messages_total', 'messages', 'Valid messages received from guest agents (hello, metrics, response).'],
  [
    'malformed_lines_total',
    'malformed',
    'Lines from guest agents that were not valid messages (over-long ones included), skipped.',
  ],
  [
    'unknown_messages_total',
    'unknown',
    'Valid lines of an unknown type or a newer protocol version, ignored.',
  ],
  ['rate_limited_lines_total', 'rateLimited', 'Lines dropped unread by the per-VM rate limit.'],
  ['flood_disconnects_total', 'floodDisconnects', 'Disconnections of a VM for persistent flooding.'],
  ['reconnects_total', 'reconnects', 'Connections to an agent channel made after the first one.'],
  [
    'lying_hellos_total',
    'idMismatches',
    "Hellos that claimed another machine's id (the agent is then marked lying).",
  ],
  ['ignored_metrics_total', 'ignoredMetrics', 'Metrics ignored: sent before a hello, or by a lying agent.'],
  ['unmatched_responses_total', 'unmatchedResponses', 'Responses to no request in flight.'],
];

/** Builds the worker's registry (nothing is served until {@link WorkerMetrics.serve}). */
export function createWorkerMetrics(opts: WorkerMetricsOptions): WorkerMetrics {
  const registry = createRegistry({ processMetrics: opts.processMetrics, labels: { host: opts.hostName } });
  const onError = opts.onError ?? (() => undefined);

  // Activities: one observation per execution, by type, queue and outcome.
  const observe = countedDurations(registry, {
    counter: {
      name: 'vmflow_activity_executions_total',
      help: 'Activity executions that ended on this worker, by activity type, task queue and outcome (completed, failed, cancelled).',
    },
    histogram: {
      name: 'vmflow_activity_duration_seconds',
      help: 'Duration of activity executions on this worker (one attempt), by activity type, task queue and outcome.',
      buckets: ACTIVITY_BUCKETS,
    },
    labelNames: ['activity_type', 'task_queue', 'outcome'],
  });
  const activityObserver: ActivityObserver = {
    observe: ({ activityType, taskQueue, outcome, seconds }) =>
      observe({ activity_type: activityType, task_queue: taskQueue, outcome }, seconds),
  };

  const refreshVms = opts.vms ? registerVmFamilies(registry, opts.vms, onError) : async () => undefined;
  if (opts.agents) registerAgentFamilies(registry, opts.agents);

  const sdkUp = new Gauge({
    name: 'vmflow_temporal_sdk_metrics_up',
    help: "1 when the Temporal SDK's runtime metrics were fetched for this scrape (they follow this family), 0 when not.",
    registers: opts.sdkUrl ? [registry] : [],
  });

  const fetchSdk = async (): Promise<string | null> => {
    if (!opts.sdkUrl) return null;
    try {
      const res = await fetch(opts.sdkUrl, { signal: AbortSignal.timeout(opts.sdkTimeoutMs ?? 2_000) });
      if (!res.ok) throw new Error(`HTTP ${res.status}`);
      return await res.text();
    } catch (err) {
      onError(err, 'temporal sdk metrics');
      return null;
    }
  };

  const render = async () => {
    const [sdk] = await Promise.all([fetchSdk(), refreshVms()]);
    sdkUp.set(sdk === null ? 0 : 1);
    const ours = await registry.metrics();
    if (sdk === null) return ours;
    const merged = mergeExpositions(ours, sdk);
    if (merged.dropped.length)
      onError(
        new Error(`dropped: ${merged.dropped.join(', ')}`),
        'temporal sdk families that clash with ours',
      );
    return merged.text;
  };

  return {
    registry,
    activityObserver,
    render,
    serve: (host, port) => serveMetrics(host, port, render, (err) => onError(err, 'render')),
  };
}

/**
 * The per-VM families. Returns the refresh to run before each render: it reads the source once, and every
 * family shows that read (a VM that stopped leaves no series behind).
 */
function registerVmFamilies(
  registry: Registry,
  source: VmStatsSource,
  onError: (err: unknown, what: string) => void,
): () => Promise<void> {
  let samples: VmSample[] = [];
  /** CPU use since the previous read, per machine; and that read's CPU time (only its machines kept). */
  const ratios = new Map<string, number>();
  let previous = new Map<string, { cpuNs: number; at: bigint }>();
  const labelNames = ['machine', 'department'] as const;
  const byVm = (s: VmSample) => ({ machine: s.machineId, department: s.departmentId });

  const gauge = (name: string, help: string, value: (s: VmSample) => number | null | undefined) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset();
        for (const s of samples) {
          const v = value(s);
          if (v !== null && v !== undefined) this.set(byVm(s), v);
        }
      },
    });
  const counter = (name: string, help: string, value: (s: VmSample) => number | null) =>
    new Counter({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        this.reset(); // then the cumulative value itself: libvirt counts, this only exposes it
        for (const s of samples) {
          const v = value(s);
          if (v !== null) this.inc(byVm(s), v);
        }
      },
    });

  new Gauge({
    name: 'vmflow_vm_info',
    help: "1 for each running VM of this host, with its machine's and department's names (join on machine).",
    labelNames: ['machine', 'department', 'name', 'department_name'],
    registers: [registry],
    collect() {
      this.reset();
      for (const s of samples) this.set({ ...byVm(s), name: s.name, department_name: s.departmentName }, 1);
    },
  });
  const up = new Gauge({
    name: 'vmflow_vm_stats_up',
    help: "1 when this scrape read the VMs' statistics, 0 when the source failed (the per-VM families are then empty).",
    registers: [registry],
  });
  gauge(
    'vmflow_vm_cpu_usage_ratio',
    "CPU use since the previous scrape as a share of the VM's vCPUs (0..1); absent at a VM's first scrape.",
    (s) => ratios.get(s.machineId),
  );
  counter(
    'vmflow_vm_cpu_seconds_total',
    'CPU time used by the VM, all vCPUs (cpu.time), since its domain started.',
    (s) => (s.cpuTimeNs === null ? null : s.cpuTimeNs / 1e9),
  );
  for (const [name, help, field] of VM_GAUGES) gauge(`vmflow_vm_${name}`, help, (s) => s[field]);
  for (const [name, help, field] of VM_COUNTERS) counter(`vmflow_vm_${name}`, help, (s) => s[field]);

  return async () => {
    let read: VmSample[] | null;
    try {
      read = await source.sample();
    } catch (err) {
      onError(err, 'vm stats');
      read = null;
    }
    up.set(read ? 1 : 0);
    samples = read ?? [];
    const now = process.hrtime.bigint();
    const next = new Map<string, { cpuNs: number; at: bigint }>();
    ratios.clear();
    for (const s of samples) {
      if (s.cpuTimeNs === null) continue;
      next.set(s.machineId, { cpuNs: s.cpuTimeNs, at: now });
      const before = previous.get(s.machineId);
      const wallNs = before ? Number(now - before.at) : 0;
      if (!before || wallNs <= 0 || !s.vcpus || s.cpuTimeNs < before.cpuNs) continue; // first, or restarted
      ratios.set(s.machineId, Math.min(1, Math.max(0, (s.cpuTimeNs - before.cpuNs) / wallNs / s.vcpus)));
    }
    previous = next;
  };
}

/** The agent watcher's state gauge and counters, read from `counters()` at each scrape. */
function registerAgentFamilies(registry: Registry, agents: { counters(): WatcherCounters }): void {
  new Gauge({
    name: 'vmflow_agent_guests',
    help: 'VMs whose agent channel the watcher follows, by agent state (connected, absent, lying).',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const c = agents.counters();
      for (const state of ['connected', 'absent', 'lying'] as const) this.set({ state }, c[state]);
    },
  });
  for (const [suffix, key, help] of AGENT_COUNTERS)
    new Counter({
      name: `vmflow_agent_${suffix}`,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(agents.counters()[key]); // the watcher's totals are monotonic (retired VMs' included)
      },
    });
}
