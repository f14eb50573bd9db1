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
import { eventWakeSubscriber, METRICS_CHANNEL, redisWaker } from '../events/wake';
import { LibvirtProvider } from '../libvirt/provider';
import { SecretBox } from '../secrets';
import { createAgentWatcher, libvirtDomainSource } from './agent-watcher';
import { Machine } from '../entities/machine';
import { registerThisHost, startHypervisorWatch } from './host-sync';
import { createMetricsCollector } from './metrics-collector';
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
  const wakeLog = {
    warn: (o: object, m: string) => console.warn(m, o),
    info: (o: object, m: string) => console.log(m, o),
  };
  const waker = config.REDIS_URL ? redisWaker(config.REDIS_URL, wakeLog) : null;
  const dataSource = createDataSource(config.DATABASE_URL, {
    subscribers: waker ? [eventWakeSubscriber(waker)] : [],
  });
  await dataSource.initialize();
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const deps = { libvirt, dataSource, secrets: new SecretBox(config.secretsKey), virtType: config.VIRT_TYPE };
  const host = await registerThisHost(deps, config);
  const watch = await startHypervisorWatch(deps, host.id);
  /** Only this host's machines, as this worker's database knows them (agents and metrics alike). */
  const owns = (id: string) => dataSource.getRepository(Machine).exists({ where: { id, hostId: host.id } });
  // The guest agents of this host's VMs: status changes logged; guest reads and commands go through it;
  // their samples feed the metrics below.
  const agents =
    config.AGENT_WATCHER === 'on'
      ? createAgentWatcher({
          source: libvirtDomainSource(libvirt, { owns }),
          hostName: config.HOST_NAME,
          logger: pino({ level: config.LOG_LEVEL, base: { component: 'agent-watcher' } }),
          reconcileMs: config.AGENT_WATCHER_RECONCILE_MS,
        })
      : null;
  await agents?.start();
  // VM metrics (docs/metrics.md): libvirt bulk stats + the agents' samples, stored in batches; each batch
  // committed wakes the API processes' live feeds.
  const metricsWaker =
    config.REDIS_URL && config.METRICS === 'on'
      ? redisWaker(config.REDIS_URL, wakeLog, METRICS_CHANNEL)
      : null;
  const collector =
    config.METRICS === 'on'
      ? createMetricsCollector({
          libvirt,
          dataSource,
          hostId: host.id,
          owns,
          agentSample: (id) => {
            const s = agents?.status(id);
            return s?.metrics && s.metricsAt ? { metrics: s.metrics, at: s.metricsAt } : null;
          },
          logger: pino({ level: config.LOG_LEVEL, base: { component: 'metrics' } }),
          ...config.metrics,
          onBatch: () => metricsWaker?.wake(),
        })
      : null;
  collector?.start();
  // Prometheus /metrics (docs/observability.md).
  const prometheus = createWorkerMetrics({
    hostName: config.HOST_NAME,
    vms: libvirtVmStats(libvirt, dataSource, host.id),
    agents,
    sdkUrl: `http://${sdkMetrics}/metrics`,
    onError: (err, what) => console.warn(`metrics: ${what}: ${(err as Error).message}`),
  });
  const metricsServer = await prometheus.serve(config.METRICS_HOST, config.WORKER_METRICS_PORT);
  console.log(`worker metrics on ${metricsServer.url}`);
  try {
    const workers = await createWorkers({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      hostName: config.HOST_NAME,
      // The host's guest activities reach vmflow's agents through the watcher (docs/guest-commands.md).
      deps: { ...deps, agents },
      activityObserver: prometheus.activityObserver,
    });
    console.log(
      `worker ready: queues vmflow-control and ${config.hostTaskQueue} on ${config.TEMPORAL_ADDRESS}`,
    );
    await runWorkers(workers);
  } finally {
    await collector?.stop();
    await metricsWaker?.close();
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
