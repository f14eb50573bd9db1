/**
 * The one rule for an operation that has finished but whose workflow has not closed yet: an operation
 * records its outcome (`succeeded`, `failed`, `cancelled`) a moment before its workflow closes, so during
 * that moment its workflow id is still taken. Whoever meets such a workflow — a keyed start, or the API's
 * "is anything running here" check — gives it {@link CLOSE_GRACE_MS} to close before treating it as running.
 */
import { type Client } from '@temporalio/client';

/** How long a conflicting workflow may take to close before it counts as running. */
export const CLOSE_GRACE_MS = 1500;

/**
 * Waits up to `ms` for the current run of `workflowId` to close. True when it closed (however it ended),
 * false when it is still open after `ms` (or `ms` ≤ 0).
 */
export async function closesWithin(client: Client, workflowId: string, ms: number): Promise<boolean> {
  if (ms <= 0) return false;
  let timer: NodeJS.Timeout | undefined;
  const closed = await Promise.race([
    client.workflow
      .getHandle(workflowId)
      .result()
      .then(
        () => true,
        () => true,
      ),
    new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), ms);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
  return closed;
}
