/**
 * Machine operations through Temporal (real dev server, workers, MariaDB, libvirtd), all in one run:
 * 1. Orchestration overhead of createMachine → off, createMachine → running and destroyMachine, p50/p95,
 *    against a fair baseline measured in the same run: **the same activity functions, called directly in
 *    the same order with the same inputs** (read from the workflow's own history, with fresh ids), so with
 *    the same database writes, events, libvirt and storage calls; only Temporal is missing. Printed as a
 *    ratio and as milliseconds added per operation.
 * 2. Concurrency: BENCH_CONCURRENCY (default 20) creates at once, then as many destroys, all on one host:
 *    operations per minute and p95 per operation.
 * 3. Worker memory over BENCH_OPS operations (default 1000, in such batches): RSS after warm-up against
 *    RSS at the end (the worker runs in this process).
 * Database: BENCH_DATABASE_URL (default vmflow_bench). Runs: BENCH_MACHINES (default 8 per series).
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, NativeConnection } from '@temporalio/worker';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createControlActivities, createHypervisorActivities, type ActivityDeps } from '../src/activities';
import { registerHost } from '../src/activities/db';
import { runMachineOperation } from '../src/client/machine-operations';
import { createDataSource } from '../src/entities/data-source';
import { Host } from '../src/entities/host';
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
}

/** The activities a finished workflow scheduled, in order, with their inputs (from its history). */
async function activityCalls(client: Client, workflowId: string): Promise<ActivityCall[]> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const calls: ActivityCall[] = [];
  for (const e of history.events ?? []) {
    const a = e.activityTaskScheduledEventAttributes;
    if (!a?.activityType?.name) continue;
    calls.push({
      name: a.activityType.name,
      args: (a.input?.payloads ?? []).map((p) => defaultPayloadConverter.fromPayload(p)),
    });
  }
  return calls;
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
): Promise<number> {
  const env = new MockActivityEnvironment({
    workflowExecution: { workflowId, runId: randomUUID() },
    heartbeatTimeoutMs: 10_000,
  });
  const swap = (v: unknown) => {
    let json = JSON.stringify(v);
    for (const [from, to] of Object.entries(ids)) json = json.split(from).join(to);
    return JSON.parse(json) as never[];
  };
  const t0 = performance.now();
  for (const c of calls) {
    const fn = acts[c.name];
    if (!fn) throw new Error(`no activity ${c.name}`);
    await env.run(fn, ...swap(c.args));
  }
  return performance.now() - t0;
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
    const createOffCalls = await activityCalls(client, machineWorkflowId(rec.id));
    await destroy(rec.id, rec.destroy);
    const destroyCalls = await activityCalls(client, machineWorkflowId(rec.id));
    const recStart = { id: randomUUID(), create: randomUUID() };
    await create(recStart.id, true, recStart.create);
    const createStartCalls = await activityCalls(client, machineWorkflowId(recStart.id));
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
      destroy: [],
      directDestroy: [],
      createStart: [],
      directCreateStart: [],
    };
    for (let i = 0; i < n; i++) {
      // Interleaved, so that load from elsewhere hits both sides alike.
      const a = randomUUID();
      series.createOff.push(await create(a, false));
      series.destroy.push(await destroy(a));
      const b = { id: randomUUID(), op: randomUUID() };
      series.directCreateOff.push(await direct(createOffCalls, { id: rec.id, op: rec.create }, b));
      series.directDestroy.push(
        await direct(destroyCalls, { id: rec.id, op: rec.destroy }, { id: b.id, op: randomUUID() }),
      );
      const c = randomUUID();
      series.createStart.push(await create(c, true));
      await destroy(c);
      const d = { id: randomUUID(), op: randomUUID() };
      series.directCreateStart.push(
        await direct(createStartCalls, { id: recStart.id, op: recStart.create }, d),
      );
      await destroy(d.id); // through the workflow: the direct side made a real machine, with its row
    }
    const overhead = (orch: number[], base: number[]) =>
      `${(pct(orch, 50) / pct(base, 50)).toFixed(2)}× at p50 (+${(pct(orch, 50) - pct(base, 50)).toFixed(0)} ms per operation), ${(pct(orch, 95) / pct(base, 95)).toFixed(2)}× at p95`;
    console.log(
      `machines (${n} each, domain type ${virtType}); baseline: the same activities called directly in the same order with the same inputs (${createOffCalls.length} calls for a create, ${destroyCalls.length} for a destroy)`,
    );
    console.log(`  createMachine → off:          ${fmt(series.createOff)}`);
    console.log(`    same activities, direct:    ${fmt(series.directCreateOff)}`);
    console.log(`    orchestration overhead:     ${overhead(series.createOff, series.directCreateOff)}`);
    console.log(`  destroyMachine (off):         ${fmt(series.destroy)}`);
    console.log(`    same activities, direct:    ${fmt(series.directDestroy)}`);
    console.log(`    orchestration overhead:     ${overhead(series.destroy, series.directDestroy)}`);
    console.log(`  createMachine → running:      ${fmt(series.createStart)}`);
    console.log(`    same activities, direct:    ${fmt(series.directCreateStart)}`);
    console.log(`    orchestration overhead:     ${overhead(series.createStart, series.directCreateStart)}`);

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
