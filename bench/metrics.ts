/**
 * Metrics figures (`npm run bench -- metrics`; docs/metrics.md), each against a baseline of the same run:
 * 1. The collector for 100 simulated guests (libvirt's bulk-stats records shaped as the real ones, an agent
 *    sample merged for each): CPU time and DB statements per interval, so its share of one core and its DB
 *    writes per second at the default 10 s interval; against the same rows written one INSERT per VM.
 * 2. The minute rollup of those 100 guests (6 samples each).
 * 3. GET /api/machines/:id/metrics for 24 hours of 1-minute rollups (1440 points; 100 VMs × 1440 rows in
 *    the table) under autocannon: req/s, p50, p99, against GET /healthz.
 * 4. `vms:metrics` delivery to 100 subscribed sockets with 100 and with 500 clients connected (p50/p99).
 * Uses its own database (BENCH_DATABASE_URL, default vmflow_bench_metrics); no Temporal, no libvirtd.
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import pino from 'pino';
import { type Socket } from 'socket.io-client';
import { createApp } from '../src/api/app';
import { signToken } from '../src/api/auth';
import { createDataSource } from '../src/entities/data-source';
import { Department } from '../src/entities/department';
import { Host } from '../src/entities/host';
import { Machine } from '../src/entities/machine';
import { MachineTemplate } from '../src/entities/machine-template';
import { migrateDatabase } from '../src/entities/migrate';
import { User } from '../src/entities/user';
import { type DomainStatsRecord } from '../src/libvirt/connection';
import { LibvirtProvider } from '../src/libvirt/provider';
import { METRIC_FIELDS, type MetricPoint } from '../src/metrics/point';
import { insertRaw } from '../src/metrics/store';
import { createMetricsCollector } from '../src/worker/metrics-collector';
import { libvirtNames } from '../src/workflows/shared';
import { connectClients, ms, pct, runAutocannon } from './api';

const GUESTS = 100;
const TICKS = 60;
const INTERVAL_MS = 10_000;
const JWT = 'vmflow-bench-jwt-secret-0123456789';

/** A bulk-stats record shaped as libvirt 9 returns it (test/unit/metrics/domain-stats.test.ts), at tick `t`. */
function record(id: string, t: number): DomainStatsRecord {
  return {
    name: `vmflow-${id}`,
    uuid: id,
    stats: {
      'state.state': 1,
      'state.reason': 1,
      'cpu.time': 400_000_000 + t * 2_500_000_000,
      'cpu.user': 220_000_000,
      'cpu.system': 180_000_000,
      'balloon.current': 524_288,
      'balloon.maximum': 524_288,
      'balloon.available': 492_000,
      'balloon.usable': 380_000,
      'balloon.rss': 300_000,
      'vcpu.current': 1,
      'vcpu.maximum': 2,
      'vcpu.0.state': 1,
      'vcpu.0.time': 140_000_000 + t * 2_400_000_000,
      'net.count': 1,
      'net.0.name': 'vnet47',
      'net.0.rx.bytes': 90 + t * 50_000,
      'net.0.rx.pkts': 1 + t * 40,
      'net.0.tx.bytes': t * 20_000,
      'net.0.tx.pkts': t * 30,
      'block.count': 1,
      'block.0.name': 'vda',
      'block.0.path': `/var/lib/vmflow/images/vmflow-${id}.qcow2`,
      'block.0.backingIndex': 1,
      'block.0.rd.reqs': 1 + t * 10,
      'block.0.rd.bytes': 512 + t * 409_600,
      'block.0.wr.reqs': t * 5,
      'block.0.wr.bytes': t * 204_800,
      'block.0.capacity': 1_073_741_824,
    },
  };
}

const agentSample = () => ({
  seq: 1,
  uptimeS: 100,
  cpu: { totalPct: 20, perCorePct: [20] },
  load: [0.2, 0.1, 0.05] as [number, number, number],
  memory: { totalBytes: 5e8, availableBytes: 3e8, usedBytes: 2e8, swapTotalBytes: 0, swapUsedBytes: 0 },
  filesystems: [{ mount: '/', fsType: 'ext4', totalBytes: 1e10, usedBytes: 2e9 }],
  nics: [{ name: 'eth0', rxBytes: 1e6, txBytes: 1e5, rxPackets: 1e3, txPackets: 1e2 }],
  disks: [{ name: 'vda', readBytes: 1e7, writeBytes: 1e6, reads: 1e3, writes: 1e2 }],
  users: [],
  topCpu: [],
  topMemory: [],
});

const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000;

/** Runs the metrics benchmarks and prints their figures. */
export async function benchMetrics(): Promise<void> {
  const url = process.env.BENCH_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/vmflow_bench_metrics';
  await migrateDatabase(url);
  const ds = createDataSource(url, { poolSize: 20 });
  await ds.initialize();
  // Counts the statements that write the metrics tables.
  let writes = 0;
  const query = ds.query.bind(ds);
  ds.query = ((sql: string, params?: unknown[]) => {
    if (/^(INSERT|DELETE)/.test(sql)) writes++;
    return query(sql, params);
  }) as typeof ds.query;
  const api = createApp({
    dataSource: ds,
    temporal: new Client({
      connection: Connection.lazy({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' }),
    }),
    libvirt: new LibvirtProvider(process.env.LIBVIRT_URI ?? 'qemu:///system'),
    config: {
      jwtSecret: JWT,
      secretsKey: 'vmflow-bench-secrets-key-0123456789',
      TEMPORAL_UI_URL: 'http://127.0.0.1:8233',
      TEMPORAL_NAMESPACE: 'default',
    },
    logger: pino({ level: 'warn' }),
    // Part 4 pokes the feed once per round: no throttle window between rounds, no polls.
    metrics: { throttleMs: 1, pollMs: 3_600_000, fallbackPollMs: 3_600_000 },
  });
  const sockets: Socket[] = [];
  try {
    await ds.query('DELETE FROM `machine_metric_raw`');
    await ds.query('DELETE FROM `machine_metric_minute`');
    const suffix = randomUUID().slice(0, 8);
    const host = await ds.getRepository(Host).save({
      id: randomUUID(),
      name: `bench-${suffix}`,
      libvirtUri: 'qemu:///system',
      taskQueue: `host-bench-${suffix}`,
      cpus: 64,
      memoryMiB: 262144,
      storagePool: 'vmflow',
      defaultNetwork: 'vmflow-default',
    });
    const ids = Array.from({ length: GUESTS }, () => randomUUID());

    // ---- 1. collection: 100 guests, 60 intervals ---------------------------------------------------------
    let tick = 0;
    const collector = createMetricsCollector({
      libvirt: { get: async () => ({ getAllDomainStats: async () => ids.map((id) => record(id, tick)) }) },
      dataSource: ds,
      hostId: host.id,
      owns: async () => true,
      agentSample: () => ({ metrics: agentSample(), at: new Date() }),
      logger: pino({ level: 'warn' }),
      intervalMs: INTERVAL_MS,
      rawRetentionS: 3600,
      rollupRetentionS: 7 * 86_400,
      purgeIntervalMs: 60_000,
    });
    const t0 = Date.now() - TICKS * INTERVAL_MS;
    writes = 0;
    let cpu = process.cpuUsage();
    let wall = performance.now();
    const points: MetricPoint[] = [];
    for (tick = 0; tick < TICKS; tick++) points.push(...(await collector.collect(t0 + tick * INTERVAL_MS)));
    const batchCpu = cpuMs(process.cpuUsage(cpu)) / TICKS;
    const batchWall = (performance.now() - wall) / TICKS;
    const batchWrites = writes / TICKS;

    // Baseline: the same rows, one INSERT per VM (what a per-VM writer would do).
    await ds.query('DELETE FROM `machine_metric_raw`');
    const cols = ['machineId', 'at', 'agent', ...METRIC_FIELDS];
    const sql = `INSERT INTO \`machine_metric_raw\` (${cols.map((c) => `\`${c}\``).join(', ')}) VALUES (${cols.map(() => '?').join(', ')})`;
    writes = 0;
    cpu = process.cpuUsage();
    wall = performance.now();
    for (const p of points)
      await ds.query(sql, [p.machineId, p.at, p.agent ? 1 : 0, ...METRIC_FIELDS.map((f) => p[f])]);
    const singleCpu = cpuMs(process.cpuUsage(cpu)) / TICKS;
    const singleWall = (performance.now() - wall) / TICKS;
    const singleWrites = writes / TICKS;
    console.log(`\nMetrics collection: ${GUESTS} simulated guests (libvirt + agent), ${TICKS} intervals`);
    console.log(
      `  batched (one INSERT per interval)  CPU ${ms(batchCpu)} / interval, wall ${ms(batchWall)}, ${batchWrites.toFixed(1)} statements / interval`,
    );
    console.log(
      `  baseline (one INSERT per VM)       CPU ${ms(singleCpu)} / interval, wall ${ms(singleWall)}, ${singleWrites.toFixed(1)} statements / interval`,
    );
    console.log(
      `  → at a ${INTERVAL_MS / 1000} s interval: ${((100 * batchCpu) / INTERVAL_MS).toFixed(3)} % of one core, ${(batchWrites / (INTERVAL_MS / 1000)).toFixed(2)} DB writes/s (${(GUESTS / (INTERVAL_MS / 1000)).toFixed(0)} rows/s); batched/per-VM: CPU ${(batchCpu / singleCpu).toFixed(2)}×, wall ${(batchWall / singleWall).toFixed(2)}×`,
    );

    // ---- 2. the minute rollup of 100 guests ---------------------------------------------------------------
    await ds.query('DELETE FROM `machine_metric_raw`');
    await ds.query('DELETE FROM `machine_metric_minute`');
    // The rollup joins `machine` for this host's VMs: the bench's VMs get rows.
    const tpl = await ds.getRepository(MachineTemplate).save({
      id: randomUUID(),
      name: `bench ${suffix}`,
      description: '',
      cpu: 1,
      memoryMiB: 64,
      storageGiB: 1,
      os: 'none',
    });
    const owner = await ds.getRepository(User).save({
      id: randomUUID(),
      email: `bench-metrics-${suffix}@vmflow.local`,
      passwordHash: 'x',
      role: 'ADMIN',
      firstName: 'Bench',
      lastName: 'metrics',
    });
    const dept = await ds.getRepository(Department).save({
      id: randomUUID(),
      name: `bench metrics ${suffix}`,
      filterName: `vmflow-bench-${suffix}`,
      networkName: null,
    });
    await ds
      .createQueryBuilder()
      .insert()
      .into(Machine)
      .values(
        ids.map((id) => ({
          id,
          name: `vm ${id.slice(0, 8)}`,
          internalName: libvirtNames.domain(id),
          status: 'running',
          ownerId: owner.id,
          departmentId: dept.id,
          templateId: tpl.id,
          hostId: host.id,
          cpu: 1,
          memoryMiB: 64,
          storageGiB: 1,
          os: 'none',
          filterName: libvirtNames.vmFilter(id),
        })) as never,
      )
      .execute();
    const minuteStart = Math.floor(Date.now() / 60_000) * 60_000 - 120_000;
    for (tick = 0; tick < 6; tick++) await collector.collect(minuteStart + tick * INTERVAL_MS);
    const started = performance.now();
    const rolled = await collector.rollup(minuteStart + 60_000);
    const rollupMs = performance.now() - started;
    console.log(
      `\nMinute rollup of ${GUESTS} guests × 6 samples: ${rolled} rows in ${ms(rollupMs)} (read + fold + one upsert)`,
    );

    // ---- 3. GET /metrics for 24 hours of 1-minute rollups ------------------------------------------------
    await ds.query('DELETE FROM `machine_metric_minute`');
    const now = Math.floor(Date.now() / 60_000) * 60_000;
    const minuteCols = ['machineId', 'bucket', 'samples', 'agentSamples', 'cpuPctMax', ...METRIC_FIELDS];
    for (const id of ids) {
      const rows = Array.from({ length: 1440 }, (_, m) => [
        id,
        new Date(now - (1440 - m) * 60_000),
        6,
        6,
        50,
        ...METRIC_FIELDS.map((f) =>
          /Pct|load1|users/.test(f) ? 37.123456 + (m % 50) / 7 : 5.4e8 + m * 1000.37,
        ),
      ]);
      await ds.query(
        `INSERT INTO \`machine_metric_minute\` (${minuteCols.map((c) => `\`${c}\``).join(', ')}) VALUES ${rows.map(() => `(${minuteCols.map(() => '?').join(', ')})`).join(', ')}`,
        rows.flat(),
      );
    }
    const { url: base } = await api.listen(0);
    const headers = { authorization: `Bearer ${signToken(JWT, owner)}` };
    const from = new Date(now - 86_400_000).toISOString();
    const path = `/api/machines/${ids[0]}/metrics?from=${encodeURIComponent(from)}&to=${encodeURIComponent(new Date(now).toISOString())}&step=60`;
    const check = (await (await fetch(`${base}${path}`, { headers })).json()) as {
      at: unknown[];
      source: string;
    };
    const health = await runAutocannon(`${base}/healthz`, {});
    const res = await runAutocannon(`${base}${path}`, headers);
    const sqlTimes: number[] = [];
    for (let i = 0; i < 200; i++) {
      const s = performance.now();
      await ds.query(
        'SELECT FLOOR(TIMESTAMPDIFF(SECOND, ?, `bucket`) / 60) AS slot, AVG(`cpuPct`) FROM `machine_metric_minute` WHERE `machineId` = ? AND `bucket` >= ? AND `bucket` < ? GROUP BY slot',
        [new Date(from), ids[0], new Date(from), new Date(now)],
      );
      sqlTimes.push(performance.now() - s);
    }
    sqlTimes.sort((a, b) => a - b);
    console.log(
      `\nGET /api/machines/:id/metrics, 24 h of 1-minute rollups (${check.at.length} points, source ${check.source}; ${GUESTS}×1440 rows in the table)`,
    );
    console.log(
      `  baseline /healthz ${health.requests.average.toFixed(0).padStart(6)} req/s  p50 ${ms(health.latency.p50)}  p99 ${ms(health.latency.p99)}`,
    );
    console.log(
      `  metrics           ${res.requests.average.toFixed(0).padStart(6)} req/s  p50 ${ms(res.latency.p50)}  p99 ${ms(res.latency.p99)}  (non-2xx ${res.non2xx})`,
    );
    console.log(
      `  → metrics/healthz throughput ${(res.requests.average / health.requests.average).toFixed(2)}; the grouped query alone p50 ${ms(pct(sqlTimes, 50))} p99 ${ms(pct(sqlTimes, 99))}`,
    );

    // ---- 4. vms:metrics with 100 vs 500 connected clients ------------------------------------------------
    // 100 sockets each follow one VM; in the second run 400 more are connected and follow nothing. A round
    // writes one batch for the 100 VMs and wakes the feed; latency from the wake to each subscriber's receipt.
    const token = signToken(JWT, owner);
    const round = async (clients: number) => {
      const got = new Map<string, number>();
      await connectClients(
        base,
        token,
        clients,
        sockets,
        (s) =>
          s.on('vms:metrics', (p: { machineId: string; at: string }) =>
            got.set(`${p.machineId}|${p.at}`, performance.now()),
          ),
        async (s, n) => {
          const vm = n < GUESTS ? ids[n] : undefined;
          if (vm) await new Promise((resolve) => s.emit('vms:metrics:subscribe', { machineId: vm }, resolve));
        },
      );
      const lat: number[] = [];
      const reads: number[] = [];
      for (let r = 0; r < 20; r++) {
        const at = new Date(Date.now() - 1000 + r);
        const batch = ids.map((id) => ({ ...points[0]!, machineId: id, at }));
        await insertRaw(ds, batch);
        const t = performance.now();
        api.metricsFeed.poke();
        const keys = ids.map((id) => `${id}|${at.toISOString()}`);
        const until = Date.now() + 10_000;
        while (keys.some((k) => !got.has(k)) && Date.now() < until)
          await new Promise((res) => setImmediate(res));
        reads.push(performance.now() - t);
        for (const k of keys) if (got.has(k)) lat.push(got.get(k)! - t);
        if (lat.length < keys.length * (r + 1)) console.log('  WARNING: a sample did not arrive');
      }
      for (const s of sockets.splice(0)) s.close();
      lat.sort((a, b) => a - b);
      return { p50: pct(lat, 50), p99: pct(lat, 99), n: lat.length };
    };
    const few = await round(GUESTS);
    const many = await round(500);
    console.log(
      `\nvms:metrics: ${GUESTS} subscribed sockets (one VM each), a batch of ${GUESTS} samples per round, 20 rounds`,
    );
    console.log(
      `  ${GUESTS} clients connected  p50 ${ms(few.p50)}  p99 ${ms(few.p99)}  (${few.n} deliveries)`,
    );
    console.log(`  500 clients connected  p50 ${ms(many.p50)}  p99 ${ms(many.p99)}  (${many.n} deliveries)`);
    console.log(
      `  → 500/100 clients: p50 ${(many.p50 / few.p50).toFixed(2)}×, p99 ${(many.p99 / few.p99).toFixed(2)}× (the server does no work per sample for the 400 idle ones; the clients share this process)`,
    );
  } finally {
    for (const s of sockets) s.close();
    await api.close();
    await ds.destroy();
  }
}
