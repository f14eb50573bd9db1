import { Context } from '@temporalio/activity';

/** Activities write events through the module the API shares (src/events/publish.ts). */
export { publishEvent, type EventInput } from '../events/publish';

/** The id of the workflow running the current activity (events and operations carry it); null outside one. */
export function currentWorkflowId(): string | null {
  try {
    return Context.current().info.workflowExecution?.workflowId ?? null;
  } catch {
    return null;
  }
}
