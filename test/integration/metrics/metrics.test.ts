/* eslint-disable @typescript-eslint/no-explicit-any -- socket payloads and API bodies are JSON read loosely */
/**
 * VM metrics on the real stack (docs/metrics.md): a running TCG domain with an empty disk (no OS: its
 * CPU, balloon, block and network counters are libvirt's all the same), created and started through
 * Temporal; the worker's collector reading libvirt's bulk stats through the binding, writing batches to
 * MariaDB, rolling them up and purging them; the API's series with the VM's permissions; and the live
 * `vms:metrics` over a private Redis to real Socket.IO clients — the owner's subscribed socket gets
 * throttled samples, a socket of another department is refused and gets none.
 */
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import {
  METRICS_EVENT,
  METRICS_SUBSCRIBE,
  METRICS_UNSUBSCRIBE,
  type SubscribeAck,
} from '../../../src/api/metrics-feed';
import { Host } from '../../../src/entities/host';
import { Machine } from '../../../src/entities/machine';
import { type User } from '../../../src/entities/user';
import { METRICS_CHANNEL, redisWaker, redisWakeSource, type EventWaker } from '../../../src/events/wake';
import { publishEvent } from '../../../src/events/publish';
import { METRIC_FIELDS } from '../../../src/metrics/point';
import { insertRaw } from '../../../src/metrics/store';
import {
  createMetricsCollector,
  type MetricsCollector,
  type MetricsCollectorOptions,
} from '../../../src/worker/metrics-collector';
import { startApi, type ApiHarness, type RecordingSocket } from '../../support/api-harness';
import { seedDepartment, seedUser } from '../../support/db';
import {
  createMachine,
  destroyIfPresent,
  domainOf,
  seedWorld,
  waitFor,
  type World,
} from '../../support/machines';
import { freePort, RedisServer } from '../../support/redis';
import { startStack, type Stack } from '../../support/stack';

const THROTTLE_MS = 5_000;
const INTERVAL_MS = 1_000;
const quiet = pino({ level: 'silent' });

/** The agent sample the stub "watcher" holds for the VM (what a connected agent last sent). */
const agentSample = () => ({
  seq: 7,
  uptimeS: 1234,
  cpu: { totalPct: 42.5, perCorePct: [42.5] },
  load: [0.25, 0.2, 0.1] as [number, number, number],
  memory: { totalBytes: 60e6, availableBytes: 20e6, usedBytes: 40e6, swapTotalBytes: 0, swapUsedBytes: 0 },
  filesystems: [{ mount: '/', fsType: 'ext4', totalBytes: 1e9, usedBytes: 4e8 }],
  nics: [],
  disks: [],
  users: [],
  topCpu: [],
  topMemory: [],
});

describe('VM metrics on the real stack', () => {
  let stack: Stack;
  let world: World;
  let h: ApiHarness;
  let redis: RedisServer;
  let waker: EventWaker;
  let collector: MetricsCollector;
  let hostId: string;
  let vmId: string;
  let outsider: User;
  let manager: User;
  let manager2: User;
  let otherDeptId: string;
  let agentOn = false;
  /** The domain's current memory (what the balloon gives a guest that never inflated it). */
  let memBytes: number;
  const made: string[] = [];
  const raw = (id: string) =>
    stack.dataSource.query('SELECT * FROM `machine_metric_raw` WHERE `machineId` = ? ORDER BY `at`', [
      id,
    ]) as Promise<any[]>;

  const subscribe = (r: RecordingSocket, machineId: string) =>
    new Promise<SubscribeAck>((resolve) => r.socket.emit(METRICS_SUBSCRIBE, { machineId }, resolve));
  /** Moves the VM's row to a department and publishes its event (as the workflow that moves it would). */
  const moveTo = async (departmentId: string) => {
    await stack.dataSource.getRepository(Machine).update({ id: vmId }, { departmentId });
    await publishEvent(stack.dataSource.manager, {
      resource: 'vms',
      action: 'update',
      resourceId: vmId,
      payload: { machine: { id: vmId } },
      ownerId: world.owner.id,
      departmentId,
      dedupeKey: `test:${randomUUID()}`,
    });
  };

  beforeAll(async () => {
    stack = await startStack();
    world = await seedWorld(stack.dataSource);
    hostId = (await stack.dataSource.getRepository(Host).findOneByOrFail({ name: stack.hostName })).id;
    outsider = await seedUser(stack.dataSource);
    otherDeptId = (await seedDepartment(stack.dataSource, [[outsider, 'MANAGER']])).id;
    manager2 = await seedUser(stack.dataSource);
    manager = await seedUser(stack.dataSource);
    await stack.dataSource.query(
      'INSERT INTO `department_member` (`departmentId`, `userId`, `role`) VALUES (?, ?, ?)',
      [world.department.id, manager.id, 'MANAGER'],
    );
    await stack.dataSource.query(
      'INSERT INTO `department_member` (`departmentId`, `userId`, `role`) VALUES (?, ?, ?)',
      [world.department.id, manager2.id, 'MANAGER'],
    );
    redis = new RedisServer(await freePort());
    await redis.start();
    waker = redisWaker(redis.url, undefined, METRICS_CHANNEL);
    // A fallback poll of a minute: a sample that arrives within seconds came through a wake-up.
    h = await startApi(stack, {
      metrics: {
        wake: redisWakeSource(redis.url, undefined, METRICS_CHANNEL),
        pollMs: 60_000,
        fallbackPollMs: 60_000,
        throttleMs: THROTTLE_MS,
        intervalMs: INTERVAL_MS,
      },
    });
    const vm = await createMachine(stack, world, { start: true });
    vmId = vm.machineId;
    made.push(vmId);
    memBytes = (await (await domainOf(stack, vmId)).getInfo()).memoryKiB * 1024; // virDomainGetInfo's view
    collector = createMetricsCollector(collectorOptions());
  });

  /** The worker's collector settings on this stack. */
  const collectorOptions = (): MetricsCollectorOptions => ({
    libvirt: stack.libvirt,
    dataSource: stack.dataSource,
    hostId,
    // The worker's filter (src/worker/main.ts): only this host's machines.
    owns: (id) => stack.dataSource.getRepository(Machine).exists({ where: { id, hostId } }),
    agentSample: (id) => (agentOn && id === vmId ? { metrics: agentSample(), at: new Date() } : null),
    logger: quiet,
    intervalMs: INTERVAL_MS,
    rawRetentionS: 3600,
    rollupRetentionS: 7 * 86_400,
    purgeIntervalMs: 3_600_000,
    onBatch: () => waker.wake(),
  });

  afterAll(async () => {
    await collector?.stop();
    await h?.close();
    await waker?.close();
    await redis?.stop();
    for (const id of made) await destroyIfPresent(stack, id).catch(() => undefined);
    await stack?.stop();
  });

  it("stores a batch of this host's running VMs from libvirt's bulk stats, rates from the second reading", async () => {
    const first = await collector.collect();
    // Other stacks share this libvirtd: only machines of this host are collected.
    const owners = await stack.dataSource.getRepository(Machine).find({
      where: first.map((p) => ({ id: p.machineId })),
    });
    expect(owners.map((m) => m.hostId).every((id) => id === hostId)).toBe(true);
    expect(first.map((p) => p.machineId)).toContain(vmId);
    await waitFor(async () => (await raw(vmId)).length === 1, 'the first sample row');
    await new Promise((r) => setTimeout(r, 1_100)); // two readings a moment apart (not a synchronisation)
    const second = await collector.collect();
    const p = second.find((x) => x.machineId === vmId)!;
    expect(p.cpuPct).toEqual(expect.any(Number));
    expect(p.cpuPct!).toBeGreaterThanOrEqual(0);
    expect(p.cpuPct!).toBeLessThanOrEqual(100);
    expect(p.memAssignedBytes).toBe(memBytes);
    expect(p.hostRssBytes).toBeGreaterThan(0);
    for (const f of ['diskReadBps', 'diskWriteBps', 'netRxBps', 'netTxBps'] as const)
      expect(p[f]).toBeGreaterThanOrEqual(0);
    expect(p.agent).toBe(false);
    expect(p.guestCpuPct).toBeNull();
    const rows = await raw(vmId);
    expect(rows).toHaveLength(2);
    expect(Number(rows[1].cpuPct)).toBeCloseTo(p.cpuPct!, 3);
    expect(rows[0].cpuPct).toBeNull(); // the first reading has no rate
    expect(collector.tracked).toBe(second.length);
  });

  it("merges a fresh agent sample: the guest's own memory and fields", async () => {
    agentOn = true;
    try {
      const p = (await collector.collect()).find((x) => x.machineId === vmId)!;
      expect(p).toMatchObject({
        agent: true,
        guestCpuPct: 42.5,
        load1: 0.25,
        memTotalBytes: 60e6,
        memUsedBytes: 40e6,
        fsUsedBytes: 4e8,
        uptimeS: 1234,
        memAssignedBytes: memBytes,
      });
    } finally {
      agentOn = false;
    }
  });

  it('rolls the raw samples up per minute (the means SQL computes from the same rows)', async () => {
    const rows = await raw(vmId);
    const minute = new Date(Math.floor(new Date(rows[0].at).getTime() / 60_000) * 60_000);
    // As if the minute had ended: roll up every minute up to the next one.
    await collector.rollup(Date.now() + 120_000);
    const [rolled] = await stack.dataSource.query(
      'SELECT * FROM `machine_metric_minute` WHERE `machineId` = ? AND `bucket` = ?',
      [vmId, minute],
    );
    const [oracle] = await stack.dataSource.query(
      'SELECT COUNT(*) AS n, SUM(`agent`) AS agents, AVG(`cpuPct`) AS cpu, MAX(`cpuPct`) AS peak, AVG(`memUsedBytes`) AS mem ' +
        'FROM `machine_metric_raw` WHERE `machineId` = ? AND `at` >= ? AND `at` < ?',
      [vmId, minute, new Date(minute.getTime() + 60_000)],
    );
    expect(Number(rolled.samples)).toBe(Number(oracle.n));
    expect(Number(rolled.agentSamples)).toBe(Number(oracle.agents));
    expect(Number(rolled.cpuPct)).toBeCloseTo(Number(oracle.cpu), 3);
    expect(Number(rolled.cpuPctMax)).toBeCloseTo(Number(oracle.peak), 3);
    expect(rolled.memUsedBytes === null ? null : Number(rolled.memUsedBytes)).toEqual(
      oracle.mem === null ? null : Number(oracle.mem),
    );
    // Again over the same minutes: the same rows, rewritten, not added.
    await collector.rollup(Date.now() + 120_000);
    const again = await stack.dataSource.query(
      'SELECT COUNT(*) AS n FROM `machine_metric_minute` WHERE `machineId` = ?',
      [vmId],
    );
    expect(Number(again[0].n)).toBeGreaterThanOrEqual(1);
    const buckets = await stack.dataSource.query(
      'SELECT COUNT(DISTINCT `bucket`) AS n FROM `machine_metric_minute` WHERE `machineId` = ?',
      [vmId],
    );
    expect(Number(again[0].n)).toBe(Number(buckets[0].n));
  });

  it('purges raw samples and rollups past their retention, and nothing newer', async () => {
    const ghost = randomUUID(); // a deleted VM's leftovers: retention removes them too
    const now = Date.now();
    const old = (id: string, ageS: number) => {
      const p = { machineId: id, at: new Date(now - ageS * 1000), agent: false } as any;
      for (const f of METRIC_FIELDS) p[f] = 1;
      return p;
    };
    await insertRaw(stack.dataSource, [old(vmId, 2 * 3600), old(ghost, 3 * 3600), old(ghost, 60)]);
    await stack.dataSource.query(
      'INSERT INTO `machine_metric_minute` (`machineId`, `bucket`, `samples`, `agentSamples`) VALUES (?, ?, 6, 0), (?, ?, 6, 0)',
      [ghost, new Date(now - 8 * 86_400_000), ghost, new Date(now - 6 * 86_400_000)],
    );
    const before = (await raw(vmId)).length;
    const removed = await collector.purge(now);
    expect(removed.raw).toBeGreaterThanOrEqual(2);
    expect(removed.minute).toBeGreaterThanOrEqual(1);
    expect((await raw(vmId)).length).toBe(before - 1);
    expect((await raw(ghost)).map((r) => new Date(r.at).getTime())).toEqual([now - 60_000]);
    const left = await stack.dataSource.query(
      'SELECT `bucket` FROM `machine_metric_minute` WHERE `machineId` = ?',
      [ghost],
    );
    expect(left.map((r: any) => new Date(r.bucket).getTime())).toEqual([
      Math.floor((now - 6 * 86_400_000) / 1000) * 1000,
    ]);
  });

  it('serves the series to whoever may see the VM, raw or rolled up by range and step', async () => {
    const path = `/api/machines/${vmId}/metrics`;
    const mine = await h.call('GET', path, { as: world.owner });
    expect(mine.status).toBe(200);
    expect(mine.body).toMatchObject({ machineId: vmId, source: 'raw', step: 3 }); // 1 s samples, 1500 points at most
    const body = mine.body;
    const counted = body.samples.reduce((n: number, k: number) => n + k, 0);
    expect(counted).toBe((await raw(vmId)).length);
    for (const f of [...METRIC_FIELDS, 'cpuPctMax']) expect(body[f]).toHaveLength(body.at.length);
    expect(body.cpuPct.some((v: unknown) => typeof v === 'number')).toBe(true);
    expect(body.memAssignedBytes.every((v: unknown) => v === memBytes)).toBe(true);
    expect((await h.call('GET', path, { as: manager })).status).toBe(200);

    const minutes = await h.call('GET', `${path}?step=60`, { as: world.owner });
    expect(minutes.status).toBe(200);
    expect(minutes.body).toMatchObject({ source: 'minute', step: 60 });
    expect(minutes.body.at.length).toBeGreaterThanOrEqual(1);
    expect(minutes.body.samples[0]).toBeGreaterThanOrEqual(1);
    expect(minutes.body.memAssignedBytes[0]).toBe(memBytes);

    // Another department (even its manager) does not see the VM: 404, as GET /api/machines/:id.
    const theirs = await h.call('GET', path, { as: outsider });
    expect(theirs.status).toBe(404);
    expect(theirs.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect((await h.call('GET', `/api/machines/${vmId}`, { as: outsider })).status).toBe(404);
    expect((await h.call('GET', path)).status).toBe(401);
  });

  it('refuses a bad query with a problem naming the field', async () => {
    const path = `/api/machines/${vmId}/metrics`;
    const ask = (q: string) => h.call('GET', `${path}?${q}`, { as: world.owner });
    const field = async (q: string) => {
      const r = await ask(q);
      expect(r.status).toBe(400);
      expect(r.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      return r.body.errors.map((e: any) => e.field);
    };
    expect(await field('step=abc')).toEqual(['query.step']);
    expect(await field('from=yesterday')).toEqual(['query.from']);
    expect(await field('bogus=1')).toEqual(['query.bogus']);
    const to = new Date().toISOString();
    expect(await field(`from=${to}&to=${new Date(Date.now() - 60_000).toISOString()}`)).toEqual([
      'query.from',
    ]);
    expect(await field(`from=${new Date(Date.now() - 30 * 86_400_000).toISOString()}&step=60`)).toEqual([
      'query.step',
    ]);
    expect(await field(`from=${new Date(Date.now() - 40 * 86_400_000).toISOString()}`)).toEqual([
      'query.from',
    ]);
  });

  it('pushes throttled vms:metrics to the subscribed owner only; another department is refused and gets none', async () => {
    const owner = await h.socket(world.owner);
    const bystander = await h.socket(world.owner); // same user, did not subscribe
    const stranger = await h.socket(outsider);
    try {
      expect(await subscribe(stranger, vmId)).toEqual({
        ok: false,
        status: 404,
        detail: 'machine not found',
      });
      expect(await subscribe(stranger, 'not-a-uuid')).toMatchObject({ ok: false, status: 400 });
      const t0 = Date.now();
      expect(await subscribe(owner, vmId)).toEqual({ ok: true });
      const rowsBefore = (await raw(vmId)).length;
      collector.start(); // a sample a second, each batch waking the feed over Redis
      const isMetrics = (e: { name: string; payload: any }) => e.name === METRICS_EVENT;
      await owner.waitFor((e) => isMetrics(e) && e.payload.machineId === vmId, 'a first vms:metrics', 20_000);
      await waitFor(
        async () => owner.events.filter(isMetrics).length >= 3,
        'three throttled samples',
        40_000,
      );
      await collector.stop();
      const t1 = Date.now();
      const got = owner.events.filter(isMetrics).map((e) => e.payload);
      const written = (await raw(vmId)).length - rowsBefore;
      // Throttled: every emission lies in [t0, t1] and two are at least THROTTLE_MS apart.
      expect(got.length).toBeLessThanOrEqual(Math.floor((t1 - t0) / THROTTLE_MS) + 1);
      expect(got.length).toBeLessThan(written);
      const times = got.map((p) => Date.parse(p.at));
      expect([...times].sort((a, b) => a - b)).toEqual(times);
      expect(new Set(times).size).toBe(times.length);
      expect(got[0]).toMatchObject({ machineId: vmId, memAssignedBytes: memBytes, agent: false });
      expect(Object.keys(got[0])).toEqual(expect.arrayContaining([...METRIC_FIELDS, 'at', 'machineId']));
      expect(bystander.events.filter(isMetrics)).toEqual([]);
      expect(stranger.events.filter(isMetrics)).toEqual([]);
    } finally {
      await collector.stop();
      owner.close();
      bystander.close();
      stranger.close();
    }
  });

  it('withdraws a subscription when the VM moves out of the caller’s sight', async () => {
    const s = await h.socket(manager);
    try {
      const ack = await new Promise<SubscribeAck>((resolve) =>
        s.socket.emit(METRICS_SUBSCRIBE, { machineId: vmId }, resolve),
      );
      expect(ack).toEqual({ ok: true });
      // The manager's membership ends: the relay refreshes its principal, the feed re-checks the VM.
      await stack.dataSource.query(
        'DELETE FROM `department_member` WHERE `userId` = ? AND `departmentId` = ?',
        [manager.id, world.department.id],
      );
      await publishEvent(stack.dataSource.manager, {
        resource: 'users',
        action: 'update',
        resourceId: manager.id,
        payload: {},
        dedupeKey: `test:${randomUUID()}`,
      });
      await s.waitFor(
        (e) => e.name === 'vms:metrics:unsubscribed' && e.payload.machineId === vmId,
        'the subscription withdrawn',
      );
    } finally {
      s.close();
    }
  });

  it('withdraws subscriptions when the VM moves to another department, keeping those who still see it', async () => {
    const owner = await h.socket(world.owner);
    const mgr = await h.socket(manager2);
    try {
      expect(await subscribe(owner, vmId)).toEqual({ ok: true });
      expect(await subscribe(mgr, vmId)).toEqual({ ok: true });
      await moveTo(otherDeptId); // the row only: the workflow that would move it is not what is tested here
      await mgr.waitFor(
        (e) => e.name === 'vms:metrics:unsubscribed' && e.payload.machineId === vmId,
        "the old department's manager unsubscribed",
      );
      // The feed left the room before telling the socket: the server's rooms are final now.
      const room = h.api.io!.of('/').adapter.rooms.get(`metrics:${vmId}`);
      expect(room?.has(owner.socket.id!)).toBe(true);
      expect(room?.has(mgr.socket.id!)).toBe(false);
      expect(owner.events.some((e) => e.name === 'vms:metrics:unsubscribed')).toBe(false);
    } finally {
      await moveTo(world.department.id);
      owner.close();
      mgr.close();
    }
  });
  const metricsRoomOf = (machineId: string) => h.api.io!.of('/').adapter.rooms.get(`metrics:${machineId}`);

  /**
   * Holds the API's reads of the given machines (the feed's subscribe reads) after they returned, until
   * `open()`: the real read, then a gate this test controls, so what happens between a subscribe's read
   * and its join is ordered by the test, not by luck.
   */
  const gateReads = (ids: ReadonlySet<string>) => {
    const repo = stack.dataSource.getRepository(Machine);
    const real = repo.findOne.bind(repo);
    let open!: () => void;
    const opened = new Promise<void>((resolve) => (open = resolve));
    const held: string[] = [];
    const spy = jest.spyOn(repo, 'findOne').mockImplementation(async (o) => {
      const m = await real(o);
      const id = (o.where as { id?: unknown } | undefined)?.id;
      if (typeof id === 'string' && ids.has(id)) {
        held.push(id);
        await opened;
      }
      return m;
    });
    return { held, open: () => open(), restore: () => spy.mockRestore() };
  };

  it('counts subscribes still reading against the per-socket cap: a burst past it is refused without a read', async () => {
    const s = await h.socket(world.owner);
    const ids = Array.from({ length: 100 }, () => randomUUID()); // the default cap: 100 per connection
    const gate = gateReads(new Set(ids));
    try {
      const acks = ids.map((id) => subscribe(s, id));
      await waitFor(async () => gate.held.length === 100, 'the 100 subscribe reads in flight');
      // Nothing joined yet, but 100 are in flight: the next one is refused at once (it used to be read).
      expect(await subscribe(s, randomUUID())).toMatchObject({ ok: false, status: 429 });
      gate.open();
      expect(await Promise.all(acks)).toEqual(ids.map(() => expect.objectContaining({ status: 404 })));
      // Once they are answered nothing is counted any more.
      expect(await subscribe(s, vmId)).toEqual({ ok: true });
    } finally {
      gate.open();
      gate.restore();
      s.close();
    }
  });

  it('an unsubscribe sent while the subscribe is still reading cancels it: the socket joins nothing', async () => {
    const s = await h.socket(world.owner);
    const gate = gateReads(new Set([vmId]));
    try {
      const pending = subscribe(s, vmId);
      await waitFor(async () => gate.held.length === 1, 'the subscribe read in flight');
      await new Promise((resolve) => s.socket.emit(METRICS_UNSUBSCRIBE, { machineId: vmId }, resolve));
      gate.open();
      expect(await pending).toEqual({ ok: true });
      expect(metricsRoomOf(vmId)?.has(s.socket.id!) ?? false).toBe(false);
      gate.restore();
      // Nothing left pending: the socket subscribes again, and this time it stays.
      expect(await subscribe(s, vmId)).toEqual({ ok: true });
      expect(metricsRoomOf(vmId)?.has(s.socket.id!)).toBe(true);
    } finally {
      gate.open();
      gate.restore();
      s.close();
    }
  });

  it('a subscribe whose socket disconnected during its read joins nothing and holds nothing', async () => {
    const s = await h.socket(world.owner);
    const gate = gateReads(new Set([vmId]));
    try {
      const id = s.socket.id!;
      void subscribe(s, vmId);
      await waitFor(async () => gate.held.length === 1, 'the subscribe read in flight');
      expect(h.api.metricsFeed.inFlight).toBe(1);
      s.close();
      await waitFor(async () => !h.api.io!.of('/').sockets.has(id), 'the server to see the disconnect');
      gate.open();
      await waitFor(async () => h.api.metricsFeed.inFlight === 0, 'the subscribe to finish');
      expect(metricsRoomOf(vmId)?.has(id) ?? false).toBe(false);
    } finally {
      gate.open();
      gate.restore();
      s.close();
    }
  });

  it('a subscribe whose VM moved out of sight during its read reads it again and joins nothing', async () => {
    const watcher = await h.socket(manager2); // subscribed already: the relay's re-check shows on it
    const late = await h.socket(manager2);
    try {
      expect(await subscribe(watcher, vmId)).toEqual({ ok: true });
      const held = gateReads(new Set([vmId]));
      try {
        // The late subscribe has read the VM in its department (the manager may see it) ...
        const pending = subscribe(late, vmId);
        await waitFor(async () => held.held.length === 1, 'the late subscribe read in flight');
        // ... the VM moves to another department and the relay's re-check withdraws the watcher ...
        await moveTo(otherDeptId);
        await watcher.waitFor(
          (e) => e.name === 'vms:metrics:unsubscribed' && e.payload.machineId === vmId,
          'the watcher withdrawn',
        );
        // ... then the late subscribe completes: it must not join with what it read before the move.
        held.open();
        expect(await pending).toEqual({ ok: false, status: 404, detail: 'machine not found' });
        const room = metricsRoomOf(vmId);
        expect(room?.has(late.socket.id!) ?? false).toBe(false);
        expect(room?.has(watcher.socket.id!) ?? false).toBe(false);
      } finally {
        held.open();
        held.restore();
      }
    } finally {
      await moveTo(world.department.id);
      watcher.close();
      late.close();
    }
  });

  /**
   * A restarted worker's roll-up with `retentionS` of raw retention over `rows` (raw samples at these
   * times, cpuPct 1) and `stored` (minutes already rolled up: 6 samples, cpuPct 50); then each minute's row.
   */
  const restartRollup = async (retentionS: number, rows: number[], stored: number[], minutes: number[]) => {
    const sample = (at: number) => {
      const p = { machineId: vmId, at: new Date(at), agent: false } as any;
      for (const f of METRIC_FIELDS) p[f] = null;
      p.cpuPct = 1;
      return p;
    };
    await insertRaw(stack.dataSource, rows.map(sample));
    for (const bucket of stored)
      await stack.dataSource.query(
        'INSERT INTO `machine_metric_minute` (`machineId`, `bucket`, `samples`, `agentSamples`, `cpuPct`) VALUES (?, ?, 6, 0, 50)',
        [vmId, new Date(bucket)],
      );
    try {
      const restarted = createMetricsCollector({
        ...collectorOptions(),
        rawRetentionS: retentionS,
        rollupChunkMinutes: 7,
      });
      await restarted.rollup();
      const out: Array<Array<{ samples: number; cpuPct: number }>> = [];
      for (const bucket of minutes) {
        const got = await stack.dataSource.query(
          'SELECT `samples`, `cpuPct` FROM `machine_metric_minute` WHERE `machineId` = ? AND `bucket` = ?',
          [vmId, new Date(bucket)],
        );
        out.push(got.map((r: any) => ({ samples: Number(r.samples), cpuPct: Number(r.cpuPct) })));
      }
      return out;
    } finally {
      const last = Math.max(...rows, ...stored, ...minutes);
      await stack.dataSource.query('DELETE FROM `machine_metric_raw` WHERE `machineId` = ? AND `at` <= ?', [
        vmId,
        new Date(last),
      ]);
      await stack.dataSource.query(
        'DELETE FROM `machine_metric_minute` WHERE `machineId` = ? AND `bucket` <= ?',
        [vmId, new Date(last)],
      );
    }
  };

  it('a restarted worker rolls up from the first whole minute raw retention holds, not the partly purged one', async () => {
    const retentionS = 3 * 3600;
    // The restarted worker takes its clock when created: not in the last seconds of a minute, so that the
    // minute retention cuts into is the same for it and for this test.
    const into = Date.now() % 60_000;
    if (into > 50_000) await new Promise((resolve) => setTimeout(resolve, 60_000 - into + 100));
    const cut = Math.floor((Date.now() - retentionS * 1000) / 60_000) * 60_000; // the minute retention cuts into
    // What the purge left of the cut minute: its last sample. No mean of it is written; the next minute is.
    expect(await restartRollup(retentionS, [cut + 59_000, cut + 60_000], [], [cut, cut + 60_000])).toEqual([
      [],
      [{ samples: 1, cpuPct: 1 }],
    ]);
  });

  it('a restarted worker catching up keeps the minutes already stored (computed from all their samples)', async () => {
    const minute = Math.floor((Date.now() - 3600_000) / 60_000) * 60_000;
    expect(await restartRollup(3 * 3600, [minute + 10_000], [minute], [minute])).toEqual([
      [{ samples: 6, cpuPct: 50 }],
    ]);
  });

  it("asks once per TTL whether a vmflow domain that is not this host's is ours", async () => {
    const asked = new Map<string, number>();
    const elsewhere = createMetricsCollector({
      ...collectorOptions(),
      owns: (id) => {
        asked.set(id, (asked.get(id) ?? 0) + 1);
        return Promise.resolve(false); // as the worker of another host sees this VM
      },
    });
    expect(await elsewhere.collect()).toEqual([]);
    expect(await elsewhere.collect()).toEqual([]);
    expect(asked.get(vmId)).toBe(1);
  });
});
