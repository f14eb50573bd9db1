/**
 * API figures for the closing note (`npm run bench`), all on 127.0.0.1 with bounded loops:
 * 1. GET /api/machines (a page of 50 out of 10,000 rows) under autocannon, as an admin, a manager of two
 *    departments and a plain user, first page and a cursor page (the 20th): req/s, p50, p99, against two
 *    baselines measured in the same run: GET /healthz (the HTTP stack alone) and the route's own query
 *    (listMachines run directly on the data source: the database alone), printed as ratios; the last line
 *    sums up list/healthz for the six. `BENCH_API_EVENTS=0` skips part 2.
 * 2. Event latency with 500 socket.io clients connected: from the event row's commit (written the way an
 *    activity writes it) to its receipt by each client, p50/p95 over every (event, client) pair.
 * Uses its own database (BENCH_DATABASE_URL, default vmflow_bench) and needs no Temporal server (the
 * client is lazy) and no libvirtd (only /readyz would use it).
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { execFile } from 'node:child_process';
import path from 'node:path';
import type autocannon from 'autocannon';
import pino from 'pino';
import { type DataSource } from 'typeorm';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { publishEvent } from '../src/events/publish';
import { createApp } from '../src/api/app';
import { signToken } from '../src/api/auth';
import { listMachines } from '../src/api/machine-list';
import { loadPrincipal } from '../src/api/permissions';
import { createDataSource } from '../src/entities/data-source';
import { eventWakeSubscriber, redisWaker, redisWakeSource, type WakeSource } from '../src/events/wake';
import { Department, DepartmentMember } from '../src/entities/department';
import { Host } from '../src/entities/host';
import { Machine } from '../src/entities/machine';
import { MachineTemplate } from '../src/entities/machine-template';
import { migrateDatabase } from '../src/entities/migrate';
import { User } from '../src/entities/user';
import { LibvirtProvider } from '../src/libvirt/provider';
import { libvirtNames } from '../src/workflows/shared';

const ROWS = 10_000;
const CLIENTS = 500;
const EVENTS = 40;
const LOAD_SECONDS = Number(process.env.BENCH_API_SECONDS ?? 8);
const JWT = 'vmflow-bench-jwt-secret-0123456789';

export function pct(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}
export const ms = (v: number) => `${v.toFixed(v < 10 ? 2 : 1)} ms`;

/**
 * Connects `count` socket.io clients to `base` as `token` (50 at a time), adding each to `into`; `each` sets a
 * client up before it connects, `synced` runs once the relay has served it (`relay:synced`) and the client
 * counts as connected when what it returns settles.
 */
export async function connectClients(
  base: string,
  token: string,
  count: number,
  into: Socket[],
  each: (s: Socket, index: number) => void,
  synced?: (s: Socket, index: number) => Promise<unknown>,
): Promise<void> {
  for (let i = 0; i < count; i += 50)
    await Promise.all(
      Array.from(
        { length: Math.min(50, count - i) },
        (_, k) =>
          new Promise<void>((resolve, reject) => {
            const s = connectSocket(base, {
              auth: { token },
              transports: ['websocket'],
              reconnection: false,
              forceNew: true,
            });
            into.push(s);
            each(s, i + k);
            s.once('relay:synced', () => {
              Promise.resolve(synced?.(s, i + k)).then(() => resolve(), reject);
            });
            s.once('connect_error', reject);
          }),
      ),
    );
}

/** Runs autocannon (10 connections, LOAD_SECONDS) in a child process and returns its JSON result. */
export function runAutocannon(url: string, headers: Record<string, string>): Promise<autocannon.Result> {
  const cli = path.resolve(__dirname, '../node_modules/autocannon/autocannon.js');
  const args = [
    cli,
    '-j',
    '-c',
    '10',
    '-d',
    String(LOAD_SECONDS),
    ...Object.entries(headers).flatMap(([k, v]) => ['-H', `${k}=${v}`]),
    url,
  ];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      args,
      { maxBuffer: 16 * 1024 * 1024, timeout: (LOAD_SECONDS + 30) * 1000 },
      (err, stdout) => {
        if (err) return reject(err);
        resolve(JSON.parse(stdout) as autocannon.Result);
      },
    );
  });
}

/** Runs the API benchmarks and prints their figures. */
export async function benchApi(): Promise<void> {
  const url = process.env.BENCH_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/vmflow_bench';
  await migrateDatabase(url);
  const ds = createDataSource(url, { poolSize: 20 });
  await ds.initialize();
  const temporal = new Client({
    connection: Connection.lazy({ address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233' }),
  });
  const api = createApp({
    dataSource: ds,
    temporal,
    libvirt: new LibvirtProvider(process.env.LIBVIRT_URI ?? 'qemu:///system'),
    config: {
      jwtSecret: JWT,
      secretsKey: 'vmflow-bench-secrets-key-0123456789',
      TEMPORAL_UI_URL: 'http://127.0.0.1:8233',
      TEMPORAL_NAMESPACE: 'default',
    },
    logger: pino({ level: 'warn' }),
  });
  const sockets: Socket[] = [];
  try {
    // ---- seed: 10,000 machines in 4 departments, owned by 4 users ---------------------------------------
    // The manager manages departments 0 and 1 (5,000 machines) and owns 2,500 (1,250 elsewhere): its scope
    // is 6,250 rows from three sources. The plain user owns 2,500; the admin sees all 10,000.
    await ds.query('DELETE FROM machine');
    await ds.query('DELETE FROM event');
    const suffix = randomUUID().slice(0, 8);
    const mkUser = (name: string, role: 'ADMIN' | 'USER') =>
      ds.getRepository(User).save({
        id: randomUUID(),
        email: `bench-${name}-${suffix}@vmflow.local`,
        passwordHash: 'x',
        role,
        firstName: 'Bench',
        lastName: name,
      });
    const user = await mkUser('manager', 'USER');
    const plain = await mkUser('user', 'USER');
    const admin = await mkUser('admin', 'ADMIN');
    const others = [await mkUser('o1', 'USER'), await mkUser('o2', 'USER')];
    const owners = [plain.id, user.id, others[0]!.id, others[1]!.id];
    const depts: string[] = [];
    for (let d = 0; d < 4; d++) {
      const id = randomUUID();
      depts.push(id);
      await ds.getRepository(Department).save({
        id,
        name: `bench ${suffix} ${d}`,
        filterName: libvirtNames.departmentFilter(id),
        networkName: null,
      });
    }
    const deptId = depts[0]!;
    for (const d of depts.slice(0, 2))
      await ds.getRepository(DepartmentMember).save({ departmentId: d, userId: user.id, role: 'MANAGER' });
    for (const d of depts)
      await ds.getRepository(DepartmentMember).save({ departmentId: d, userId: plain.id, role: 'MEMBER' });
    const tpl = await ds.getRepository(MachineTemplate).save({
      id: randomUUID(),
      name: `bench ${suffix}`,
      description: '',
      cpu: 1,
      memoryMiB: 64,
      storageGiB: 1,
      os: 'none',
    });
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
    const t0 = Date.now();
    for (let i = 0; i < ROWS; i += 1000) {
      const chunk = Array.from({ length: Math.min(1000, ROWS - i) }, (_, j) => {
        const id = randomUUID();
        return {
          id,
          name: `vm ${i + j}`,
          internalName: libvirtNames.domain(id),
          libvirtUuid: null,
          status: (i + j) % 3 ? 'off' : 'running',
          ownerId: owners[Math.floor((i + j) / 4) % 4]!,
          departmentId: depts[(i + j) % 4]!,
          templateId: tpl.id,
          hostId: host.id,
          cpu: 1,
          memoryMiB: 64,
          storageGiB: 1,
          os: 'none',
          macAddress: null,
          networkName: null,
          diskPath: null,
          filterName: libvirtNames.vmFilter(id),
          sourceMachineId: null,
          linkedClone: false,
          pendingHardware: null,
          lastError: null,
          currentOperationId: null,
          createdAt: new Date(t0 - (ROWS - i - j) * 1000),
        };
      });
      await ds
        .createQueryBuilder()
        .insert()
        .into(Machine)
        .values(chunk as never)
        .execute();
    }
    const { url: base } = await api.listen(0);

    // ---- 1. throughput ---------------------------------------------------------------------------------
    // autocannon runs in its own process: sharing the server's event loop would halve what it measures.
    // Each scope (admin, manager of 2 departments, plain user) × (first page, a cursor page), against
    // GET /healthz and the route's own query (listMachines straight on the pool), all in this run.
    const health = await runAutocannon(`${base}/healthz`, {});
    console.log(
      `\nAPI: GET /api/machines?limit=50 over ${ROWS} rows (10 connections, ${LOAD_SECONDS} s each, 127.0.0.1)`,
    );
    console.log(
      `  baseline /healthz ${health.requests.average.toFixed(0).padStart(6)} req/s  p50 ${ms(health.latency.p50)}  p99 ${ms(health.latency.p99)}`,
    );
    const summary: string[] = [];
    let bad = 0;
    for (const [scopeName, who] of [
      ['admin', admin],
      ['manager', user],
      ['user', plain],
    ] as const) {
      const headers = { authorization: `Bearer ${signToken(JWT, who)}` };
      const principal = (await loadPrincipal(ds, who.id))!;
      const check = await fetch(`${base}/api/machines?limit=50`, { headers });
      const first = (await check.json()) as { items: unknown[]; nextCursor: string };
      if (check.status !== 200 || first.items.length !== 50 || !first.nextCursor)
        throw new Error(`GET /api/machines as ${scopeName} answered ${check.status}`);
      // A cursor page deep in the list (the 20th page).
      let cursor = first.nextCursor;
      for (let n = 0; n < 18; n++) {
        const r = (await (
          await fetch(`${base}/api/machines?limit=50&cursor=${encodeURIComponent(cursor)}`, { headers })
        ).json()) as { nextCursor: string };
        cursor = r.nextCursor;
      }
      for (const [pageName, query] of [
        ['first page', {}],
        ['cursor page', { cursor }],
      ] as const) {
        const qs = 'cursor' in query ? `&cursor=${encodeURIComponent(query.cursor)}` : '';
        // /healthz right before each list run: the machine's load drifts, a ratio needs both side by side.
        const near = await runAutocannon(`${base}/healthz`, {});
        const res = await runAutocannon(`${base}/api/machines?limit=50${qs}`, headers);
        bad += res.non2xx + res.errors;
        // The route's query alone, same concurrency and duration, straight on the pool.
        const sqlLatencies: number[] = [];
        const sqlEnd = performance.now() + LOAD_SECONDS * 1000;
        await Promise.all(
          Array.from({ length: 10 }, async () => {
            while (performance.now() < sqlEnd) {
              const s = performance.now();
              await listMachines(ds, principal, { limit: 50, ...query });
              sqlLatencies.push(performance.now() - s);
            }
          }),
        );
        sqlLatencies.sort((x, y) => x - y);
        const sqlRps = sqlLatencies.length / LOAD_SECONDS;
        const ratio = res.requests.average / near.requests.average;
        summary.push(`${scopeName} ${pageName.split(' ')[0]} ${ratio.toFixed(2)}`);
        console.log(
          `  ${`${scopeName}, ${pageName}`.padEnd(22)} ${res.requests.average.toFixed(0).padStart(6)} req/s  p50 ${ms(res.latency.p50)}  p99 ${ms(res.latency.p99)}  → list/healthz ${ratio.toFixed(2)} (healthz ${near.requests.average.toFixed(0)})  (query alone ${sqlRps.toFixed(0)} q/s, p99 ${ms(pct(sqlLatencies, 99))}: list/query ${(res.requests.average / sqlRps).toFixed(2)})`,
        );
      }
    }
    if (bad) console.log(`  WARNING: ${bad} non-2xx answers or errors during the load`);
    console.log(`  → list/healthz throughput, same run: ${summary.join(', ')} (goal ≥ 0.80, p99 ≤ 25 ms)`);

    if (process.env.BENCH_API_EVENTS === '0') return; // the list figures only
    // ---- 2. event latency with 500 clients: polling relay (baseline) vs Redis wake-ups ---------------
    const redisUrl = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
    const polled = await eventLatency({
      ds,
      temporal,
      user,
      deptId,
      label: 'polling relay (every 100 ms), no Redis',
    });
    const waker = redisWaker(redisUrl);
    const dsWake = createDataSource(url, { poolSize: 20, subscribers: [eventWakeSubscriber(waker)] });
    await dsWake.initialize();
    try {
      const woken = await eventLatency({
        ds: dsWake,
        temporal,
        user,
        deptId,
        wake: redisWakeSource(redisUrl),
        label: `Redis wake-ups (${redisUrl}), fallback poll 1 s`,
      });
      console.log(
        `  → wake-ups against polling, same run: p95 ${(woken.p95 / polled.p95).toFixed(2)}×, p99 ${(woken.p99 / polled.p99).toFixed(2)}×`,
      );
    } finally {
      await dsWake.destroy();
      await waker.close();
    }
  } finally {
    for (const s of sockets) s.close();
    await api.close();
    await temporal.connection.close().catch(() => undefined);
    await ds.destroy();
  }
}

/**
 * Event latency from the commit of an event row (written the way an activity writes it) to its receipt by
 * each of CLIENTS socket.io clients of an API of its own; p50/p95/p99 over every (event, client) pair.
 */
async function eventLatency(o: {
  ds: DataSource;
  temporal: Client;
  user: User;
  deptId: string;
  wake?: WakeSource;
  label: string;
}): Promise<{ p95: number; p99: number }> {
  const { ds, user, deptId } = o;
  const api = createApp({
    dataSource: ds,
    temporal: o.temporal,
    libvirt: new LibvirtProvider(process.env.LIBVIRT_URI ?? 'qemu:///system'),
    config: {
      jwtSecret: JWT,
      secretsKey: 'vmflow-bench-secrets-key-0123456789',
      TEMPORAL_UI_URL: 'http://127.0.0.1:8233',
      TEMPORAL_NAMESPACE: 'default',
    },
    logger: pino({ level: 'warn' }),
    relay: o.wake ? { wake: o.wake } : { pollMs: 100 },
  });
  const sockets: Socket[] = [];
  try {
    const { url: base } = await api.listen(0);
    const token = signToken(JWT, user);
    if (o.wake) {
      const until = Date.now() + 10_000;
      while (!api.relay.wakeUpsConnected && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      if (!api.relay.wakeUpsConnected) console.log('  WARNING: the relay never subscribed to Redis');
    }
    const received = new Map<number, number[]>();
    const written = new Map<number, number>();
    let connected = 0;
    await connectClients(base, token, CLIENTS, sockets, (s) => {
      s.on('vms:update', (e: { eventId: number }) => {
        const at = performance.now();
        let list2 = received.get(e.eventId);
        if (!list2) received.set(e.eventId, (list2 = []));
        list2.push(at);
      });
      s.once('relay:synced', () => connected++);
    });
    for (let n = 0; n < EVENTS; n++) {
      const id = randomUUID();
      // As an activity writes it: in a transaction, then committed. Time from the commit.
      let eventId = 0;
      await ds.transaction(async (m) => {
        await publishEvent(m, {
          resource: 'vms',
          action: 'update',
          resourceId: id,
          payload: { machine: { id } },
          actorId: user.id,
          ownerId: user.id,
          departmentId: deptId,
          dedupeKey: `bench:${id}`,
        });
        eventId = Number((await m.query('SELECT LAST_INSERT_ID() AS id'))[0].id);
      });
      written.set(eventId, performance.now());
      await new Promise((r) => setTimeout(r, 97 + Math.random() * 60)); // not in step with the poll
    }
    const deadline = Date.now() + 10_000;
    while (
      Date.now() < deadline &&
      [...written.keys()].some((id) => (received.get(id)?.length ?? 0) < connected)
    )
      await new Promise((r) => setTimeout(r, 50));
    const lat: number[] = [];
    let missing = 0;
    for (const [id, at] of written) {
      const got = received.get(id) ?? [];
      missing += connected - got.length;
      for (const r of got) lat.push(r - at);
    }
    lat.sort((a, b) => a - b);
    console.log(
      `\nEvents (${o.label}): row commit → socket.io client receipt, ${connected} clients connected, ${EVENTS} events`,
    );
    console.log(
      `  p50 ${ms(pct(lat, 50))}  p95 ${ms(pct(lat, 95))}  p99 ${ms(pct(lat, 99))}  max ${ms(lat[lat.length - 1] ?? NaN)}  (${lat.length} deliveries, ${missing} missing)`,
    );
    return { p95: pct(lat, 95), p99: pct(lat, 99) };
  } finally {
    for (const s of sockets) s.close();
    await api.close();
  }
}

if (require.main === module) {
  benchApi().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
