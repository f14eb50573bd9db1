/**
 * GET /api/machines reads every scope in index order: for an admin, a manager of one and of two
 * departments and a plain user, first page and a cursor page (and with filters), the exact statement
 * listMachines runs is analysed by the database (MariaDB: ANALYZE FORMAT=JSON, real row counts; MySQL:
 * EXPLAIN FORMAT=JSON): the machine table is read through the intended index, no read of it goes past a
 * page (limit+1 rows per branch), and no step sorts more than branches × (limit+1) rows. And the pages,
 * walked to the end, equal a straightforward reference query (same rows, same order).
 */
import { randomUUID } from 'node:crypto';
import { type DataSource } from 'typeorm';
import {
  listMachines,
  MACHINE_LIST_INDEXES,
  machineListSql,
  type MachineListParams,
} from '../../../src/api/machine-list';
import { isAdmin, loadPrincipal, managedDepartments, type Principal } from '../../../src/api/permissions';
import { Host } from '../../../src/entities/host';
import { Machine } from '../../../src/entities/machine';
import { type User } from '../../../src/entities/user';
import { libvirtNames } from '../../../src/workflows/shared';
import { openTestDataSource, seedDepartment, seedTemplate, seedUser } from '../../support/db';

const ROWS = 3000;
const LIMIT = 50;

/** A table access in a plan: which table, through which index, how many rows it read (per loop). */
interface Access {
  table: string;
  accessType: string;
  key: string | null;
  rows: number | null;
}
/** What a plan does: its table accesses and the row counts each sort step is fed. */
interface Plan {
  accesses: Access[];
  sorts: number[];
  engine: 'mariadb' | 'mysql';
}

type Json = Record<string, unknown>;
function walk(o: unknown, visit: (key: string, v: Json, parent: Json) => void): void {
  if (Array.isArray(o)) for (const x of o) walk(x, visit);
  else if (o && typeof o === 'object') {
    for (const [k, v] of Object.entries(o as Json)) {
      if (v && typeof v === 'object' && !Array.isArray(v)) visit(k, v as Json, o as Json);
      walk(v, visit);
    }
  }
}

async function planOf(ds: DataSource, sql: string, params: unknown[]): Promise<Plan> {
  const [{ version }] = (await ds.query('SELECT VERSION() AS version')) as Array<{ version: string }>;
  const accesses: Access[] = [];
  const sorts: number[] = [];
  if (/mariadb/i.test(version)) {
    // Real counts: r_rows is what a table access read per loop; a filesort's table is what it sorted.
    const [row] = (await ds.query(`ANALYZE FORMAT=JSON ${sql}`, params)) as Array<{ ANALYZE: string }>;
    walk(JSON.parse(row!.ANALYZE), (k, v) => {
      if (k === 'table' && typeof v.table_name === 'string')
        accesses.push({
          table: v.table_name,
          accessType: String(v.access_type),
          key: (v.key as string | undefined) ?? null,
          rows: typeof v.r_rows === 'number' ? v.r_rows : null,
        });
      if (k === 'filesort') {
        const t = v.table as Json | undefined;
        sorts.push(typeof t?.r_rows === 'number' ? t.r_rows : Infinity);
      }
    });
    return { accesses, sorts, engine: 'mariadb' };
  }
  // MySQL 8: estimates only. A filesort over a table read directly (not a derived table) sorts its range.
  const [row] = (await ds.query(`EXPLAIN FORMAT=JSON ${sql}`, params)) as Array<{ EXPLAIN: string }>;
  walk(JSON.parse(row!.EXPLAIN), (k, v) => {
    if (k === 'table' && typeof v.table_name === 'string')
      accesses.push({
        table: v.table_name,
        accessType: String(v.access_type),
        key: (v.key as string | undefined) ?? null,
        rows: null,
      });
    if (k === 'ordering_operation' && v.using_filesort === true) {
      let direct = false;
      walk(v, (kk, vv) => {
        if (kk === 'table' && vv.table_name === 'm' && vv.access_type !== 'eq_ref') direct = true;
      });
      sorts.push(direct ? Infinity : 0);
    }
  });
  return { accesses, sorts, engine: 'mysql' };
}

describe('GET /api/machines: index-ordered reads for every scope', () => {
  let ds: DataSource;
  let admin: User;
  let manager1: User; // manages D0
  let manager2: User; // manages D0 and D1
  let plain: User; // member of every department
  let depts: string[];

  beforeAll(async () => {
    ds = await openTestDataSource();
    admin = await seedUser(ds, 'ADMIN');
    manager1 = await seedUser(ds);
    manager2 = await seedUser(ds);
    plain = await seedUser(ds);
    const other = await seedUser(ds);
    const d0 = await seedDepartment(ds, [
      [manager1, 'MANAGER'],
      [manager2, 'MANAGER'],
      [plain, 'MEMBER'],
    ]);
    const d1 = await seedDepartment(ds, [
      [manager2, 'MANAGER'],
      [plain, 'MEMBER'],
    ]);
    const d2 = await seedDepartment(ds, [
      [manager1, 'MEMBER'],
      [manager2, 'MEMBER'],
      [plain, 'MEMBER'],
    ]);
    depts = [d0.id, d1.id, d2.id];
    const tpl = await seedTemplate(ds);
    const hostId = randomUUID();
    await ds.getRepository(Host).save({
      id: hostId,
      name: `plan-${hostId.slice(0, 8)}`,
      libvirtUri: 'qemu:///system',
      taskQueue: `host-plan-${hostId.slice(0, 8)}`,
      cpus: 4,
      memoryMiB: 4096,
      storagePool: 'vmflow',
      defaultNetwork: 'vmflow-default',
    });
    const owners = [plain.id, manager1.id, manager2.id, other.id];
    // Newer than any other row of the test database, three machines per instant (ties broken by id).
    const t0 = Date.now() + 86_400_000;
    for (let i = 0; i < ROWS; i += 500) {
      const chunk = Array.from({ length: 500 }, (_, j) => {
        const n = i + j;
        const id = randomUUID();
        return {
          id,
          name: `plan ${n}`,
          internalName: libvirtNames.domain(id),
          libvirtUuid: null,
          status: n % 7 ? 'off' : 'running',
          ownerId: owners[Math.floor(n / 3) % 4]!,
          departmentId: depts[n % 3]!,
          templateId: tpl.id,
          hostId,
          cpu: 1,
          memoryMiB: 64,
          storageGiB: 1,
          os: 'none',
          filterName: libvirtNames.vmFilter(id),
          linkedClone: false,
          createdAt: new Date(t0 - Math.floor(n / 3) * 1000),
        };
      });
      await ds
        .createQueryBuilder()
        .insert()
        .into(Machine)
        .values(chunk as never)
        .execute();
    }
    await ds.query('ANALYZE TABLE machine');
  });

  afterAll(async () => {
    await ds?.query('DELETE FROM machine WHERE departmentId IN (?)', [depts]);
    await ds?.destroy();
  });

  /**
   * Every id the caller may see under the filters, newest first: the plain OR-scoped query (the rule as
   * written: admins all; others their own machines and those of the departments they manage).
   */
  async function reference(p: Principal, q: MachineListParams): Promise<string[]> {
    const qb = ds.getRepository(Machine).createQueryBuilder('m').select(['m.id']);
    if (!isAdmin(p)) {
      const managed = managedDepartments(p);
      qb.where(managed.length ? '(m.ownerId = :me OR m.departmentId IN (:...managed))' : 'm.ownerId = :me', {
        me: p.id,
        managed,
      });
    }
    if (q.status) qb.andWhere('m.status = :status', { status: q.status });
    if (q.department) qb.andWhere('m.departmentId = :d', { d: q.department });
    if (q.owner) qb.andWhere('m.ownerId = :o', { o: q.owner });
    const rows = await qb.orderBy('m.createdAt', 'DESC').addOrderBy('m.id', 'DESC').getMany();
    return rows.map((r) => r.id);
  }

  /** Walks every page; returns the ids in order and the cursor of the second page. */
  async function walkPages(p: Principal, q: MachineListParams): Promise<{ ids: string[]; second?: string }> {
    const ids: string[] = [];
    let cursor: string | undefined;
    let second: string | undefined;
    for (let n = 0; n < 1000; n++) {
      const page = await listMachines(ds, p, { ...q, limit: 100, ...(cursor ? { cursor } : {}) });
      ids.push(...page.items.map((m) => m.id));
      if (!page.nextCursor) return { ids, ...(second ? { second } : {}) };
      cursor = page.nextCursor;
      if (n === 4) second = cursor; // a cursor some 500 rows in
    }
    throw new Error('too many pages');
  }

  const cases: Array<{
    name: string;
    who: () => User;
    q?: () => MachineListParams;
    branches: number;
    keys: Array<keyof typeof MACHINE_LIST_INDEXES>;
  }> = [
    { name: 'admin', who: () => admin, branches: 1, keys: ['created'] },
    { name: 'plain user', who: () => plain, branches: 1, keys: ['owner'] },
    { name: 'manager of 1 department', who: () => manager1, branches: 2, keys: ['owner', 'department'] },
    { name: 'manager of 2 departments', who: () => manager2, branches: 3, keys: ['owner', 'department'] },
    {
      name: 'manager of 2 departments, status filter',
      who: () => manager2,
      q: () => ({ status: 'running' }),
      branches: 3,
      keys: ['owner', 'department'],
    },
    {
      name: 'manager of 2 departments, department filter',
      who: () => manager2,
      q: () => ({ department: depts[1]! }),
      branches: 1,
      keys: ['department'],
    },
    {
      name: 'manager, filter on an unmanaged department',
      who: () => manager1,
      q: () => ({ department: depts[2]! }),
      branches: 1,
      keys: ['owner'],
    },
    {
      name: 'manager of 2 departments, owner filter',
      who: () => manager2,
      q: () => ({ owner: plain.id }),
      branches: 2,
      keys: ['owner', 'department'],
    },
    {
      name: 'admin, department filter',
      who: () => admin,
      q: () => ({ department: depts[0]! }),
      branches: 1,
      keys: ['department'],
    },
  ];

  it.each(cases)('$name: same rows as the reference, in index order, no big sort', async (c) => {
    const p = (await loadPrincipal(ds, c.who().id))!;
    const q = c.q?.() ?? {};
    const expected = await reference(p, q);
    expect(expected.length).toBeGreaterThan(200);
    const { ids, second } = await walkPages(p, q);
    expect(ids).toEqual(expected);

    for (const cursor of [undefined, second]) {
      const stmt = machineListSql(p, { ...q, limit: LIMIT, ...(cursor ? { cursor } : {}) })!;
      const plan = await planOf(ds, stmt.sql, stmt.params);
      const what = `${c.name}, ${cursor ? 'cursor' : 'first'} page: ${JSON.stringify(plan)}`;
      const reads = plan.accesses.filter((a) => a.table === 'm' && a.accessType !== 'eq_ref');
      expect({ what, branches: reads.length }).toEqual({ what, branches: c.branches });
      const allowed = c.keys.map((k) => MACHINE_LIST_INDEXES[k]);
      for (const r of reads) {
        expect({ what, key: allowed.includes(r.key as never) }).toEqual({ what, key: true });
        expect({ what, access: r.accessType }).not.toEqual({ what, access: 'ALL' });
        // Read in index order, it stops after a page (a cursor page also reads the rows of the cursor's
        // instant, three at most here; a filter outside the index skips the rows it rejects).
        if (plan.engine === 'mariadb' && !Object.keys(q).length)
          expect({ what, read: r.rows! <= LIMIT + 4 }).toEqual({ what, read: true });
      }
      if (c.branches === 1) expect({ what, sorts: plan.sorts }).toEqual({ what, sorts: [] });
      for (const sorted of plan.sorts)
        expect({ what, sorted: sorted <= c.branches * (LIMIT + 1) }).toEqual({ what, sorted: true });
    }
  });
});
