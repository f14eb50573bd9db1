/** Shared helpers for suites that talk to the test Temporal dev server. */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundle } from '@temporalio/worker';

/** Connects to the dev server started by the global set-up. */
export function connectTestEnv(): Promise<TestWorkflowEnvironment> {
  const address = process.env.TEMPORAL_ADDRESS;
  if (!address) throw new Error('TEMPORAL_ADDRESS unset: run the suites through jest (global set-up)');
  return TestWorkflowEnvironment.createFromExistingServer({ address, namespace: 'default' });
}

/** The file the global set-up writes the run's one bundle of src/workflows to (see bundleWorkflows). */
export const WORKFLOW_BUNDLE_ENV = 'VMFLOW_TEST_WORKFLOW_BUNDLE';

/**
 * src/workflows bundled (call in beforeAll, once per file). Within a jest run, the bundle the global
 * set-up made once for the whole run: bundling (webpack, and loading webpack into each test file's module
 * registry) would otherwise cost every file that starts a worker or replays a history.
 */
export async function bundleWorkflows(): Promise<WorkflowBundle> {
  const file = process.env[WORKFLOW_BUNDLE_ENV];
  if (file) return { code: await readFile(file, 'utf8') };
  return bundleWorkflowsNow();
}

/** Bundles src/workflows now (webpack). */
export function bundleWorkflowsNow(): Promise<WorkflowBundle> {
  return bundleWorkflowCode({
    workflowsPath: path.resolve(__dirname, '../../src/workflows'),
    logger: { info() {}, warn() {}, error: console.error, debug() {}, trace() {}, log() {} } as never,
  });
}

/** A workflow id unique to this test run. */
export function uniqueId(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}
