/**
 * The worker process: `npm run worker`. Connects to Temporal, the database and this host's libvirt,
 * registers the host, reconciles machine statuses with libvirt, follows libvirt's lifecycle events and the
 * guest agents of its VMs (AGENT_WATCHER), then serves the control queue and the host queue until
 * SIGINT/SIGTERM.
 */
import './threadpool';
import 'reflect-metadata';
import { NativeConnection } from '@temporalio/worker';
import pino from 'pino';
import { loadConfig } from '../config';
import { createDataSource } from '../entities/data-source';
import { eventWakeSubscriber, redisWaker } from '../events/wake';
import { LibvirtProvider } from '../libvirt/provider';
import { SecretBox } from '../secrets';
import { createAgentWatcher, libvirtDomainSource } from './agent-watcher';
import { Machine } from '../entities/machine';
import { registerThisHost, startHypervisorWatch } from './host-sync';
import { createWorkers, runWorkers } from './worker';

async function main(): Promise<void> {
  const config = loadConfig();
  for (const w of config.warnings) console.warn(`WARNING: ${w}`);
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
  // The guest agents of this host's VMs: status changes logged; guest reads and commands go through it.
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
  try {
    const workers = await createWorkers({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      hostName: config.HOST_NAME,
      // The host's guest activities reach vmflow's agents through the watcher (docs/guest-commands.md).
      deps: { ...deps, agents },
    });
    console.log(
      `worker ready: queues vmflow-control and ${config.hostTaskQueue} on ${config.TEMPORAL_ADDRESS}`,
    );
    await runWorkers(workers);
  } finally {
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
