/**
 * Who may see and change filters, department policies and service settings: the firewall's half of
 * src/api/permissions.ts, with the same model. Something the caller may not see does not exist for it
 * (404); something it may see but not change is a 403.
 *
 * - Department filter, policy and services: seen and changed by admins and the department's managers.
 *   The policy and the service defaults of a department are also readable by its members (the department
 *   view carries the policy; a member's VMs fall back to those defaults).
 * - VM filter and VM services: seen by the machine's owner, its department's managers and admins; changed
 *   by the managers and admins only (the owner may read).
 * - Custom filters: a filter scoped to a department is seen and changed by that department's managers; a
 *   global one is seen by every manager and changed by admins only. Admins see and change everything.
 * - A filter may include a custom filter that is global or scoped to the same department only.
 */
import { type FirewallFilter } from '../entities/firewall';
import {
  belongsTo,
  canViewMachine,
  isAdmin,
  managedDepartments,
  manages,
  type MachineRef,
  type Principal,
} from './permissions';

/** The fields of a filter that permissions look at; `machine` is the VM of a `vm` filter (when it exists). */
export interface FilterRef {
  filter: Pick<FirewallFilter, 'kind' | 'departmentId' | 'machineId'>;
  machine?: MachineRef | null;
}

/** True when the caller manages at least one department (or is ADMIN). */
export const managesAny = (p: Principal): boolean => isAdmin(p) || managedDepartments(p).length > 0;

/** May the caller see this filter (its rules and what it includes)? */
export function canViewFilter(p: Principal, { filter, machine }: FilterRef): boolean {
  if (isAdmin(p)) return true;
  switch (filter.kind) {
    case 'department':
      return filter.departmentId !== null && manages(p, filter.departmentId);
    case 'vm':
      return !!machine && canViewMachine(p, machine);
    case 'custom':
      return filter.departmentId === null ? managesAny(p) : manages(p, filter.departmentId);
    default:
      return false;
  }
}

/** May the caller change this filter (rules, includes, name)? */
export function canEditFilter(p: Principal, { filter, machine }: FilterRef): boolean {
  if (isAdmin(p)) return true;
  switch (filter.kind) {
    case 'department':
      return filter.departmentId !== null && manages(p, filter.departmentId);
    case 'vm':
      return !!machine && manages(p, machine.departmentId);
    case 'custom':
      return filter.departmentId !== null && manages(p, filter.departmentId);
    default:
      return false;
  }
}

/** May the caller create a custom filter scoped to this department (null: global)? */
export function canCreateFilter(p: Principal, departmentId: string | null): boolean {
  return departmentId === null ? isAdmin(p) : manages(p, departmentId);
}

/** May the caller read a department's policy and service defaults? */
export const canViewDepartmentFirewall = (p: Principal, departmentId: string): boolean =>
  belongsTo(p, departmentId);

/** May the caller change a department's policy, services or filter? */
export const canEditDepartmentFirewall = (p: Principal, departmentId: string): boolean =>
  manages(p, departmentId);

/** May the caller read a VM's services (as the VM itself)? */
export const canViewMachineFirewall = (p: Principal, m: MachineRef): boolean => canViewMachine(p, m);

/** May the caller change a VM's rules, included filters and services? Owners may not. */
export const canEditMachineFirewall = (p: Principal, m: MachineRef): boolean => manages(p, m.departmentId);

/** May the caller flush the filters of one department (null: every filter)? */
export function canFlush(p: Principal, departmentId: string | null): boolean {
  return departmentId === null ? isAdmin(p) : manages(p, departmentId);
}

/** May the caller move a VM from its department to another? Admins, or managers of both. */
export function canMoveMachine(p: Principal, m: MachineRef, targetDepartmentId: string): boolean {
  return manages(p, m.departmentId) && manages(p, targetDepartmentId);
}

/**
 * May a filter scoped to `scopeDepartmentId` (null: global) include this custom filter? A global filter
 * includes only global ones; a department's (or its VMs') filter, global ones and its own department's.
 */
export function mayInclude(
  scopeDepartmentId: string | null,
  included: Pick<FirewallFilter, 'kind' | 'departmentId'>,
): boolean {
  if (included.kind !== 'custom') return false;
  return included.departmentId === null || included.departmentId === scopeDepartmentId;
}

/**
 * The SQL condition (TypeORM query-builder form, filter alias `f`) that scopes a filter list to what the
 * caller may see: exactly {@link canViewFilter}. Null for admins (everything).
 */
export function filterScope(
  p: Principal,
  alias = 'f',
): { where: string; params: Record<string, unknown> } | null {
  if (isAdmin(p)) return null;
  const managed = managedDepartments(p);
  const parts = [
    `(${alias}.kind = 'vm' AND ${alias}.machineId IN (SELECT sm.id FROM machine sm WHERE sm.ownerId = :fsMe${
      managed.length ? ' OR sm.departmentId IN (:...fsManaged)' : ''
    }))`,
  ];
  if (managed.length) {
    parts.push(`(${alias}.kind = 'department' AND ${alias}.departmentId IN (:...fsManaged))`);
    parts.push(
      `(${alias}.kind = 'custom' AND (${alias}.departmentId IS NULL OR ${alias}.departmentId IN (:...fsManaged)))`,
    );
  }
  return { where: `(${parts.join(' OR ')})`, params: { fsMe: p.id, fsManaged: managed } };
}
