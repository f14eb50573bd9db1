import { Context } from '@temporalio/activity';
import { type EntityManager } from 'typeorm';
import { Event } from '../entities/event';

/** An event as activities write it (DESIGN decision 7). */
export interface EventInput {
  resource: string;
  action: string;
  resourceId: string | null;
  payload: Record<string, unknown>;
  actorId?: string | null;
  workflowId?: string | null;
  ownerId?: string | null;
  departmentId?: string | null;
  /** Makes the write idempotent: a retried activity writes the same key, and the second insert is ignored. */
  dedupeKey: string;
}

/**
 * Writes events to the event table, inside the caller's transaction when given one, so that a state
 * change and its event commit together. The API relays new rows to Socket.IO.
 */
export async function publishEvent(manager: EntityManager, ev: EventInput): Promise<void> {
  await manager
    .createQueryBuilder()
    .insert()
    .into(Event)
    .values({
      resource: ev.resource,
      action: ev.action,
      resourceId: ev.resourceId,
      payload: ev.payload as never,
      actorId: ev.actorId ?? null,
      workflowId: ev.workflowId ?? null,
      ownerId: ev.ownerId ?? null,
      departmentId: ev.departmentId ?? null,
      dedupeKey: ev.dedupeKey,
    })
    .orIgnore()
    .execute();
}

/** The id of the workflow running the current activity (events and operations carry it); null outside one. */
export function currentWorkflowId(): string | null {
  try {
    return Context.current().info.workflowExecution?.workflowId ?? null;
  } catch {
    return null;
  }
}
