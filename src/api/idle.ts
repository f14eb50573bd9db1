/**
 * The one "is anything running on this resource" check of the API, for every kind of resource: a
 * machine or a network (their row names the operation that holds them), a firewall scope or a department
 * (the workflow ids their changes run under). A running operation answers 409 naming it. An operation
 * that has recorded its outcome but whose workflow is still closing is not running: the check gives its
 * workflow the same grace to close as a keyed start does (src/client/closing.ts), then goes on.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { CLOSE_GRACE_MS, closesWithin } from '../client/closing';
import { Operation } from '../entities/operation';
import { type ApiContext } from './context';
import { conflict } from './errors';

/** What is checked: a row holding its current operation, or the workflow ids a scope's changes run under. */
export type IdleTarget =
  | { kind: 'machine' | 'network' | 'image'; currentOperationId: string | null }
  | { kind: 'firewall'; workflowIds: string[] };

/** An operation found running under a resource. */
interface Running {
  operationId: string | null;
  type: string | null;
  workflowId: string;
  /** It has recorded its outcome: only its workflow is still closing. */
  finished: boolean;
}

/** The operation a row names, when the API still sees it running (or closing). */
async function runningOperation(ctx: ApiContext, operationId: string): Promise<Running | null> {
  const view = await ctx.operations.view(operationId).catch(() => null);
  if (!view) return null;
  if (view.status === 'running')
    return { operationId: view.id, type: view.type, workflowId: view.workflowId, finished: false };
  // Finished: its workflow may still hold the id for a moment.
  return view.workflowId
    ? { operationId: view.id, type: view.type, workflowId: view.workflowId, finished: true }
    : null;
}

/** The workflow running under an id, if any (its operation id and type from the memo). */
async function runningWorkflow(ctx: ApiContext, workflowId: string): Promise<Running | null> {
  let memo: { operationId?: string; type?: string };
  try {
    const d = await ctx.temporal.workflow.getHandle(workflowId).describe();
    if (d.status.name !== 'RUNNING') return null;
    memo = (d.memo ?? {}) as typeof memo;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
  const operationId = memo.operationId ?? null;
  const op = operationId
    ? await ctx.ds
        .getRepository(Operation)
        .findOne({ where: { id: operationId }, select: { id: true, status: true } })
    : null;
  return { operationId, type: memo.type ?? null, workflowId, finished: !!op && op.status !== 'running' };
}

/** Still running: not finished, or finished and its workflow did not close within the grace. */
async function stillRunning(ctx: ApiContext, running: Running | null): Promise<boolean> {
  if (!running) return false;
  if (!running.finished) return true;
  await closesWithin(ctx.temporal, running.workflowId, CLOSE_GRACE_MS);
  // Its outcome is recorded: whatever its workflow still does, it changes nothing more. A start that
  // follows meets the same grace (startKeyedWorkflow) and reports a workflow that still has not closed.
  return false;
}

/** 409 when an operation is running on the resource (named); waits for one that is only closing. */
export async function assertIdle(ctx: ApiContext, target: IdleTarget): Promise<void> {
  if (target.kind === 'firewall') {
    for (const workflowId of target.workflowIds) {
      const running = await runningWorkflow(ctx, workflowId);
      if (await stillRunning(ctx, running))
        throw conflict(
          `a firewall operation is running here: ${running!.type ?? 'unknown'} ${running!.operationId ?? workflowId}`,
          {
            title: 'Operation in progress',
            runningOperation: { id: running!.operationId, type: running!.type, workflowId },
          },
        );
    }
    return;
  }
  if (!target.currentOperationId) return;
  const running = await runningOperation(ctx, target.currentOperationId);
  if (await stillRunning(ctx, running))
    throw conflict(
      `another operation is running on this ${target.kind}: ${running!.type} ${running!.operationId}`,
      {
        title: 'Operation in progress',
        runningOperation: { id: running!.operationId, type: running!.type, workflowId: running!.workflowId },
      },
    );
}
