/** What the API returns for each entity: explicit fields only (no hashes, no secrets, no internals). */
import { type Department, type DepartmentRole } from '../entities/department';
import { type Machine } from '../entities/machine';
import { type MachineTemplate } from '../entities/machine-template';
import { type User } from '../entities/user';
import { type Principal } from './permissions';

const iso = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString() : null);

/** A user. */
export function userView(
  u: Pick<User, 'id' | 'email' | 'role' | 'firstName' | 'lastName' | 'createdAt'>,
  departments?: Map<string, DepartmentRole>,
) {
  return {
    id: u.id,
    email: u.email,
    role: u.role,
    firstName: u.firstName,
    lastName: u.lastName,
    createdAt: iso(u.createdAt)!,
    ...(departments ? { departments: [...departments].map(([id, role]) => ({ id, role })) } : {}),
  };
}

/** The caller as a user. */
export function principalView(p: Principal, createdAt: Date | null = null) {
  return { ...userView({ ...p, createdAt: createdAt ?? new Date(0) }, p.departments) };
}

/** A department, with the caller's role in it, and members when the caller may see them. */
export function departmentView(
  d: Department,
  myRole: DepartmentRole | null,
  members?: Array<{ userId: string; role: DepartmentRole }>,
) {
  return {
    id: d.id,
    name: d.name,
    networkName: d.networkName,
    createdAt: iso(d.createdAt)!,
    myRole,
    ...(members ? { members } : {}),
  };
}

/** A template (memory in MiB, storage in GiB). */
export function templateView(t: MachineTemplate) {
  return {
    id: t.id,
    name: t.name,
    description: t.description,
    cpu: t.cpu,
    memory: t.memoryMiB,
    storage: t.storageGiB,
    os: t.os,
    imageId: t.imageId ?? null,
    diskMode: t.diskMode ?? 'linked',
    createdAt: iso(t.createdAt)!,
  };
}

/** A machine (the same fields events carry, plus its last error and timestamps). */
export function machineView(m: Omit<Machine, 'guestSecrets'> & { hostName?: string | null }) {
  return {
    id: m.id,
    name: m.name,
    status: m.status,
    ownerId: m.ownerId,
    departmentId: m.departmentId,
    templateId: m.templateId,
    hostName: m.hostName ?? null,
    cpu: m.cpu,
    memoryMiB: m.memoryMiB,
    storageGiB: m.storageGiB,
    os: m.os,
    macAddress: m.macAddress,
    networkName: m.networkName,
    linkedClone: Boolean(m.linkedClone),
    sourceMachineId: m.sourceMachineId,
    pendingHardware: m.pendingHardware,
    currentOperationId: m.currentOperationId,
    lastError: m.lastError,
    ipAddresses: m.ipAddresses ?? [],
    guestAgent: m.guestAgent ?? 'absent',
    createdAt: iso(m.createdAt),
    updatedAt: iso(m.updatedAt),
  };
}

/** A machine view as returned by a list or get (type of {@link machineView}). */
export type MachineView = ReturnType<typeof machineView>;
