/**
 * Look-ups that several route files make: a resource the caller may see (else 404, whether it exists or
 * not), host names, and the database's duplicate-key answer.
 */
import { QueryFailedError } from 'typeorm';
import { Department } from '../entities/department';
import { Host } from '../entities/host';
import { Machine } from '../entities/machine';
import { Network } from '../entities/network';
import { type ApiContext } from './context';
import { forbidden, notFound } from './errors';
import { belongsTo, canViewDepartment, canViewMachine, isAdmin, type Principal } from './permissions';

/** True for a duplicate-key error (a unique name or e-mail is taken). */
export const isDuplicate = (err: unknown) =>
  err instanceof QueryFailedError && (err as unknown as { code?: string }).code === 'ER_DUP_ENTRY';

/** Host id → host name. */
export async function hostNames(ctx: ApiContext): Promise<Map<string, string>> {
  const hosts = await ctx.ds.getRepository(Host).find({ select: { id: true, name: true } });
  return new Map(hosts.map((h) => [h.id, h.name]));
}

/** Loads a machine the caller may see, else 404 (whether it exists or not). */
export async function visibleMachine(ctx: ApiContext, p: Principal, id: string): Promise<Machine> {
  const m = await ctx.ds.getRepository(Machine).findOne({ where: { id } });
  if (!m || !canViewMachine(p, m)) throw notFound('machine');
  return m;
}

/** May the caller see (and attach machines to) this network? Admins all; others shared ones and their departments'. */
export function canUseNetwork(p: Principal, n: Pick<Network, 'departmentId'>): boolean {
  return n.departmentId === null || belongsTo(p, n.departmentId);
}

/** Loads a network the caller may see, else 404 (whether it exists or not). */
export async function visibleNetwork(
  ctx: ApiContext,
  p: Principal,
  id: string,
  field?: string,
): Promise<Network> {
  const n = await ctx.ds.getRepository(Network).findOne({ where: { id } });
  if (!n || !(isAdmin(p) || canUseNetwork(p, n))) throw notFound('network', field);
  return n;
}

/** Loads a department the caller belongs to (admins: any), else 404 naming `field` when given. */
export async function visibleDepartment(
  ctx: ApiContext,
  p: Principal,
  id: string,
  field?: string,
): Promise<Department> {
  const d = await ctx.ds.getRepository(Department).findOne({ where: { id } });
  if (!d || !canViewDepartment(p, d.id)) throw notFound('department', field);
  return d;
}

/** What `load` finds (it answers 404 itself) when the caller `may` act on it, else 403 with `detail`. */
export async function allowed<T>(load: Promise<T>, may: (found: T) => boolean, detail?: string): Promise<T> {
  const found = await load;
  if (!may(found)) throw forbidden(detail);
  return found;
}
