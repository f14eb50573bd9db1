/**
 * Reading the event table for clients: where each event belongs (its route), the shape clients receive,
 * and the permission-filtered catch-up used by GET /api/events and by reconnecting sockets.
 *
 * Most VM events carry their owner and department. Some do not: the first steps of a create run before the
 * machine row exists, and the last steps of a destroy after it is gone. Their route is resolved from the
 * operation request the API recorded, else from the machine row, else from the operation's own input;
 * an event that still cannot be placed goes to admins only.
 */
import { type DataSource } from 'typeorm';
import { Event } from '../entities/event';
import { Machine } from '../entities/machine';
import { Operation } from '../entities/operation';
import { OperationRequest } from '../entities/operation-request';
import { canSeeEvent, isAdmin, managedDepartments, type EventRoute, type Principal } from './permissions';

/** An event as clients receive it (socket payload and catch-up). */
export interface ClientEvent {
  eventId: number;
  resource: string;
  action: string;
  resourceId: string | null;
  data: Record<string, unknown>;
  triggeredBy: string | null;
  timestamp: string;
}

/** An event row with its resolved route. */
export interface RoutedEvent {
  row: Event;
  route: EventRoute;
}

/** The client shape of a row. */
export function toClientEvent(row: Event): ClientEvent {
  return {
    eventId: Number(row.id),
    resource: row.resource,
    action: row.action,
    resourceId: row.resourceId,
    data: row.payload ?? {},
    triggeredBy: row.actorId,
    timestamp: new Date(row.createdAt).toISOString(),
  };
}

/** The Socket.IO event name of a row: `<resource>:<action>`. */
export const eventName = (row: Pick<Event, 'resource' | 'action'>) => `${row.resource}:${row.action}`;

type Owner = { ownerId: string; departmentId: string };

/** Resolves routes, caching what it learns (a machine's owner and department never change). */
export class EventRouter {
  private readonly byOperation = new Map<string, Owner | null>();
  private readonly byMachine = new Map<string, Owner>();
  private static readonly MAX = 50_000;

  constructor(private readonly ds: DataSource) {}

  /** Routes a batch of rows (in their order). */
  async route(rows: Event[]): Promise<RoutedEvent[]> {
    const out: RoutedEvent[] = [];
    for (const row of rows) {
      const route: EventRoute = {
        resource: row.resource,
        resourceId: row.resourceId,
        ownerId: row.ownerId,
        departmentId: row.departmentId,
      };
      if (row.resource === 'vms') {
        if (route.ownerId && route.departmentId && row.resourceId)
          this.remember(this.byMachine, row.resourceId, route as Owner);
        else {
          const owner = await this.resolve(row);
          if (owner) {
            route.ownerId = owner.ownerId;
            route.departmentId = owner.departmentId;
          }
        }
      }
      out.push({ row, route });
    }
    return out;
  }

  private remember<V>(map: Map<string, V>, key: string, value: V): void {
    if (map.size >= EventRouter.MAX) map.delete(map.keys().next().value as string);
    map.set(key, value);
  }

  private async resolve(row: Event): Promise<Owner | null> {
    const operationId = typeof row.payload?.operationId === 'string' ? row.payload.operationId : null;
    if (row.resourceId && this.byMachine.has(row.resourceId)) return this.byMachine.get(row.resourceId)!;
    if (operationId) {
      const known = this.byOperation.get(operationId);
      if (known !== undefined) return known;
      const req = await this.ds.getRepository(OperationRequest).findOne({ where: { id: operationId } });
      if (req)
        return this.learn(row, operationId, {
          ownerId: req.ownerId ?? '',
          departmentId: req.departmentId ?? '',
        });
    }
    if (row.resourceId) {
      const m = await this.ds
        .getRepository(Machine)
        .findOne({ where: { id: row.resourceId }, select: { id: true, ownerId: true, departmentId: true } });
      if (m) return this.learn(row, operationId, { ownerId: m.ownerId, departmentId: m.departmentId });
    }
    if (operationId) {
      // Operations started outside the API (scripts, tests): the workflow's recorded input.
      const op = await this.ds.getRepository(Operation).findOne({ where: { id: operationId } });
      const input = (op?.input ?? {}) as {
        ownerId?: string;
        departmentId?: string;
        sourceMachineId?: string;
      };
      let departmentId = input.departmentId;
      if (!departmentId && input.sourceMachineId) {
        const src = await this.ds
          .getRepository(Machine)
          .findOne({ where: { id: input.sourceMachineId }, select: { id: true, departmentId: true } });
        departmentId = src?.departmentId;
      }
      if (input.ownerId && departmentId)
        return this.learn(row, operationId, { ownerId: input.ownerId, departmentId });
    }
    if (row.resourceId) {
      const last = await this.ds
        .getRepository(Event)
        .createQueryBuilder('e')
        .where(
          'e.resourceId = :id AND e.resource = :vms AND e.ownerId IS NOT NULL AND e.departmentId IS NOT NULL',
          { id: row.resourceId, vms: 'vms' },
        )
        .orderBy('e.id', 'DESC')
        .getOne();
      if (last)
        return this.learn(row, operationId, { ownerId: last.ownerId!, departmentId: last.departmentId! });
    }
    return null;
  }

  private learn(row: Event, operationId: string | null, owner: Owner): Owner {
    if (operationId) this.remember(this.byOperation, operationId, owner);
    if (row.resourceId) this.remember(this.byMachine, row.resourceId, owner);
    return owner;
  }
}

/** A page of catch-up events. */
export interface CatchUpPage {
  events: Array<{ row: Event; event: ClientEvent }>;
  /** The last id scanned (visible or not): continue after it. */
  lastEventId: number;
  hasMore: boolean;
}

/**
 * The events a caller may see with `after < id <= upTo`, in id order, at most `limit` of them. The SQL
 * narrows the scan; {@link canSeeEvent} decides, on resolved routes, exactly as the live relay does.
 */
export async function loadVisibleEvents(
  ds: DataSource,
  router: EventRouter,
  p: Principal,
  after: number,
  upTo: number,
  limit: number,
): Promise<CatchUpPage> {
  const events: CatchUpPage['events'] = [];
  let cursor = after;
  const batch = Math.min(Math.max(limit, 100), 1000);
  // Bounded: scan at most 20 batches per call; the caller continues from lastEventId.
  for (let round = 0; round < 20 && cursor < upTo && events.length < limit; round++) {
    const qb = ds
      .getRepository(Event)
      .createQueryBuilder('e')
      .where('e.id > :cursor AND e.id <= :upTo', { cursor, upTo });
    if (!isAdmin(p)) {
      const depts = [...p.departments.keys()];
      const managed = managedDepartments(p);
      const parts = [
        `(e.resource = 'vms' AND (e.ownerId = :me OR e.ownerId IS NULL OR e.departmentId IS NULL${managed.length ? ' OR e.departmentId IN (:...managed)' : ''}))`,
        `(e.resource = 'users' AND e.resourceId = :me)`,
        `(e.resource = 'templates')`,
        `(e.resource = 'networks' AND e.departmentId IS NULL)`,
        `(e.resource = 'services' AND e.ownerId = :me)`,
      ];
      if (depts.length) {
        parts.push(`(e.resource = 'departments' AND e.resourceId IN (:...depts))`);
        parts.push(`(e.resource = 'networks' AND e.departmentId IN (:...depts))`);
      }
      if (managed.length)
        parts.push(`(e.resource IN ('firewall', 'services') AND e.departmentId IN (:...managed))`);
      qb.andWhere(`(${parts.join(' OR ')})`, { me: p.id, managed, depts });
    }
    const rows = await qb.orderBy('e.id', 'ASC').limit(batch).getMany();
    if (!rows.length) {
      cursor = upTo;
      break;
    }
    for (const { row, route } of await router.route(rows)) {
      cursor = Number(row.id);
      if (canSeeEvent(p, route)) events.push({ row, event: toClientEvent(row) });
      if (events.length >= limit) break;
    }
    if (rows.length < batch && events.length < limit) {
      cursor = upTo;
      break;
    }
  }
  return { events, lastEventId: cursor, hasMore: cursor < upTo };
}
