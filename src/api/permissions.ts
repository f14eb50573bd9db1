/**
 * Who may see and do what: the one place where permissions live. REST routes, event catch-up
 * (GET /api/events and a reconnecting socket) and the socket rooms of the live relay all use these rules,
 * so what a caller can read, what it can catch up on and what it is pushed cannot disagree.
 *
 * Roles: ADMIN may do everything. USER works on its own VMs (create them in a department it belongs to,
 * view, power, clone, delete). A department MANAGER also sees and runs every VM of that department, and
 * may change its hardware. A VM the caller may not see does not exist for it (404, never 403).
 *
 * Rooms (Socket.IO), and which events go to each:
 * - `admins`              every event (ADMIN sockets only)
 * - `user:<id>`           events about the VMs that user owns, and about the user itself
 * - `managers:<deptId>`   events about every VM of the department (its MANAGERs only)
 * - `department:<deptId>` department-wide events (`departments:*`), for every member
 * - `authenticated`       events about templates (everyone may list them)
 * A MEMBER is in `user:<own id>` and `department:<id>`, never in `managers:<id>`, and VM events never go to
 * `department:<id>`: a member cannot receive an event about another member's VM.
 */
import { type DataSource } from 'typeorm';
import { DepartmentMember, type DepartmentRole } from '../entities/department';
import { type Image } from '../entities/image';
import { User, type UserRole } from '../entities/user';

/** The authenticated caller, with its department memberships. */
export interface Principal {
  id: string;
  email: string;
  role: UserRole;
  firstName: string;
  lastName: string;
  /** departmentId → role in it. */
  departments: Map<string, DepartmentRole>;
}

/** The fields of a machine that permissions look at. */
export interface MachineRef {
  ownerId: string;
  departmentId: string;
}

/** Where an event belongs: the resource it is about and, for VMs, its owner and department. */
export interface EventRoute {
  resource: string;
  resourceId: string | null;
  ownerId: string | null;
  departmentId: string | null;
}

/** Loads the principal of a user id (null when the user no longer exists). */
export async function loadPrincipal(ds: DataSource, userId: string): Promise<Principal | null> {
  const [user, memberships] = await Promise.all([
    ds.getRepository(User).findOne({ where: { id: userId } }),
    ds.getRepository(DepartmentMember).find({ where: { userId } }),
  ]);
  if (!user) return null;
  return {
    id: user.id,
    email: user.email,
    role: user.role,
    firstName: user.firstName,
    lastName: user.lastName,
    departments: new Map(memberships.map((m) => [m.departmentId, m.role])),
  };
}

/** True for ADMIN. */
export const isAdmin = (p: Principal): boolean => p.role === 'ADMIN';

/** True when the caller is a member (any role) of the department, or ADMIN. */
export const belongsTo = (p: Principal, departmentId: string): boolean =>
  isAdmin(p) || p.departments.has(departmentId);

/**
 * May the caller use (and see) this image? ADMIN every image, in any status; others only `ready` images open
 * to every department (`departmentIds` null) or to one of theirs. An image the caller may not use does not
 * exist for it (404).
 */
export function canUseImage(p: Principal, i: Pick<Image, 'status' | 'departmentIds'>): boolean {
  if (isAdmin(p)) return true;
  if (i.status !== 'ready') return false;
  return i.departmentIds === null || i.departmentIds.some((d) => p.departments.has(d));
}

/** True when the caller manages the department (or is ADMIN). */
export const manages = (p: Principal, departmentId: string): boolean =>
  isAdmin(p) || p.departments.get(departmentId) === 'MANAGER';

/** The departments the caller manages (not counting ADMIN's implicit rights). */
export function managedDepartments(p: Principal): string[] {
  return [...p.departments].filter(([, role]) => role === 'MANAGER').map(([id]) => id);
}

/** May the caller see this VM (and its operations)? Otherwise it does not exist for them (404). */
export function canViewMachine(p: Principal, m: MachineRef): boolean {
  return isAdmin(p) || m.ownerId === p.id || manages(p, m.departmentId);
}

/** May the caller power, clone, delete the VM, or cancel its operations? */
export function canOperateMachine(p: Principal, m: MachineRef): boolean {
  return canViewMachine(p, m);
}

/** May the caller change the VM's hardware? Owners may not: managers of its department and admins may. */
export function canChangeHardware(p: Principal, m: MachineRef): boolean {
  return manages(p, m.departmentId);
}

/** May the caller create a VM in this department, owned by `ownerId`? */
export function canCreateMachine(p: Principal, departmentId: string, ownerId: string): boolean {
  if (ownerId === p.id) return belongsTo(p, departmentId);
  return manages(p, departmentId);
}

/** May the caller see a department (its name, and whether it is a member)? */
export const canViewDepartment = (p: Principal, departmentId: string): boolean => belongsTo(p, departmentId);

/** May the caller see a department's member list? */
export const canViewDepartmentMembers = (p: Principal, departmentId: string): boolean =>
  manages(p, departmentId);

/** May the caller see a user? Admins see everyone, users themselves. */
export const canViewUser = (p: Principal, userId: string): boolean => isAdmin(p) || p.id === userId;

/**
 * The room of a VM's live metrics (`vms:metrics`): a socket joins it only through a subscribe message that
 * passed {@link canViewMachine} (src/api/metrics-feed.ts), which re-checks it when the caller or the VM
 * changes. The relay leaves these rooms alone when it recomputes a socket's own rooms.
 */
export const METRICS_ROOM_PREFIX = 'metrics:';
/** The metrics room of a VM. */
export const metricsRoom = (machineId: string): string => `${METRICS_ROOM_PREFIX}${machineId}`;

/** The rooms a caller's sockets join. */
export function roomsForPrincipal(p: Principal): string[] {
  const rooms = [`user:${p.id}`, 'authenticated'];
  if (isAdmin(p)) rooms.push('admins');
  for (const [dept, role] of p.departments) {
    rooms.push(`department:${dept}`);
    if (role === 'MANAGER') rooms.push(`managers:${dept}`);
  }
  return rooms;
}

/** The rooms an event is delivered to. An event whose owner could not be resolved goes to admins only. */
export function roomsForEvent(e: EventRoute): string[] {
  const rooms = ['admins'];
  switch (e.resource) {
    case 'vms':
    case 'services':
      // A VM (or its services): its owner and the department's managers; a department's services: its managers.
      if (e.ownerId) rooms.push(`user:${e.ownerId}`);
      if (e.departmentId) rooms.push(`managers:${e.departmentId}`);
      break;
    case 'departments':
      if (e.resourceId) rooms.push(`department:${e.resourceId}`);
      break;
    case 'users':
      if (e.resourceId) rooms.push(`user:${e.resourceId}`);
      break;
    case 'templates':
      rooms.push('authenticated');
      break;
    case 'networks':
      // A department's network: its members (they may attach to it); a shared one: everyone.
      rooms.push(e.departmentId ? `department:${e.departmentId}` : 'authenticated');
      break;
    case 'firewall':
      // Filters and policies: the managers of the department concerned (global custom filters: admins).
      if (e.departmentId) rooms.push(`managers:${e.departmentId}`);
      break;
    default:
      break;
  }
  return rooms;
}

/** May the caller receive this event (live or on catch-up)? Exactly: do their rooms meet the event's? */
export function canSeeEvent(p: Principal, e: EventRoute): boolean {
  const mine = new Set(roomsForPrincipal(p));
  return roomsForEvent(e).some((r) => mine.has(r));
}
