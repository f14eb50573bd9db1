/**
 * Test workflow of closing-window.test.ts: holds a resource's workflow id like an operation does, and,
 * when asked, reports the operation's outcome first — so the id stays taken for `holdMs` after the
 * operation says `succeeded`, the moment a real operation spends closing, made long enough to observe.
 */
import { proxyActivities, sleep } from '@temporalio/workflow';

/** The activity the test worker registers. */
export interface ClosingActivities {
  /** Records the operation as finished (`succeeded`), as runOperation's last step does. */
  reportSucceeded(input: { operationId: string }): Promise<void>;
}

const { reportSucceeded } = proxyActivities<ClosingActivities>({ startToCloseTimeout: '10 seconds' });

/** Holds its workflow id for `holdMs`; with `report`, after recording the operation as succeeded. */
export async function holdOpen(input: {
  operationId: string;
  report: boolean;
  holdMs: number;
}): Promise<void> {
  if (input.report) await reportSucceeded({ operationId: input.operationId });
  await sleep(input.holdMs);
}
