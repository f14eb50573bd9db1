/**
 * The events the API writes itself, for the rows it changes without a workflow (users, departments,
 * templates, a custom filter's row), in the caller's transaction.
 */
import { randomUUID } from 'node:crypto';
import { type EntityManager } from 'typeorm';
import { DepartmentMember } from '../entities/department';
import { type FirewallFilter } from '../entities/firewall';
import { type User } from '../entities/user';
import { publishEvent } from '../events/publish';
import { type Principal } from './permissions';
import { userView } from './views';
import { filterView } from './views-firewall';

/** Writes a `<resource>:<action>` event for a department or template (departments: to its rooms). */
export async function resourceEvent(
  m: EntityManager,
  resource: string,
  action: string,
  id: string,
  payload: Record<string, unknown>,
  actor: Principal,
): Promise<void> {
  await publishEvent(m, {
    resource,
    action,
    resourceId: id,
    payload,
    actorId: actor.id,
    departmentId: resource === 'departments' ? id : null,
    dedupeKey: `api:${randomUUID()}`,
  });
}

/** Writes a `users:<action>` event for a user (to admins and the user). */
export async function userEvent(
  m: EntityManager,
  action: string,
  user: User,
  actor: Principal | null,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const memberships = await m.find(DepartmentMember, { where: { userId: user.id } });
  await publishEvent(m, {
    resource: 'users',
    action,
    resourceId: user.id,
    payload: { user: userView(user, new Map(memberships.map((x) => [x.departmentId, x.role]))), ...extra },
    actorId: actor?.id ?? null,
    dedupeKey: `api:${randomUUID()}`,
  });
}

/**
 * Writes a `firewall:<action>` event for a change the API makes itself (a filter's row), to the managers of
 * the department concerned (`departmentId`; null: a global custom filter, admins only).
 */
export async function filterEvent(
  m: EntityManager,
  action: 'filter_created' | 'filter_updated' | 'filter_deleted',
  f: FirewallFilter,
  actor: Principal,
  departmentId: string | null = f.departmentId,
): Promise<void> {
  await publishEvent(m, {
    resource: 'firewall',
    action,
    resourceId: f.id,
    payload: { filterId: f.id, filter: filterView(f) },
    actorId: actor.id,
    departmentId,
    dedupeKey: `api:${randomUUID()}`,
  });
}
