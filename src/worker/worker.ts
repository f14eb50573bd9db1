import { type NativeConnection, Worker, type WorkflowBundleOption } from '@temporalio/worker';
import { type ActivityObserver } from '../activities/interceptors';
import {
  activityInterceptors,
  createControlActivities,
  createHypervisorActivities,
  type ActivityDeps,
} from '../activities';
import { CONTROL_TASK_QUEUE, hostTaskQueue } from '../workflows/shared';

/** Options for {@link createWorkers}. */
export interface WorkerOptions {
  connection: NativeConnection;
  namespace: string;
  hostName: string;
  deps: ActivityDeps;
  /** A pre-built bundle (tests bundle once per file); default: bundle src/workflows at start. */
  workflowBundle?: WorkflowBundleOption;
  /** Serve the control queue (workflows + DB/event activities). Default true. */
  control?: boolean;
  /** Serve this host's queue (hypervisor activities). Default true. */
  hypervisor?: boolean;
  /** Told of every activity's outcome and duration (the worker's `/metrics`); default: nothing measured. */
  activityObserver?: ActivityObserver;
}

/**
 * Builds the workers of one process: the control worker (workflows, DB and event activities) and the
 * host worker (hypervisor activities on `host-<hostName>`). One process serves both by default
 * (DESIGN decision 5); a hypervisor-only host runs with `control: false`.
 */
export async function createWorkers(opts: WorkerOptions): Promise<Worker[]> {
  const workers: Worker[] = [];
  // Every activity heartbeats; with test deps, armed faults fire around it (production deps have none).
  const interceptors = {
    activity: activityInterceptors({ faults: opts.deps.faults, observer: opts.activityObserver }),
  };
  if (opts.control !== false) {
    workers.push(
      await Worker.create({
        connection: opts.connection,
        namespace: opts.namespace,
        taskQueue: CONTROL_TASK_QUEUE,
        ...(opts.workflowBundle
          ? { workflowBundle: opts.workflowBundle }
          : { workflowsPath: require.resolve('../workflows') }),
        activities: createControlActivities(opts.deps),
        interceptors,
      }),
    );
  }
  if (opts.hypervisor !== false) {
    workers.push(
      await Worker.create({
        connection: opts.connection,
        namespace: opts.namespace,
        taskQueue: hostTaskQueue(opts.hostName),
        activities: createHypervisorActivities(opts.deps),
        interceptors,
      }),
    );
  }
  return workers;
}

/** Runs workers until shutdown (SIGINT/SIGTERM) and rethrows the first failure. */
export async function runWorkers(workers: Worker[]): Promise<void> {
  await Promise.all(workers.map((w) => w.run()));
}
