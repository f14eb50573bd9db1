/**
 * The workflow tier's harness: the real Temporal dev server (from the Jest global set-up), the
 * workflow bundle built once per file, one control worker per file (stopped in afterAll: the
 * integration tier polls the same control queue) and per test a host worker on a fresh host queue
 * serving the stubs of that test.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure, type Workflow } from '@temporalio/common';
import { type WorkflowHandle, WorkflowFailedError } from '@temporalio/client';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import {
  type LogEntry,
  type Logger,
  type LogLevel,
  type LogMetadata,
  Runtime,
  Worker,
  type WorkflowBundle,
} from '@temporalio/worker';
import type * as workflows from '../../src/workflows';
import {
  CONTROL_TASK_QUEUE,
  type CloneMachineInput,
  type CreateMachineInput,
  type OperationContext,
  hostTaskQueue,
} from '../../src/workflows/shared';
import { type Gate, type Stubs, createStubs } from './workflow-stubs';
import { bundleWorkflows, connectTestEnv, uniqueId } from './temporal';

export type WorkflowName = keyof typeof workflows;

/** Keeps the SDK's and the workflows' log lines (printed only with VMFLOW_TEST_LOG=1). */
class CollectingLogger implements Logger {
  readonly entries: LogEntry[] = [];
  log(level: LogLevel, message: string, meta?: LogMetadata): void {
    this.entries.push({ level, message, meta, timestampNanos: 0n });
    if (process.env.VMFLOW_TEST_LOG === '1') console.error(level, message, meta ?? '');
  }
  trace(m: string, meta?: LogMetadata) {
    this.log('TRACE', m, meta);
  }
  debug(m: string, meta?: LogMetadata) {
    this.log('DEBUG', m, meta);
  }
  info(m: string, meta?: LogMetadata) {
    this.log('INFO', m, meta);
  }
  warn(m: string, meta?: LogMetadata) {
    this.log('WARN', m, meta);
  }
  error(m: string, meta?: LogMetadata) {
    this.log('ERROR', m, meta);
  }
}

let logger: CollectingLogger | undefined;
/** Routes the SDK's, core's and the workflows' log lines to one collecting logger (before any worker). */
export function installLogger(): CollectingLogger {
  if (logger) return logger;
  logger = new CollectingLogger();
  try {
    // Core's own log lines ("Activity not found on completion" after a TRY_CANCEL) go to the same place.
    Runtime.install({
      logger,
      telemetryOptions: { logging: { filter: { core: 'WARN', other: 'WARN' }, forward: {} } },
    });
  } catch {
    // A runtime already exists in this module registry: keep its logger.
  }
  return logger;
}

/** Waits until `cond` holds, polling, or fails after `timeoutMs` with `what` in the message. */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 30_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Resolves with `p`, or fails after `timeoutMs` naming `what`. */
export async function within<T>(p: Promise<T>, what: string, timeoutMs = 30_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Awaits a workflow that must fail, and returns the ApplicationFailure it failed with after checking
 * its `type` (the workflows rethrow every failure as a typed, non-retryable ApplicationFailure).
 */
export async function expectOperationFailure(
  result: Promise<unknown>,
  type: string,
): Promise<ApplicationFailure> {
  const err = await within(
    result.then(
      (value) => {
        throw new Error(`expected the workflow to fail with ${type}, it returned ${JSON.stringify(value)}`);
      },
      (e: unknown) => e,
    ),
    `a workflow failing with ${type}`,
  );
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause;
  expect(cause).toBeInstanceOf(ApplicationFailure);
  expect({
    type: (cause as ApplicationFailure).type,
    message: (cause as ApplicationFailure).message,
  }).toEqual(expect.objectContaining({ type }));
  return cause as ApplicationFailure;
}

/** What every operation input carries, with fresh ids. */
export function operationContext(): OperationContext {
  return { operationId: uniqueId('op'), actorId: 'user-1', idempotencyKey: null };
}

/** A createMachine input with fresh ids (machine `web-1` of `template-1` in `dept-1`), then `overrides`. */
export function createMachineInput(overrides: Partial<CreateMachineInput> = {}): CreateMachineInput {
  return {
    ...operationContext(),
    machineId: uniqueId('m'),
    name: 'web-1',
    templateId: 'template-1',
    departmentId: 'dept-1',
    ownerId: 'owner-1',
    ...overrides,
  };
}

/** A cloneMachine input of `sourceMachineId` with fresh ids (a linked clone named `copy`), then `overrides`. */
export function cloneMachineInput(
  sourceMachineId: string,
  overrides: Partial<CloneMachineInput> = {},
): CloneMachineInput {
  return {
    ...operationContext(),
    sourceMachineId,
    machineId: uniqueId('clone'),
    name: 'copy',
    linked: true,
    ownerId: 'owner-1',
    ...overrides,
  };
}

/**
 * The preamble of every workflow-test file: one {@link WorkflowHarness} for the file, created in
 * `beforeAll` and torn down in `afterAll`. Call it at the top level of the file; the harness it returns
 * stands for the one `beforeAll` makes (use it inside tests and hooks only).
 */
export function useWorkflowHarness(): WorkflowHarness {
  let harness: WorkflowHarness | undefined;
  beforeAll(async () => {
    harness = await WorkflowHarness.create();
  });
  afterAll(async () => {
    await harness?.teardown();
  });
  return new Proxy({} as WorkflowHarness, {
    get(_target, prop) {
      if (!harness) throw new Error('the workflow harness exists only inside tests (after beforeAll)');
      const value: unknown = Reflect.get(harness, prop, harness);
      return typeof value === 'function' ? value.bind(harness) : value;
    },
  });
}

/**
 * One per test file: the connection, the bundle, and the control worker. The control worker (bundle
 * loading costs ~0.5 s) is shared by the tests of the file: its activities route each call to the
 * stubs of the test that started the calling workflow (by workflow id).
 */
export class WorkflowHarness {
  private readonly stubsByWorkflow = new Map<string, Stubs>();
  private control?: { worker: Worker; running: Promise<void> };

  private constructor(
    readonly env: TestWorkflowEnvironment,
    readonly bundle: WorkflowBundle,
    readonly logger: CollectingLogger,
  ) {}

  /** Connects to the dev server, bundles src/workflows and starts the control worker (once per file, in beforeAll). */
  static async create(): Promise<WorkflowHarness> {
    const logger = installLogger();
    const [env, bundle] = await Promise.all([connectTestEnv(), bundleWorkflows()]);
    const h = new WorkflowHarness(env, bundle, logger);
    const worker = await Worker.create({
      ...h.workerOptions(),
      taskQueue: CONTROL_TASK_QUEUE,
      workflowBundle: bundle,
      activities: h.routedControlActivities(),
    });
    h.control = { worker, running: worker.run() };
    return h;
  }

  get client() {
    return this.env.client;
  }

  /** Shuts the control worker down (waiting for it) and closes the connections. */
  async teardown(): Promise<void> {
    if (this.control) {
      this.control.worker.shutdown();
      await this.control.running;
    }
    await this.env.teardown();
  }

  /**
   * Runs `fn` while a host worker serves the hypervisor stubs on the stubs' host queue; workflows that
   * `fn` starts get `stubs` on the control queue too. Afterwards: terminates any workflow `fn` left
   * running, releases every gate, shuts the host worker down.
   */
  async withWorkers<T>(stubs: Stubs, fn: (run: WorkflowRunner) => Promise<T>): Promise<T> {
    const host = await Worker.create({
      ...this.workerOptions(),
      taskQueue: hostTaskQueue(stubs.hostName),
      activities: stubs.hypervisor,
    });
    const runner = new WorkflowRunner(this.env, (workflowId) => this.stubsByWorkflow.set(workflowId, stubs));
    return host.runUntil(async () => {
      try {
        return await fn(runner);
      } finally {
        await runner.terminateOpen();
        stubs.releaseAll();
      }
    });
  }

  private workerOptions() {
    return {
      connection: this.env.nativeConnection,
      namespace: 'default',
      shutdownGraceTime: '2 seconds',
      // Heartbeats are how activities hear of cancellation: do not batch them for 24 s in tests.
      maxHeartbeatThrottleInterval: '50 milliseconds',
      defaultHeartbeatThrottleInterval: '50 milliseconds',
    } as const;
  }

  private routedControlActivities(): Stubs['control'] {
    const names = Object.keys(createStubs({ hostName: 'unused' }).control) as Array<keyof Stubs['control']>;
    const routed: Record<string, (...args: never[]) => Promise<unknown>> = {};
    for (const name of names) {
      routed[name] = (...args: never[]) => {
        const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
        const stubs = this.stubsByWorkflow.get(workflowId);
        if (!stubs)
          throw ApplicationFailure.nonRetryable(`no stubs registered for workflow ${workflowId}`, 'NoStubs');
        return (stubs.control[name] as (...a: never[]) => Promise<unknown>)(...args);
      };
    }
    return routed as Stubs['control'];
  }
}

/** Starts workflows with unique ids on the control queue and remembers them for clean-up. */
export class WorkflowRunner {
  private readonly started: WorkflowHandle[] = [];
  constructor(
    private readonly env: TestWorkflowEnvironment,
    private readonly register: (workflowId: string) => void,
  ) {}

  async start<W extends WorkflowName>(
    workflow: W,
    input: Parameters<(typeof workflows)[W]>[0],
    workflowId = uniqueId(workflow),
  ): Promise<WorkflowHandle<(typeof workflows)[W]>> {
    this.register(workflowId);
    const handle = await this.env.client.workflow.start<Workflow>(workflow, {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId,
      args: [input],
      workflowExecutionTimeout: '1 minute',
    });
    this.started.push(handle);
    return handle as unknown as WorkflowHandle<(typeof workflows)[W]>;
  }

  /** Starts a workflow and waits for its result. */
  async execute<W extends WorkflowName>(
    workflow: W,
    input: Parameters<(typeof workflows)[W]>[0],
  ): Promise<Awaited<ReturnType<(typeof workflows)[W]>>> {
    const handle = await this.start(workflow, input);
    return within(handle.result(), `${workflow} to finish`) as Promise<
      Awaited<ReturnType<(typeof workflows)[W]>>
    >;
  }

  /**
   * Waits until the workflow has processed a cancel request: a workflow task completed after the
   * WorkflowExecutionCancelRequested event (or the run closed).
   */
  async waitUntilCancelSeen(handle: WorkflowHandle): Promise<void> {
    await waitFor(async () => {
      const events = (await handle.fetchHistory()).events ?? [];
      const at = events.findIndex((e) => e.workflowExecutionCancelRequestedEventAttributes);
      return at >= 0 && events.slice(at).some((e) => e.workflowTaskCompletedEventAttributes);
    }, 'the workflow to process the cancel request');
  }

  /**
   * For a test that cancels while `gate` holds an activity that ignores cancellation (a DB write): once
   * the workflow has processed the cancel, if it went on to schedule clean-up without waiting for that
   * activity, lets the clean-up finish first (as it can in production), then releases the gate.
   */
  async releaseAfterCancel(handle: WorkflowHandle, gate: Gate): Promise<void> {
    await this.waitUntilCancelSeen(handle);
    const events = (await handle.fetchHistory()).events ?? [];
    const cancelAt = events.findIndex((e) => e.workflowExecutionCancelRequestedEventAttributes);
    if (events.slice(cancelAt).some((e) => e.activityTaskScheduledEventAttributes)) {
      await within(
        handle.result().catch(() => undefined),
        'the clean-up to finish',
      );
    }
    gate.release();
  }

  async terminateOpen(): Promise<void> {
    for (const h of this.started) {
      try {
        const d = await h.describe();
        if (d.status.name !== 'RUNNING') continue;
        // Left running: the test failed or timed out. Say where the workflow was stuck.
        const pending = (d.raw.pendingActivities ?? []).map((a) => ({
          activity: a.activityType?.name,
          state: a.state,
          attempt: a.attempt,
          lastFailure: a.lastFailure?.message,
        }));
        console.warn(
          `terminating ${h.workflowId}, still running; pending activities:`,
          JSON.stringify(pending),
        );
        await h.terminate('test over');
      } catch {
        /* already gone */
      }
    }
  }
}
