/**
 * How a recorded scenario (history-scenarios*.ts) drives its run to the end: wait for it to close, or cancel
 * it once an activity has started. In a module of its own, so every scenario list imports it without
 * importing history-scenarios.ts (which imports them).
 */
import type { WorkflowHandle } from '@temporalio/client';
import { within } from '../support/workflow-harness';
import type { Stubs } from '../support/workflow-stubs';

/** Waits for a run to close. */
export const settle = async (handle: WorkflowHandle) => {
  await within(
    handle.result().catch(() => undefined),
    `${handle.workflowId} to close`,
    30_000,
  );
  return handle;
};

/** Cancels the run once `label` has started (a cancellable gate), and waits for it to close. */
export async function cancelDuring(
  stubs: Stubs,
  label: string,
  start: () => Promise<WorkflowHandle>,
): Promise<WorkflowHandle> {
  const gate = stubs.gate(label);
  const handle = await start();
  await within(gate.entered, `${label} to start`);
  await handle.cancel();
  return settle(handle);
}
