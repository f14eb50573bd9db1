/**
 * The real stack for integration suites: the test Temporal server, MariaDB, the namespaced libvirtd,
 * and this process's workers (control queue + a host queue unique to the suite) with real activities.
 */
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { type Worker, type WorkflowBundle } from '@temporalio/worker';
import { type DataSource } from 'typeorm';
import { registerHost } from '../../src/activities/db';
import { ArmedFaults, type FaultInjector, type FaultPhase } from '../../src/activities/faults';
import { Host } from '../../src/entities/host';
import {
  type Connection,
  type Network,
  type StoragePool,
  type StorageVolume,
} from '../../src/libvirt/connection';
import { LibvirtProvider } from '../../src/libvirt/provider';
import { probeQos } from '../../src/networks/qos';
import { SecretBox } from '../../src/secrets';
import { type AgentWatcher } from '../../src/worker/agent-watcher';
import { createWorkers } from '../../src/worker/worker';
import { openTestDataSource } from './db';
import { bundleWorkflows, connectTestEnv } from './temporal';

export const TEST_POOL = process.env.STORAGE_POOL ?? 'vmflow';
export const TEST_NETWORK = process.env.DEFAULT_NETWORK ?? 'vmflow-default';

/** Reads a property of `target`, with its methods bound to it (the native wrappers keep `#private` state). */
function bound<T extends object>(target: T, prop: string | symbol): unknown {
  const v: unknown = Reflect.get(target, prop, target);
  return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
}

/** True inside an activity of this type (false outside any activity). */
function inActivity(type: string): boolean {
  try {
    return Context.current().info.activityType === type;
  } catch {
    return false;
  }
}

/**
 * The libvirt the workers get: the real one, except that inside `redefineNetwork`, starting a network
 * (libvirt's `create`) first passes the fault step `restartNetwork:before`. That step sits in the middle
 * of an activity, where the fault interceptor cannot reach; failing libvirt's own start of the new
 * definition is exactly the failure the activity's fallback (define and start the previous one) is for.
 */
export function withRestartFault(libvirt: LibvirtProvider, faults: FaultInjector): LibvirtProvider {
  const inRedefine = () => inActivity('redefineNetwork');
  const network = (net: Network): Network =>
    new Proxy(net, {
      get: (t, p) =>
        p === 'create'
          ? async () => {
              if (inRedefine()) await faults.check('restartNetwork', 'before');
              return t.create();
            }
          : bound(t, p),
    });
  const connection = (conn: Connection): Connection =>
    new Proxy(conn, {
      get: (t, p) =>
        p === 'lookupNetworkByName' || p === 'defineNetwork'
          ? async (...args: Parameters<Connection['defineNetwork']>) =>
              network(await (t[p] as Connection['defineNetwork']).apply(t, args))
          : bound(t, p),
    });
  return new Proxy(libvirt, {
    get: (t, p) => (p === 'get' ? async () => connection(await t.get()) : bound(t, p)),
  });
}

/** Where a segment of an image upload is: the bytes of the staging file it writes into the volume. */
export interface UploadSegment {
  offset: number;
  length: number;
}

/**
 * The libvirt the workers get, with `hook` run before and after each segment an image upload writes (a
 * volume's `uploadFile` inside `uploadImageContent`): the middle of an activity, where the fault interceptor
 * cannot reach. Tests make an upload hang there (to cancel it mid-way) or go slowly (to crash it mid-way).
 */
export function withUploadHook(
  libvirt: LibvirtProvider,
  hook: (phase: FaultPhase, segment: UploadSegment) => void | Promise<void>,
): LibvirtProvider {
  const inUpload = () => inActivity('uploadImageContent');
  const volume = (v: StorageVolume): StorageVolume =>
    new Proxy(v, {
      get: (t, p) =>
        p === 'uploadFile'
          ? async (file: string, opts: { offset?: number; length: number }) => {
              const segment = { offset: opts.offset ?? 0, length: opts.length };
              if (inUpload()) await hook('before', segment);
              const written = await t.uploadFile(file, opts);
              if (inUpload()) await hook('after', segment);
              return written;
            }
          : bound(t, p),
    });
  const pool = (p: StoragePool): StoragePool =>
    new Proxy(p, {
      get: (t, k) =>
        k === 'lookupVolumeByName'
          ? async (name: string) => volume(await t.lookupVolumeByName(name))
          : bound(t, k),
    });
  const connection = (conn: Connection): Connection =>
    new Proxy(conn, {
      get: (t, k) =>
        k === 'lookupPoolByName' ? async (name: string) => pool(await t.lookupPoolByName(name)) : bound(t, k),
    });
  return new Proxy(libvirt, {
    get: (t, p) => (p === 'get' ? async () => connection(await t.get()) : bound(t, p)),
  });
}

/** A running stack; `stop()` in afterAll. */
export interface Stack {
  env: TestWorkflowEnvironment;
  dataSource: DataSource;
  libvirt: LibvirtProvider;
  secrets: SecretBox;
  faults: ArmedFaults;
  hostName: string;
  bundle: WorkflowBundle;
  /** Starts (or restarts) the workers. */
  startWorkers(): Promise<void>;
  /** Stops the workers (as a crash would, but gracefully). */
  stopWorkers(): Promise<void>;
  stop(): Promise<void>;
}

/** Builds the stack for one suite. */
export async function startStack(
  opts: {
    workers?: boolean;
    /**
     * The host's guest agent watcher, given to the guest activities as the worker does (src/worker/main.ts):
     * built once the stack's host is registered, started and stopped with the stack.
     */
    agents?: (s: { libvirt: LibvirtProvider; dataSource: DataSource; hostName: string }) => AgentWatcher;
  } = {},
): Promise<Stack> {
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
  const agents = opts.agents?.({ libvirt, dataSource, hostName }) ?? null;
  await agents?.start();
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
        deps: {
          // Fault steps inside activities: `restartNetwork` (redefineNetwork), `uploadSegment` (an image upload).
          libvirt: withUploadHook(withRestartFault(libvirt, faults), (phase) =>
            faults.check('uploadSegment', phase),
          ),
          dataSource,
          secrets,
          faults,
          agents,
        },
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
      await agents?.stop();
      await dataSource.getRepository(Host).delete({ name: hostName });
      await dataSource.destroy();
      await libvirt.close();
      await env.teardown();
    },
  };
  if (opts.workers !== false) await stack.startWorkers();
  return stack;
}
