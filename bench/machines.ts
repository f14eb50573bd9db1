/**
 * Orchestration overhead of machine creation: p50/p95 of createMachine to `off` and of create-and-start
 * through Temporal (real dev server, workers, MariaDB, libvirtd), against a baseline measured in the same
 * run: the same libvirt, storage and nwfilter calls made directly from one script, with no workflow,
 * database, events or idempotency checks. Printed as ratios.
 * Database: BENCH_DATABASE_URL (default vmflow_bench). Runs: BENCH_MACHINES (default 8 per series).
 */
import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection } from '@temporalio/worker';
import path from 'node:path';
import { registerHost } from '../src/activities/db';
import { runMachineOperation } from '../src/client/machine-operations';
import { createDataSource } from '../src/entities/data-source';
import { Host } from '../src/entities/host';
import { migrateDatabase } from '../src/entities/migrate';
import { type Connection as Libvirt } from '../src/libvirt/connection';
import { LibvirtProvider } from '../src/libvirt/provider';
import { buildDomainXml, buildNWFilterXml, buildVolumeXml } from '../src/libvirt/xml';
import { macFromId, SecretBox } from '../src/secrets';
import { createWorkers } from '../src/worker/worker';
import { libvirtNames } from '../src/workflows/shared';
import { seedDepartment, seedTemplate, seedUser } from '../test/support/db';
import { startDevServer } from '../test/support/temporal-server';

const POOL = process.env.STORAGE_POOL ?? 'vmflow';
const NETWORK = process.env.DEFAULT_NETWORK ?? 'vmflow-default';

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
const fmt = (xs: number[]) => `p50 ${pct(xs, 50).toFixed(0)} ms, p95 ${pct(xs, 95).toFixed(0)} ms`;

/** The direct baseline: volume, department + VM filters, domain (and start), then removal. */
async function direct(conn: Libvirt, start: boolean, virtType: 'kvm' | 'qemu'): Promise<number> {
  const id = randomUUID();
  const t0 = performance.now();
  const pool = await conn.lookupPoolByName(POOL);
  const vol = await pool.createVolume(
    buildVolumeXml({ name: libvirtNames.volume(id), capacityBytes: 1024 ** 3, format: 'qcow2' }),
  );
  const dept = `vmflow-bench-dept-${id.slice(0, 8)}`;
  await conn.defineNWFilter(
    buildNWFilterXml({ name: dept, chain: 'root', filterrefs: [{ filter: 'clean-traffic' }] }),
  );
  await conn.defineNWFilter(
    buildNWFilterXml({ name: libvirtNames.vmFilter(id), chain: 'root', filterrefs: [{ filter: dept }] }),
  );
  const dom = await conn.defineDomain(
    buildDomainXml({
      name: libvirtNames.domain(id),
      uuid: id,
      title: 'bench',
      type: virtType,
      memoryMiB: 64,
      maxMemoryMiB: 128,
      vcpus: 1,
      maxVcpus: 2,
      disks: [{ path: await vol.getPath(), format: 'qcow2', target: 'vda', bus: 'virtio', boot: 1 }],
      interfaces: [
        {
          type: 'network',
          source: NETWORK,
          mac: macFromId(id),
          model: 'virtio',
          filterref: { filter: libvirtNames.vmFilter(id) },
        },
      ],
      graphics: { type: 'vnc', listen: '127.0.0.1', password: 'benchpwd' },
      guestAgent: true,
      vmflowAgent: true,
      metadata: { machineId: id },
    }),
  );
  if (start) await dom.start();
  const elapsed = performance.now() - t0;
  if (start) await dom.destroy();
  await dom.undefine({ nvram: true });
  await (await conn.lookupNWFilterByName(libvirtNames.vmFilter(id))).undefine();
  await (await conn.lookupNWFilterByName(dept)).undefine();
  await vol.delete();
  return elapsed;
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
  const workers = await createWorkers({
    connection: nativeConnection,
    namespace: 'default',
    hostName,
    workflowBundle,
    deps: { libvirt, dataSource: ds, secrets: new SecretBox('vmflow-bench-secrets-key-0123456789') },
  });
  const running = Promise.all(workers.map((w) => w.run()));
  try {
    const owner = await seedUser(ds);
    const department = await seedDepartment(ds, [[owner, 'MEMBER']]);
    const template = await seedTemplate(ds);
    const orchestrated = async (start: boolean) => {
      const machineId = randomUUID();
      const t0 = performance.now();
      await runMachineOperation(client, 'createMachine', {
        machineId,
        name: `bench ${machineId.slice(0, 8)}`,
        templateId: template.id,
        departmentId: department.id,
        ownerId: owner.id,
        actorId: owner.id,
        hostName,
        start,
      });
      const elapsed = performance.now() - t0;
      await runMachineOperation(client, 'destroyMachine', {
        machineId,
        actorId: null,
        shutdownTimeoutSec: 1,
      });
      return elapsed;
    };
    // Warm-up (the first create also probes the virtualization type), then the domain type it chose.
    await orchestrated(false);
    const virtType = /<domain type='kvm'/.test(await conn.getCapabilities()) ? await probeType(conn) : 'qemu';
    await direct(conn, false, virtType);
    const series: Record<string, number[]> = {
      createOff: [],
      createStart: [],
      directOff: [],
      directStart: [],
    };
    for (let i = 0; i < n; i++) {
      // Interleaved, so that load from elsewhere hits both sides alike.
      series.createOff.push(await orchestrated(false));
      series.directOff.push(await direct(conn, false, virtType));
      series.createStart.push(await orchestrated(true));
      series.directStart.push(await direct(conn, true, virtType));
    }
    console.log(`machines (${n} each, domain type ${virtType}):`);
    console.log(`  createMachine → off:          ${fmt(series.createOff)}`);
    console.log(`  direct calls (baseline):      ${fmt(series.directOff)}`);
    console.log(
      `  orchestration overhead:       ${(pct(series.createOff, 50) / pct(series.directOff, 50)).toFixed(2)}× at p50, ${(pct(series.createOff, 95) / pct(series.directOff, 95)).toFixed(2)}× at p95`,
    );
    console.log(`  createMachine → running:      ${fmt(series.createStart)}`);
    console.log(`  direct calls + start:         ${fmt(series.directStart)}`);
    console.log(
      `  orchestration overhead:       ${(pct(series.createStart, 50) / pct(series.directStart, 50)).toFixed(2)}× at p50, ${(pct(series.createStart, 95) / pct(series.directStart, 95)).toFixed(2)}× at p95`,
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
