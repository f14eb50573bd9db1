/**
 * Machine operations through Temporal (real dev server, workers, MariaDB, libvirtd), all in one run:
 * 1. Orchestration overhead of createMachine → off, createMachine → running and destroyMachine, p50/p95,
 *    against a fair baseline measured in the same run: **the same activity functions, called directly in
 *    the same order with the same inputs** (read from the workflow's own history, with fresh ids), the
 *    saga's step-record writes included (rebuilt from the operation row), so with the same database
 *    writes, events, libvirt and storage calls; only Temporal is missing. Printed as a ratio and as
 *    milliseconds added per operation (and, in brackets, against the activities alone), then a breakdown
 *    of one create's and one destroy's history (dispatch and run times; every event with BENCH_TRACE=1).
 * 2. Concurrency: BENCH_CONCURRENCY (default 20) creates at once, then as many destroys, all on one host:
 *    operations per minute and p95 per operation.
 * 3. Worker memory over BENCH_OPS operations (default 1000, in such batches): RSS after warm-up against
 *    RSS at the end (the worker runs in this process).
 * Database: BENCH_DATABASE_URL (default vmflow_bench). Runs: BENCH_MACHINES (default 8 per series);
 * BENCH_SKIP_CONCURRENCY=1 stops after part 1. docs/performance.md has the figures.
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { tsToMs } from '@temporalio/common/lib/time';
import { MockActivityEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, NativeConnection } from '@temporalio/worker';
import path from 'node:path';
import { type DataSource } from 'typeorm';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createControlActivities, createHypervisorActivities, type ActivityDeps } from '../src/activities';
import { registerHost } from '../src/activities/db';
import { runMachineOperation } from '../src/client/machine-operations';
import { createDataSource } from '../src/entities/data-source';
import { Host } from '../src/entities/host';
import { Operation, type OperationStep } from '../src/entities/operation';
import { migrateDatabase } from '../src/entities/migrate';
import { type Connection as Libvirt } from '../src/libvirt/connection';
import { LibvirtProvider } from '../src/libvirt/provider';
import { buildDomainXml } from '../src/libvirt/xml';
import { SecretBox } from '../src/secrets';
import { createWorkers } from '../src/worker/worker';
import { machineWorkflowId } from '../src/workflows/shared';
import { seedDepartment, seedTemplate, seedUser } from '../test/support/db';
import { startDevServer } from '../test/support/temporal-server';

const POOL = process.env.STORAGE_POOL ?? 'vmflow';
const NETWORK = process.env.DEFAULT_NETWORK ?? 'vmflow-default';

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(0)} ms, p95 ${pct(xs, 95).toFixed(0)} ms`;

/** An activity call as the workflow made it: its name and its (decoded) arguments. */
interface ActivityCall {
  name: string;
  args: unknown[];
  /** A step record (a local activity of the saga): bookkeeping, timed apart as well. */
  record?: boolean;
}

/** The step statuses a merged record writes with the next one (Saga.record, src/workflows/saga.ts). */
const DEFERRED = new Set(['completed', 'compensated']);

/**
 * The calls a finished workflow made, in order, with their inputs: the activities it scheduled (from its
 * history) and its step records (local activities: their markers say where and which, their inputs are
 * not in the history, so they are rebuilt from the steps the operation row holds, grouped as the saga
 * wrote them).
 */
async function activityCalls(client: Client, ds: DataSource, workflowId: string): Promise<ActivityCall[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const calls: ActivityCall[] = [];
  for (const e of history.events ?? []) {
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName === 'core_local_activity') {
      const data = marker.details?.data?.payloads?.[0];
      const type = data ? (defaultPayloadConverter.fromPayload(data) as { activity_type: string }) : null;
      if (type) calls.push({ name: type.activity_type, args: [], record: true });
      continue;
    }
    const a = e.activityTaskScheduledEventAttributes;
    if (!a?.activityType?.name) continue;
    calls.push({
      name: a.activityType.name,
      args: (a.input?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p)),
    });
  }
  const begin = calls.find((c) => c.name === 'beginOperation')?.args[0] as
    { operationId: string; machineId: string | null } | undefined;
  if (!begin) throw new Error(`${workflowId}: no beginOperation`);
  const op = await ds.getRepository(Operation).findOneByOrFail({ id: begin.operationId });
  const groups: OperationStep[][] = [];
  let group: OperationStep[] = [];
  const merged = calls.some((c) => c.name === 'recordSteps');
  for (const step of op.steps) {
    group.push(step);
    if (!merged || !DEFERRED.has(step.status)) {
      groups.push(group);
      group = [];
    }
  }
  // What is left went with finishOperation (its recorded input carries it).
  const ids = { operationId: op.id, machineId: begin.machineId };
  for (const c of calls.filter((x) => x.record)) {
    const g = groups.shift();
    if (!g) throw new Error(`${workflowId}: more step records than steps`);
    c.args =
      c.name === 'recordSteps'
        ? [{ ...ids, steps: g }]
        : [
            {
              ...ids,
              step: g[0].name,
              status: g[0].status,
              at: g[0].at,
              ...(g[0].error ? { error: g[0].error } : {}),
            },
          ];
  }
  return calls;
}

/** Where a finished workflow's time went, from its history's event timestamps (ms). */
interface Timeline {
  total: number;
  /** Activities: scheduled → started (waiting in the server and the task queue). */
  activityDispatch: number;
  /** Activities: started → completed (the activity's own work, plus its report). */
  activityRun: number;
  /** Workflow tasks: scheduled → started (waiting in the server and the task queue). */
  wftDispatch: number;
  /** Workflow tasks: started → completed (the workflow code and its local activities). */
  wftRun: number;
  activities: number;
  localActivities: number;
  eager: number;
}

/** The {@link Timeline} of a finished workflow's history. */
async function timeline(client: Client, workflowId: string): Promise<Timeline> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const events = history.events ?? [];
  const at = new Map<number, number>();
  const t: Timeline = {
    total: 0,
    activityDispatch: 0,
    activityRun: 0,
    wftDispatch: 0,
    wftRun: 0,
    activities: 0,
    localActivities: 0,
    eager: 0,
  };
  const t0 = tsToMs(events[0]?.eventTime);
  for (const e of events) {
    const ms = tsToMs(e.eventTime);
    at.set(Number(e.eventId), ms);
    if (process.env.BENCH_TRACE === '1') {
      const type = String(e.eventType ?? '');
      const name =
        e.activityTaskScheduledEventAttributes?.activityType?.name ??
        e.markerRecordedEventAttributes?.markerName ??
        '';
      console.log(`    ${(ms - t0).toFixed(1).padStart(7)} ms  #${String(e.eventId)} ${type} ${name}`);
    }
    const started = e.activityTaskStartedEventAttributes;
    if (started) {
      const d = ms - at.get(Number(started.scheduledEventId))!;
      t.activityDispatch += d;
      t.activities++;
      if (d < 3) t.eager++;
    }
    const done = e.activityTaskCompletedEventAttributes;
    if (done) t.activityRun += ms - at.get(Number(done.startedEventId))!;
    const wfStarted = e.workflowTaskStartedEventAttributes;
    if (wfStarted) t.wftDispatch += ms - at.get(Number(wfStarted.scheduledEventId ?? e.eventId))!;
    const wfDone = e.workflowTaskCompletedEventAttributes;
    if (wfDone) t.wftRun += ms - at.get(Number(wfDone.startedEventId))!;
    if (e.markerRecordedEventAttributes?.markerName === 'core_local_activity') t.localActivities++;
  }
  t.total = tsToMs(events[events.length - 1].eventTime) - tsToMs(events[0].eventTime);
  return t;
}

/** Prints a {@link Timeline} on one line. */
function printTimeline(label: string, t: Timeline): void {
  const f = (x: number) => x.toFixed(0);
  console.log(
    `  ${label}: ${f(t.total)} ms in history = activities dispatch ${f(t.activityDispatch)} + run ${f(t.activityRun)} (${t.activities} activities, ${t.eager} eager), workflow tasks dispatch ${f(t.wftDispatch)} + run ${f(t.wftRun)} (${t.localActivities} local activities)`,
  );
}

/**
 * The fair baseline: runs the recorded calls directly, in order, through the same activity functions (in
 * an activity context, as a worker would, but with no Temporal), each id of the recording replaced by a
 * fresh one so that every run writes its own rows and makes its own libvirt objects.
 */
async function replay(
  acts: Record<string, (...args: never[]) => Promise<unknown>>,
  calls: ActivityCall[],
  ids: Record<string, string>,
  workflowId: string,
): Promise<{ total: number; records: number }> {
  const env = new MockActivityEnvironment({
    workflowExecution: { workflowId, runId: randomUUID() },
    heartbeatTimeoutMs: 10_000,
  });
  const swap = (v: unknown) => {
    let json = JSON.stringify(v);
    for (const [from, to] of Object.entries(ids)) json = json.split(from).join(to);
    return JSON.parse(json) as never[];
  };
  let records = 0;
  const t0 = performance.now();
  for (const c of calls) {
    const fn = acts[c.name];
    if (!fn) throw new Error(`no activity ${c.name}`);
    const t = performance.now();
    await env.run(fn, ...swap(c.args));
    if (c.record) records += performance.now() - t;
  }
  return { total: performance.now() - t0, records };
}

/** Runs the machine-creation bench and prints its figures. */
export async function benchMachines(): Promise<void> {
  const n = Number(process.env.BENCH_MACHINES ?? 8);
  const url = process.env.BENCH_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/vmflow_bench';
  await migrateDatabase(url);
  const server = await startDevServer({ logName: `bench-temporal-${process.pid}` });
  const ds = createDataSource(url);
  await ds.initialize();
  const libvirt = new LibvirtProvider(process.env.LIBVIRT_URI ?? 'qemu:///system');
  const conn = await libvirt.get();
  const node = await conn.getNodeInfo();
  const hostName = `bench-${randomUUID().slice(0, 8)}`;
  await registerHost(ds, {
    name: hostName,
    libvirtUri: libvirt.uri,
    taskQueue: `host-${hostName}`,
    cpus: node.cpus,
    memoryMiB: Math.floor(node.memoryKiB / 1024),
    storagePool: POOL,
    defaultNetwork: NETWORK,
  });
  const nativeConnection = await NativeConnection.connect({ address: server.address });
  const client = new Client({ connection: await Connection.connect({ address: server.address }) });
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath: path.resolve(__dirname, '../src/workflows'),
    logger: { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} } as never,
  });
  const deps: ActivityDeps = {
    libvirt,
    dataSource: ds,
    secrets: new SecretBox('vmflow-bench-secrets-key-0123456789'),
  };
  const workers = await createWorkers({
    connection: nativeConnection,
    namespace: 'default',
    hostName,
    workflowBundle,
    deps,
  });
  const acts = { ...createControlActivities(deps), ...createHypervisorActivities(deps) } as unknown as Record<
    string,
    (...args: never[]) => Promise<unknown>
  >;
  const running = Promise.all(workers.map((w) => w.run()));
  try {
    const owner = await seedUser(ds);
    const department = await seedDepartment(ds, [[owner, 'MEMBER']]);
    const template = await seedTemplate(ds);
    const create = async (machineId: string, start: boolean, operationId = randomUUID()) => {
      const t0 = performance.now();
      await runMachineOperation(client, 'createMachine', {
        operationId,
        machineId,
        name: `bench ${machineId.slice(0, 8)}`,
        templateId: template.id,
        departmentId: department.id,
        ownerId: owner.id,
        actorId: owner.id,
        hostName,
        start,
      });
      return performance.now() - t0;
    };
    const destroy = async (machineId: string, operationId = randomUUID()) => {
      const t0 = performance.now();
      await runMachineOperation(client, 'destroyMachine', {
        operationId,
        machineId,
        actorId: null,
        shutdownTimeoutSec: 1,
      });
      return performance.now() - t0;
    };

    // Record what the workflows do (the first create also probes the virtualization type): the calls of
    // a create (off, and running) and of the destroy of an off machine, with the ids they used.
    const rec = { id: randomUUID(), create: randomUUID(), destroy: randomUUID() };
    await create(rec.id, false, rec.create);
    const createOffCalls = await activityCalls(client, ds, machineWorkflowId(rec.id));
    await destroy(rec.id, rec.destroy);
    const destroyCalls = await activityCalls(client, ds, machineWorkflowId(rec.id));
    const recStart = { id: randomUUID(), create: randomUUID() };
    await create(recStart.id, true, recStart.create);
    const createStartCalls = await activityCalls(client, ds, machineWorkflowId(recStart.id));
    await destroy(recStart.id);
    const virtType = /<domain type='kvm'/.test(await conn.getCapabilities()) ? await probeType(conn) : 'qemu';
    // The direct side: the recorded calls with every recorded id swapped for a fresh one.
    const direct = async (
      calls: ActivityCall[],
      from: { id: string; op: string },
      to: { id: string; op: string },
    ) =>
      replay(
        acts,
        calls,
        {
          [from.id]: to.id,
          [from.op]: to.op,
          [`bench ${from.id.slice(0, 8)}`]: `bench ${to.id.slice(0, 8)}`,
        },
        machineWorkflowId(to.id),
      );
    const series: Record<string, number[]> = {
      createOff: [],
      directCreateOff: [],
      directCreateOffActs: [],
      destroy: [],
      directDestroy: [],
      directDestroyActs: [],
      createStart: [],
      directCreateStart: [],
      directCreateStartActs: [],
    };
    /** Adds a direct run to its series: in full, and without its step records (activities only). */
    const add = (key: string, r: { total: number; records: number }) => {
      series[key].push(r.total);
      series[`${key}Acts`].push(r.total - r.records);
    };
    for (let i = 0; i < n; i++) {
      // Interleaved, so that load from elsewhere hits both sides alike.
      const a = randomUUID();
      series.createOff.push(await create(a, false));
      series.destroy.push(await destroy(a));
      const b = { id: randomUUID(), op: randomUUID() };
      add('directCreateOff', await direct(createOffCalls, { id: rec.id, op: rec.create }, b));
      add(
        'directDestroy',
        await direct(destroyCalls, { id: rec.id, op: rec.destroy }, { id: b.id, op: randomUUID() }),
      );
      const c = randomUUID();
      series.createStart.push(await create(c, true));
      await destroy(c);
      const d = { id: randomUUID(), op: randomUUID() };
      add('directCreateStart', await direct(createStartCalls, { id: recStart.id, op: recStart.create }, d));
      await destroy(d.id); // through the workflow: the direct side made a real machine, with its row
    }
    const overhead = (orch: number[], base: number[]) =>
      `${(pct(orch, 50) / pct(base, 50)).toFixed(2)}× at p50 (+${(pct(orch, 50) - pct(base, 50)).toFixed(0)} ms per operation), ${(pct(orch, 95) / pct(base, 95)).toFixed(2)}× at p95`;
    const count = (calls: ActivityCall[]) =>
      `${calls.filter((c) => !c.record).length} activities + ${calls.filter((c) => c.record).length} step records`;
    console.log(
      `machines (${n} each, domain type ${virtType}); baseline: the same activities and step-record writes called directly in the same order with the same inputs (create: ${count(createOffCalls)}; destroy: ${count(destroyCalls)})`,
    );
    const report = (label: string, key: string, orch: number[]) => {
      console.log(`  ${label.padEnd(29)} ${fmt(orch)}`);
      console.log(`    same calls, direct:         ${fmt(series[key])}`);
      console.log(
        `    (activities only:           ${fmt(series[`${key}Acts`])}: ${overhead(orch, series[`${key}Acts`])})`,
      );
      console.log(`    orchestration overhead:     ${overhead(orch, series[key])}`);
    };
    report('createMachine → off:', 'directCreateOff', series.createOff);
    report('destroyMachine (off):', 'directDestroy', series.destroy);
    report('createMachine → running:', 'directCreateStart', series.createStart);

    // Where the time goes, from the history timestamps of one more create → off and its destroy.
    const probe = randomUUID();
    await create(probe, false);
    const createTl = await timeline(client, machineWorkflowId(probe));
    await destroy(probe);
    const destroyTl = await timeline(client, machineWorkflowId(probe));
    console.log('history breakdown (one run each):');
    printTimeline('createMachine → off', createTl);
    printTimeline('destroyMachine (off)', destroyTl);
    if (process.env.BENCH_SKIP_CONCURRENCY === '1') return;

    // ---- 2. concurrency, 3. worker memory ------------------------------------------------------------
    const concurrency = Number(process.env.BENCH_CONCURRENCY ?? 20);
    const totalOps = Number(process.env.BENCH_OPS ?? 1000);
    const gc = exposeGc();
    const rss = () => {
      gc?.();
      return process.memoryUsage().rss / 2 ** 20;
    };
    const batch = async () => {
      const ids = Array.from({ length: concurrency }, () => randomUUID());
      const t0 = performance.now();
      const creates = await Promise.all(ids.map((id) => create(id, false)));
      const destroys = await Promise.all(ids.map((id) => destroy(id)));
      return { ms: performance.now() - t0, times: [...creates, ...destroys], creates, destroys };
    };
    const first = await batch();
    console.log(
      `\nconcurrency: ${concurrency} creates at once, then ${concurrency} destroys, one host: all ${2 * concurrency} succeeded in ${(first.ms / 1000).toFixed(1)} s → ${((2 * concurrency) / (first.ms / 60_000)).toFixed(0)} operations/min; create ${fmt(first.creates)}, destroy ${fmt(first.destroys)}`,
    );
    const batches = Math.max(2, Math.ceil(totalOps / (2 * concurrency)));
    let ops = 2 * concurrency;
    let warm = 0;
    const t1 = performance.now();
    for (let i = 1; i < batches; i++) {
      await batch();
      ops += 2 * concurrency;
      if (i === Math.min(2, batches - 1)) warm = rss();
    }
    const end = rss();
    console.log(
      `worker memory over ${ops} operations (${concurrency} at a time, ${((ops - 2 * concurrency) / ((performance.now() - t1) / 60_000)).toFixed(0)} operations/min): RSS ${warm.toFixed(0)} MiB after warm-up, ${end.toFixed(0)} MiB at the end → ${(end / warm).toFixed(2)}× (goal ≤ 1.10×)${gc ? '' : ' (no forced GC)'}`,
    );
  } finally {
    workers.forEach((w) => w.shutdown());
    await running;
    await ds.getRepository(Host).delete({ name: hostName });
    await ds.destroy();
    await libvirt.close();
    await nativeConnection.close();
    server.stop();
  }
}

/** The V8 garbage collector, for memory readings that do not depend on when it last ran (null if unavailable). */
function exposeGc(): (() => void) | null {
  try {
    setFlagsFromString('--expose-gc');
    return runInNewContext('gc') as () => void;
  } catch {
    return null;
  }
}

/** The type the worker's probe would choose: kvm if a paused kvm domain starts, else qemu. */
async function probeType(conn: Libvirt): Promise<'kvm' | 'qemu'> {
  const name = `vmflow-bench-probe-${process.pid}`;
  const dom = await conn.defineDomain(
    buildDomainXml({ name, type: 'kvm', memoryMiB: 16, vcpus: 1, disks: [], interfaces: [] }),
  );
  try {
    await dom.start({ paused: true });
    await dom.destroy();
    return 'kvm';
  } catch {
    return 'qemu';
  } finally {
    await dom.undefine().catch(() => undefined);
  }
}

if (require.main === module) {
  benchMachines().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
