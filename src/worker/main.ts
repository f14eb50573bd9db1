/**
 * The worker process: `npm run worker`. Connects to Temporal, the database and this host's libvirt,
 * registers the host, reconciles machine statuses with libvirt, follows libvirt's lifecycle events and the
 * guest agents of its VMs (AGENT_WATCHER), serves Prometheus `/metrics` (docs/observability.md), then serves
 * the control queue and the host queue until SIGINT/SIGTERM.
 */
import './threadpool';
import 'reflect-metadata';
import { NativeConnection, Runtime } from '@temporalio/worker';
import pino from 'pino';
import { loadConfig } from '../config';
import { createDataSource } from '../entities/data-source';
import { eventWakeSubscriber, redisWaker } from '../events/wake';
import { LibvirtProvider } from '../libvirt/provider';
import { SecretBox } from '../secrets';
import { createAgentWatcher, libvirtDomainSource } from './agent-watcher';
import { Machine } from '../entities/machine';
import { registerThisHost, startHypervisorWatch } from './host-sync';
import { createWorkerMetrics, libvirtVmStats } from './metrics';
import { createWorkers, runWorkers } from './worker';

async function main(): Promise<void> {
  const config = loadConfig();
  for (const w of config.warnings) console.warn(`WARNING: ${w}`);
  // The SDK's runtime metrics on loopback only, before any connection or worker exists (the SDK requires
  // it); the worker's own /metrics fetches and includes them.
  const sdkMetrics = `127.0.0.1:${config.TEMPORAL_METRICS_PORT}`;
  Runtime.install({
    telemetryOptions: {
      metrics: {
        globalTags: { host: config.HOST_NAME }, // as on the worker's own families
        prometheus: {
          bindAddress: sdkMetrics,
          countersTotalSuffix: true,
          unitSuffix: true,
          useSecondsForDurations: true,
        },
      },
    },
  });
  const libvirt = new LibvirtProvider(config.LIBVIRT_URI);
  await libvirt.get(); // fail fast with libvirt's own message when the hypervisor is unreachable
  // Every event an activity commits wakes the API relays at once (they poll only as a fallback).
  const waker = config.REDIS_URL
    ? redisWaker(config.REDIS_URL, { warn: (o, m) => console.warn(m, o), info: (o, m) => console.log(m, o) })
    : null;
  const dataSource = createDataSource(config.DATABASE_URL, {
    subscribers: waker ? [eventWakeSubscriber(waker)] : [],
  });
  await dataSource.initialize();
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const deps = { libvirt, dataSource, secrets: new SecretBox(config.secretsKey), virtType: config.VIRT_TYPE };
  const host = await registerThisHost(deps, config);
  const watch = await startHypervisorWatch(deps, host.id);
  // The guest agents of this host's VMs: status changes logged, nothing stored yet.
  const agents =
    config.AGENT_WATCHER === 'on'
      ? createAgentWatcher({
          // Only this host's machines, as this worker's database knows them.
          source: libvirtDomainSource(libvirt, {
            owns: (id) => dataSource.getRepository(Machine).exists({ where: { id, hostId: host.id } }),
          }),
          hostName: config.HOST_NAME,
          logger: pino({ level: config.LOG_LEVEL, base: { component: 'agent-watcher' } }),
          reconcileMs: config.AGENT_WATCHER_RECONCILE_MS,
        })
      : null;
  await agents?.start();
  const metrics = createWorkerMetrics({
    hostName: config.HOST_NAME,
    vms: libvirtVmStats(libvirt, dataSource, host.id),
    agents,
    sdkUrl: `http://${sdkMetrics}/metrics`,
    onError: (err, what) => console.warn(`metrics: ${what}: ${(err as Error).message}`),
  });
  const metricsServer = await metrics.serve(config.METRICS_HOST, config.WORKER_METRICS_PORT);
  console.log(`worker metrics on ${metricsServer.url}`);
  try {
    const workers = await createWorkers({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      hostName: config.HOST_NAME,
      deps,
      activityObserver: metrics.activityObserver,
    });
    console.log(
      `worker ready: queues vmflow-control and ${config.hostTaskQueue} on ${config.TEMPORAL_ADDRESS}`,
    );
    await runWorkers(workers);
  } finally {
    await metricsServer.close();
    await agents?.stop();
    await watch.stop();
    await connection.close();
    await dataSource.destroy();
    await waker?.close();
    await libvirt.close();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
