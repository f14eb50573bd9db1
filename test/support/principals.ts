/**
 * The callers every permission test reasons about, in one place: for unit tests, in-memory principals
 * (`owner`, `peer`, `outsider` in departments A and B, `manager` of A, `managerB`, `admin`); for
 * integration tests, the same kinds of caller seeded as users.
 */
import { type DataSource } from 'typeorm';
import { type Principal } from '../../src/api/permissions';
import { type DepartmentRole } from '../../src/entities/department';
import { type User } from '../../src/entities/user';
import { seedUser } from './db';

/** An in-memory principal. */
export const principal = (
  id: string,
  role: 'ADMIN' | 'USER',
  departments: Array<[string, DepartmentRole]> = [],
): Principal => ({
  id,
  email: `${id}@x`,
  role,
  firstName: '',
  lastName: '',
  departments: new Map(departments),
});

/** A MEMBER of department A (owns the machines of the unit tests). */
export const owner = principal('owner', 'USER', [['A', 'MEMBER']]);
/** Another MEMBER of A. */
export const peer = principal('peer', 'USER', [['A', 'MEMBER']]);
/** A MEMBER of B only. */
export const outsider = principal('outsider', 'USER', [['B', 'MEMBER']]);
/** The MANAGER of A. */
export const manager = principal('manager', 'USER', [['A', 'MANAGER']]);
/** MANAGER of B, MEMBER of A. */
export const managerB = principal('managerB', 'USER', [
  ['B', 'MANAGER'],
  ['A', 'MEMBER'],
]);
/** An ADMIN. */
export const admin = principal('admin', 'ADMIN');
/** Every unit-test principal by name. */
export const everyone = { owner, peer, outsider, manager, managerB, admin };

/** The kinds of caller of the access matrices, in column order. */
export type Caller = 'anonymous' | 'owner' | 'peer' | 'outsider' | 'manager' | 'admin';
/** The columns of an access matrix. */
export const CALLERS: Caller[] = ['anonymous', 'owner', 'peer', 'outsider', 'manager', 'admin'];

/** The users of an access matrix (every caller but `anonymous`). */
export type CallerUsers = Record<Exclude<Caller, 'anonymous'>, User>;

/** Seeds the users of an access matrix (departments are the test's own). */
export async function seedCallers(ds: DataSource): Promise<CallerUsers> {
  const u = {} as CallerUsers;
  u.owner = await seedUser(ds);
  u.peer = await seedUser(ds);
  u.outsider = await seedUser(ds);
  u.manager = await seedUser(ds);
  u.admin = await seedUser(ds, 'ADMIN');
  return u;
}
