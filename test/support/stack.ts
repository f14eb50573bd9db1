/**
 * The real stack for integration suites: the test Temporal server, MariaDB, the namespaced libvirtd,
 * and this process's workers (control queue + a host queue unique to the suite) with real activities.
 */
import { randomUUID } from 'node:crypto';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { type Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { type DataSource } from 'typeorm';
import { registerHost } from '../../src/activities/db';
import { ArmedFaults } from '../../src/activities/faults';
import { Host } from '../../src/entities/host';
import { LibvirtProvider } from '../../src/libvirt/provider';
import { probeQos } from '../../src/networks/qos';
import { SecretBox } from '../../src/secrets';
import { createWorkers } from '../../src/worker/worker';
import { openTestDataSource } from './db';
import { bundleWorkflows, connectTestEnv } from './temporal';

export const TEST_POOL = process.env.STORAGE_POOL ?? 'vmflow';
export const TEST_NETWORK = process.env.DEFAULT_NETWORK ?? 'vmflow-default';

/** A running stack; `stop()` in afterAll. */
export interface Stack {
  env: TestWorkflowEnvironment;
  dataSource: DataSource;
  libvirt: LibvirtProvider;
  secrets: SecretBox;
  faults: ArmedFaults;
  hostName: string;
  bundle: WorkflowBundleWithSourceMap;
  /** Starts (or restarts) the workers. */
  startWorkers(): Promise<void>;
  /** Stops the workers (as a crash would, but gracefully). */
  stopWorkers(): Promise<void>;
  stop(): Promise<void>;
}

/** Builds the stack for one suite. */
export async function startStack(opts: { workers?: boolean } = {}): Promise<Stack> {
  const env = await connectTestEnv();
  const bundle = await bundleWorkflows();
  const dataSource = await openTestDataSource();
  const libvirt = new LibvirtProvider(process.env.LIBVIRT_URI ?? 'qemu:///system');
  const conn = await libvirt.get();
  const node = await conn.getNodeInfo();
  const hostName = `t-${randomUUID().slice(0, 8)}`;
  await registerHost(dataSource, {
    name: hostName,
    libvirtUri: libvirt.uri,
    taskQueue: `host-${hostName}`,
    cpus: node.cpus,
    memoryMiB: Math.floor(node.memoryKiB / 1024),
    storagePool: TEST_POOL,
    defaultNetwork: TEST_NETWORK,
    // Probed as the worker does on start (src/worker/host-sync.ts).
    capabilities: await probeQos(conn),
  });
  const secrets = new SecretBox('vmflow-test-secrets-key-0123456789');
  const faults = new ArmedFaults();
  let workers: Worker[] = [];
  let running: Promise<unknown> | null = null;

  const stack: Stack = {
    env,
    dataSource,
    libvirt,
    secrets,
    faults,
    hostName,
    bundle,
    async startWorkers() {
      if (running) return;
      workers = await createWorkers({
        connection: env.nativeConnection,
        namespace: 'default',
        hostName,
        deps: { libvirt, dataSource, secrets, faults },
        workflowBundle: bundle,
      });
      running = Promise.all(workers.map((w) => w.run()));
    },
    async stopWorkers() {
      if (!running) return;
      workers.forEach((w) => w.shutdown());
      await running;
      running = null;
    },
    async stop() {
      await stack.stopWorkers();
      await dataSource.getRepository(Host).delete({ name: hostName });
      await dataSource.destroy();
      await libvirt.close();
      await env.teardown();
    },
  };
  if (opts.workers !== false) await stack.startWorkers();
  return stack;
}
