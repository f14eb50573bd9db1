/**
 * GET /api/machines: one page of the machines a caller may see, newest first over (createdAt, id), every
 * scope read in index order so that no step sorts more than a few pages' worth of rows:
 * - ADMIN: everything, through machine(createdAt, id);
 * - USER: `ownerId = me`, through machine(ownerId, createdAt, id);
 * - MANAGER: one ordered, limited branch per source (its own machines; each managed department, through
 *   machine(departmentId, createdAt, id)), each reading at most limit+1 (id, createdAt) index entries,
 *   combined with UNION (which also drops a machine found by two branches) and cut to limit+1; only those
 *   rows are then read in full. The final sort sees at most branches × (limit+1) narrow rows.
 * Filters narrow the branches (a department filter keeps only that department's branch, an owner filter
 * only the owner's), so they are read in index order too.
 *
 * The caller's scope comes from its principal, which the API caches briefly and another process may not
 * have dropped yet after a change. The statement therefore checks the grants it relies on against the
 * database itself: a managed department's branch and the ADMIN scope carry an EXISTS on the current
 * membership or role, so a revoked manager or a demoted admin never gets a row the database no longer
 * grants, whichever process serves the request. (A stale cache can only show less, until it is dropped.)
 * The owner branch needs no check: it reads the machine's current owner.
 */
import { type DataSource } from 'typeorm';
import { type Machine } from '../entities/machine';
import { type MachineStatus } from '../entities/machine-status';
import { DEFAULT_PAGE_SIZE, decodeCursor, pageOfRows, type Page } from './pagination';
import { isAdmin, managedDepartments, type Principal } from './permissions';

/** The listed columns (every column but the libvirt names, the disk path and the sealed secrets). */
const LIST_COLUMNS = [
  'id',
  'name',
  'status',
  'ownerId',
  'departmentId',
  'templateId',
  'hostId',
  'cpu',
  'memoryMiB',
  'storageGiB',
  'os',
  'macAddress',
  'networkName',
  'linkedClone',
  'sourceMachineId',
  'pendingHardware',
  'currentOperationId',
  'lastError',
  'createdAt',
  'updatedAt',
] as const;
const SELECT_LIST = `${LIST_COLUMNS.map((c) => `m.\`${c}\``).join(', ')}, h.\`name\` AS \`hostName\``;
const NEWEST_FIRST = 'ORDER BY m.`createdAt` DESC, m.`id` DESC';

/** The indexes each source is read through (see the migration MachineListIndexes1764352800000). */
export const MACHINE_LIST_INDEXES = {
  created: 'IDX_b975f700c0501b4e08a04a59f3',
  owner: 'IDX_machine_owner_created',
  department: 'IDX_machine_department_created',
} as const;

/** The list's filters and page. */
export interface MachineListParams {
  status?: MachineStatus;
  department?: string;
  owner?: string;
  cursor?: string;
  limit?: number;
}

/** A listed row: the machine's listed columns and its host's name. */
export type MachineListRow = Machine & { hostName: string | null };

/** A statement with its positional parameters. */
export interface Sql {
  sql: string;
  params: unknown[];
}

/** One source of rows: conditions, all equalities on indexed columns but the grant check. */
interface Branch {
  /** The source's index (its rows in order), forced: the optimizer may not pick another and sort. */
  index?: string;
  owner?: string;
  department?: string;
  /** The grant this branch relies on, checked in the statement. */
  guard?: Sql;
}

const adminGuard = (me: string): Sql => ({
  sql: "EXISTS (SELECT 1 FROM `user` gu WHERE gu.`id` = ? AND gu.`role` = 'ADMIN')",
  params: [me],
});
const managerGuard = (me: string, department: string): Sql => ({
  sql: "EXISTS (SELECT 1 FROM `department_member` gm WHERE gm.`departmentId` = ? AND gm.`userId` = ? AND gm.`role` = 'MANAGER')",
  params: [department, me],
});

/** The sources of the caller's scope, narrowed by the department and owner filters (none: nothing to list). */
function branchesOf(p: Principal, q: MachineListParams): Branch[] {
  const narrow = (b: Branch): Branch | null => {
    if (q.department) {
      if (b.department && b.department !== q.department) return null;
      b.department = q.department;
    }
    if (q.owner) {
      if (b.owner && b.owner !== q.owner) return null;
      b.owner = q.owner;
    }
    return b;
  };
  if (isAdmin(p)) {
    const index = q.owner
      ? MACHINE_LIST_INDEXES.owner
      : q.department
        ? MACHINE_LIST_INDEXES.department
        : undefined; // createdAt, or a rare status through its own index: the optimizer's choice
    return [narrow({ guard: adminGuard(p.id), ...(index ? { index } : {}) })!];
  }
  const managed = managedDepartments(p).sort();
  const own = narrow({ owner: p.id, index: MACHINE_LIST_INDEXES.owner });
  const departments = managed
    .map((d) =>
      narrow({ department: d, guard: managerGuard(p.id, d), index: MACHINE_LIST_INDEXES.department }),
    )
    .filter((b): b is Branch => b !== null);
  // A department branch that survives a department filter holds every row the owner branch could add;
  // an owner branch that survives an owner filter (owner = me) holds every row a department branch could.
  if (q.department && departments.length) return departments;
  if (q.owner && own) return [own];
  return own ? [own, ...departments] : departments;
}

/** WHERE conditions of a branch: its source, the status filter, the keyset, the grant. */
function whereOf(b: Branch, q: MachineListParams, after: { createdAt: Date; id: string } | null): Sql {
  const conds: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, ...values: unknown[]) => {
    conds.push(sql);
    params.push(...values);
  };
  if (b.owner) add('m.`ownerId` = ?', b.owner);
  if (b.department) add('m.`departmentId` = ?', b.department);
  if (q.status) add('m.`status` = ?', q.status);
  if (after) {
    // Written so that the index range can use it: createdAt <= at bounds the range, the rest filters.
    add(
      'm.`createdAt` <= ? AND (m.`createdAt` < ? OR m.`id` < ?)',
      after.createdAt,
      after.createdAt,
      after.id,
    );
  }
  if (b.guard) add(b.guard.sql, ...b.guard.params);
  return { sql: conds.length ? `WHERE ${conds.join(' AND ')}` : '', params };
}

/**
 * The statement that reads one page (limit+1 rows, to know whether a next page exists) of what the caller
 * may see; null when the filters leave nothing to read. Exported for the EXPLAIN test.
 */
export function machineListSql(p: Principal, q: MachineListParams): Sql | null {
  const take = (q.limit ?? DEFAULT_PAGE_SIZE) + 1;
  const after = q.cursor ? decodeCursor(q.cursor) : null;
  const branches = branchesOf(p, q);
  if (!branches.length) return null;
  const table = (b: Branch) => `\`machine\` m${b.index ? ` FORCE INDEX (\`${b.index}\`)` : ''}`;
  if (branches.length === 1) {
    const b = branches[0]!;
    const w = whereOf(b, q, after);
    const from = `FROM ${table(b)} LEFT JOIN \`host\` h ON h.\`id\` = m.\`hostId\``;
    return {
      sql: `SELECT ${SELECT_LIST} ${from} ${w.sql} ${NEWEST_FIRST} LIMIT ?`,
      params: [...w.params, take],
    };
  }
  const parts: string[] = [];
  const params: unknown[] = [];
  for (const b of branches) {
    const w = whereOf(b, q, after);
    parts.push(`(SELECT m.\`id\`, m.\`createdAt\` FROM ${table(b)} ${w.sql} ${NEWEST_FIRST} LIMIT ?)`);
    params.push(...w.params, take);
  }
  return {
    sql:
      `SELECT ${SELECT_LIST} FROM (${parts.join(' UNION ')} ORDER BY \`createdAt\` DESC, \`id\` DESC LIMIT ?) k ` +
      `JOIN \`machine\` m ON m.\`id\` = k.\`id\` LEFT JOIN \`host\` h ON h.\`id\` = m.\`hostId\` ` +
      'ORDER BY k.`createdAt` DESC, k.`id` DESC',
    params: [...params, take],
  };
}

/** One page of the machines the caller may see, newest first (400 on a cursor that is not ours). */
export async function listMachines(
  ds: DataSource,
  principal: Principal,
  query: MachineListParams,
): Promise<Page<MachineListRow>> {
  const limit = query.limit ?? DEFAULT_PAGE_SIZE;
  const stmt = machineListSql(principal, query);
  const rows = stmt ? ((await ds.query(stmt.sql, stmt.params)) as MachineListRow[]) : [];
  return pageOfRows(rows, limit);
}
