/**
 * Every firewall route × {anonymous, owner USER, peer USER (same department, MEMBER), outsider USER (another
 * department), department MANAGER, ADMIN}: the expected status, table-driven (not visible → 404, visible but
 * not allowed → 403), and lists that show each caller only what it may see. Machine rows are fixtures; the
 * routes a caller is allowed to use really start their operations (workers run), each aimed at its own
 * rule, filter or machine where a first success would change the answer for the next caller.
 */
import { randomUUID } from 'node:crypto';
import { type Department } from '../../../src/entities/department';
import { FirewallFilter, FirewallRule } from '../../../src/entities/firewall';
import { Host } from '../../../src/entities/host';
import { type Machine } from '../../../src/entities/machine';
import { ensureDepartmentFilterRow, ensureVmFilterRow } from '../../../src/firewall/load';
import { libvirtNames } from '../../../src/workflows/shared';
import { seedMachineRow, startApi, type ApiHarness } from '../../support/api-harness';
import { runAccessMatrix, uncoveredRoutes, type AccessRow } from '../../support/access-matrix';
import { seedDepartment, seedTemplate } from '../../support/db';
import { waitFor } from '../../support/machines';
import { seedCallers, type Caller, type CallerUsers } from '../../support/principals';
import { startStack, type Stack } from '../../support/stack';

type Row = AccessRow;

/** Removes the libvirt filters whose names contain one of these ids (users before what they include). */
async function removeLibvirtFilters(stack: Stack, ids: string[]): Promise<void> {
  const conn = await stack.libvirt.get();
  for (let round = 0; round < 5; round++) {
    const mine = [];
    for (const f of await conn.listAllNWFilters()) {
      const name = await f.getName();
      if (ids.some((id) => name.endsWith(id))) mine.push({ f, name });
    }
    if (!mine.length) return;
    const order = (n: string) => (n.startsWith('vmflow-vm-') ? 0 : n.startsWith('vmflow-dept-') ? 1 : 2);
    mine.sort((a, b) => order(a.name) - order(b.name));
    for (const { f } of mine) await f.undefine().catch(() => undefined);
  }
}

describe('firewall API access: every route × every kind of caller', () => {
  let stack: Stack;
  let h: ApiHarness;
  let u: CallerUsers;
  let deptA: Department;
  let deptB: Department;
  let deptD: Department;
  let m: Machine; // owner's, in A
  let mv: Machine; // owner's, in A, failed (a move passes every permission check and is refused)
  const perCaller = {} as Record<
    'manager' | 'admin',
    { machine: Machine; rule: string; custom: string } // what a successful call consumes
  >;
  let deptFilterA: FirewallFilter;
  let vmFilter: FirewallFilter;
  let customA: FirewallFilter;
  let customGlobal: FirewallFilter;
  let customB: FirewallFilter;
  let sharedRule: string;
  const ids: string[] = [];
  const rows: Row[] = [];

  const customFilter = async (departmentId: string | null, name = `f-${randomUUID().slice(0, 8)}`) => {
    const id = randomUUID();
    ids.push(id);
    await stack.dataSource.getRepository(FirewallFilter).insert({
      id,
      kind: 'custom',
      name,
      description: null,
      internalName: libvirtNames.customFilter(id),
      departmentId,
      machineId: null,
      includes: [],
      version: 1,
    });
    return stack.dataSource.getRepository(FirewallFilter).findOneByOrFail({ id });
  };
  const rule = async (filterId: string) => {
    const id = randomUUID();
    await stack.dataSource.getRepository(FirewallRule).insert({
      id,
      filterId,
      spec: { action: 'accept', direction: 'in', protocol: 'tcp', dstPortStart: 2222, priority: 500 },
    });
    return id;
  };

  beforeAll(async () => {
    stack = await startStack();
    h = await startApi(stack);
    const ds = stack.dataSource;
    u = await seedCallers(ds);
    deptA = await seedDepartment(ds, [
      [u.owner, 'MEMBER'],
      [u.peer, 'MEMBER'],
      [u.manager, 'MANAGER'],
    ]);
    deptB = await seedDepartment(ds, [[u.outsider, 'MANAGER']]);
    deptD = await seedDepartment(ds, [
      [u.owner, 'MEMBER'],
      [u.manager, 'MEMBER'],
    ]);
    ids.push(deptA.id, deptB.id, deptD.id);
    deptFilterA = await ensureDepartmentFilterRow(ds.manager, deptA.id, deptA.name);
    await ensureDepartmentFilterRow(ds.manager, deptB.id, deptB.name);
    await ensureDepartmentFilterRow(ds.manager, deptD.id, deptD.name);
    const template = await seedTemplate(ds);
    const host = await ds.getRepository(Host).findOneByOrFail({ name: stack.hostName });
    const base = { templateId: template.id, hostId: host.id, ownerId: u.owner.id, departmentId: deptA.id };
    m = await seedMachineRow(ds, base);
    mv = await seedMachineRow(ds, { ...base, status: 'failed' });
    vmFilter = await ensureVmFilterRow(ds.manager, m.id, m.name);
    await ensureVmFilterRow(ds.manager, mv.id, mv.name);
    customA = await customFilter(deptA.id);
    customGlobal = await customFilter(null);
    customB = await customFilter(deptB.id);
    sharedRule = await rule(deptFilterA.id);
    for (const who of ['manager', 'admin'] as const) {
      const machine = await seedMachineRow(ds, base);
      const own = await ensureVmFilterRow(ds.manager, machine.id, machine.name);
      await ds.getRepository(FirewallFilter).update({ id: own.id }, { includes: [customA.id] });
      perCaller[who] = {
        machine,
        rule: await rule(deptFilterA.id),
        custom: (await customFilter(deptA.id)).id,
      };
    }
    for (const x of [m, mv, perCaller.manager.machine, perCaller.admin.machine]) ids.push(x.id);

    const by = (c: Caller, shared: string, own: (k: 'manager' | 'admin') => string) =>
      c === 'manager' || c === 'admin' ? own(c) : shared;
    const uniq = () => `f-${randomUUID().slice(0, 8)}`;
    const ssh = () => ({ action: 'accept', direction: 'in', protocol: 'tcp', dstPortStart: 22 });
    rows.push(
      {
        method: 'GET',
        route: '/api/services',
        path: () => '/api/services',
        expect: [401, 200, 200, 200, 200, 200],
      },
      {
        method: 'GET',
        route: '/api/filters',
        path: () => '/api/filters',
        expect: [401, 200, 200, 200, 200, 200],
      },
      {
        method: 'GET',
        route: '/api/filters/:id',
        path: () => `/api/filters/${deptFilterA.id}`,
        expect: [401, 404, 404, 404, 200, 200],
      },
      {
        method: 'GET',
        route: '/api/filters/:id',
        path: () => `/api/filters/${vmFilter.id}`,
        expect: [401, 200, 404, 404, 200, 200],
      },
      {
        method: 'GET',
        route: '/api/filters/:id',
        path: () => `/api/filters/${customGlobal.id}`,
        expect: [401, 404, 404, 200, 200, 200],
      },
      {
        method: 'POST',
        route: '/api/filters',
        path: () => '/api/filters',
        body: () => ({ name: uniq(), departmentId: deptA.id }),
        expect: [401, 403, 403, 404, 201, 201],
      },
      {
        method: 'POST',
        route: '/api/filters',
        path: () => '/api/filters',
        body: () => ({ name: uniq() }),
        expect: [401, 403, 403, 403, 403, 201],
      },
      {
        method: 'PATCH',
        route: '/api/filters/:id',
        path: () => `/api/filters/${customA.id}`,
        body: () => ({ description: `d ${randomUUID().slice(0, 4)}` }),
        expect: [401, 404, 404, 404, 200, 200],
      },
      {
        method: 'PATCH',
        route: '/api/filters/:id',
        path: () => `/api/filters/${vmFilter.id}`,
        body: () => ({ description: 'the VM filter' }),
        expect: [401, 403, 404, 404, 200, 200],
      },
      {
        method: 'PATCH',
        route: '/api/filters/:id',
        path: () => `/api/filters/${customGlobal.id}`,
        body: () => ({ description: 'global' }),
        expect: [401, 404, 404, 403, 403, 200],
      },
      {
        method: 'DELETE',
        route: '/api/filters/:id',
        path: (c) => `/api/filters/${by(c, customA.id, (k) => perCaller[k].custom)}`,
        expect: [401, 404, 404, 404, 204, 204],
      },
      {
        method: 'DELETE',
        route: '/api/filters/:id',
        path: () => `/api/filters/${deptFilterA.id}`,
        expect: [401, 404, 404, 404, 422, 422],
      },
      {
        method: 'POST',
        route: '/api/filters/:id/rules',
        path: () => `/api/filters/${deptFilterA.id}/rules`,
        body: ssh,
        expect: [401, 404, 404, 404, 202, 202],
      },
      {
        method: 'POST',
        route: '/api/filters/:id/rules',
        path: () => `/api/filters/${vmFilter.id}/rules`,
        body: ssh,
        expect: [401, 403, 404, 404, 202, 202],
      },
      {
        method: 'POST',
        route: '/api/filters/:id/rules',
        path: () => `/api/filters/${customB.id}/rules`,
        body: ssh,
        expect: [401, 404, 404, 202, 404, 202],
      },
      {
        method: 'PUT',
        route: '/api/filters/:id/rules/:ruleId',
        path: () => `/api/filters/${deptFilterA.id}/rules/${sharedRule}`,
        body: () => ({ ...ssh(), dstPortStart: 2223 }),
        expect: [401, 404, 404, 404, 202, 202],
      },
      {
        method: 'PUT',
        route: '/api/filters/:id/rules/:ruleId',
        path: () => `/api/filters/${deptFilterA.id}/rules/${randomUUID()}`,
        body: ssh,
        expect: [401, 404, 404, 404, 404, 404],
      },
      {
        method: 'DELETE',
        route: '/api/filters/:id/rules/:ruleId',
        path: (c) => `/api/filters/${deptFilterA.id}/rules/${by(c, sharedRule, (k) => perCaller[k].rule)}`,
        expect: [401, 404, 404, 404, 202, 202],
      },
      {
        method: 'PUT',
        route: '/api/filters/:id/includes',
        path: () => `/api/filters/${deptFilterA.id}/includes`,
        body: () => ({ includes: [customA.id, customGlobal.id] }),
        expect: [401, 404, 404, 404, 202, 202],
      },
      {
        method: 'PUT',
        route: '/api/filters/:id/includes',
        path: () => `/api/filters/${deptFilterA.id}/includes`,
        body: () => ({ includes: [customB.id] }),
        expect: [401, 404, 404, 404, 404, 422],
      },
      {
        method: 'POST',
        route: '/api/filters/flush',
        path: () => '/api/filters/flush',
        body: () => ({ departmentId: deptA.id }),
        expect: [401, 403, 403, 404, 202, 202],
      },
      {
        method: 'POST',
        route: '/api/filters/flush',
        path: () => '/api/filters/flush',
        body: () => ({}),
        // Not asked as admin: a flush of everything would push the filters of every suite sharing the test
        // database and libvirtd.
        expect: [401, 403, 403, 403, 403, null],
      },
      {
        method: 'GET',
        route: '/api/departments/:id/policy',
        path: () => `/api/departments/${deptA.id}/policy`,
        expect: [401, 200, 200, 404, 200, 200],
      },
      {
        method: 'PUT',
        route: '/api/departments/:id/policy',
        path: () => `/api/departments/${deptA.id}/policy`,
        body: () => ({ policy: 'ALLOW_ALL' }),
        expect: [401, 403, 403, 404, 202, 202],
      },
      {
        method: 'GET',
        route: '/api/departments/:id/services',
        path: () => `/api/departments/${deptA.id}/services`,
        expect: [401, 200, 200, 404, 200, 200],
      },
      {
        method: 'PUT',
        route: '/api/departments/:id/services/:serviceId',
        path: () => `/api/departments/${deptA.id}/services/ssh`,
        body: () => ({ action: 'PROVIDE', enabled: false }),
        expect: [401, 403, 403, 404, 202, 202],
      },
      {
        method: 'PUT',
        route: '/api/departments/:id/services/:serviceId',
        path: () => `/api/departments/${deptA.id}/services/gopher`,
        body: () => ({ action: 'USE', enabled: true }),
        expect: [401, 403, 403, 404, 404, 404],
      },
      {
        method: 'GET',
        route: '/api/machines/:id/services',
        path: () => `/api/machines/${m.id}/services`,
        expect: [401, 200, 404, 404, 200, 200],
      },
      {
        method: 'PUT',
        route: '/api/machines/:id/services/:serviceId',
        path: () => `/api/machines/${m.id}/services/ssh`,
        body: () => ({ action: 'PROVIDE', enabled: null }),
        expect: [401, 403, 404, 404, 202, 202],
      },
      {
        method: 'POST',
        route: '/api/machines/:id/filters',
        path: () => `/api/machines/${m.id}/filters`,
        body: () => ({ filterId: customGlobal.id }),
        expect: [401, 403, 404, 404, 202, 202],
      },
      {
        method: 'POST',
        route: '/api/machines/:id/filters',
        path: () => `/api/machines/${m.id}/filters`,
        body: () => ({ filterId: customB.id }),
        expect: [401, 403, 404, 404, 404, 422],
      },
      {
        method: 'DELETE',
        route: '/api/machines/:id/filters/:filterId',
        path: (c) => `/api/machines/${by(c, m.id, (k) => perCaller[k].machine.id)}/filters/${customA.id}`,
        expect: [401, 403, 404, 404, 202, 202],
      },
      {
        method: 'PUT',
        route: '/api/machines/:id/department',
        path: () => `/api/machines/${mv.id}/department`,
        body: () => ({ departmentId: deptD.id }),
        expect: [401, 403, 404, 404, 403, 422],
      },
      {
        method: 'PUT',
        route: '/api/machines/:id/department',
        path: () => `/api/machines/${mv.id}/department`,
        body: () => ({ departmentId: deptB.id }),
        expect: [401, 404, 404, 404, 404, 422],
      },
    );
  });

  afterAll(async () => {
    if (stack) {
      // Operations started here may still be closing: let them, so nothing is pushed after the clean-up.
      const query = `ExecutionStatus = 'Running' AND (${ids.map((id) => `WorkflowId = 'firewall-${id}'`).join(' OR ')})`;
      await waitFor(
        async () => {
          for await (const _ of stack.env.client.workflow.list({ query })) return undefined;
          return true;
        },
        'the operations of the table to finish',
        60_000,
      ).catch(() => undefined);
      await removeLibvirtFilters(stack, ids);
    }
    await h?.close();
    await stack?.stop();
  });

  it('the table covers every firewall route', () => {
    expect(h.api.routes.filter((r) => r.tag === 'firewall').length).toBeGreaterThanOrEqual(20);
    expect(uncoveredRoutes(h.api.routes, rows, (r) => r.tag === 'firewall')).toEqual([]);
  });

  it('answers each caller as expected', async () => {
    const { got, want } = await runAccessMatrix(h, u, rows, {
      internals: /at .+\.ts:\d+|SELECT |INSERT |virNWFilter|stack/i,
    });
    expect(got).toEqual(want);
  });

  it('lists only the filters each caller may see', async () => {
    const seen = async (caller: Exclude<Caller, 'anonymous'>) => {
      const out = new Set<string>();
      let cursor: string | null = null;
      do {
        const res: { status: number; body: { items: Array<{ id: string }>; nextCursor: string | null } } =
          await h.call('GET', `/api/filters?limit=100${cursor ? `&cursor=${cursor}` : ''}`, {
            as: u[caller],
          });
        expect(res.status).toBe(200);
        for (const f of res.body.items) out.add(f.id);
        cursor = res.body.nextCursor;
      } while (cursor);
      return out;
    };
    const fixtures = {
      deptA: deptFilterA.id,
      vm: vmFilter.id,
      customA: customA.id,
      customGlobal: customGlobal.id,
      customB: customB.id,
    };
    const visible = async (c: Exclude<Caller, 'anonymous'>) => {
      const s = await seen(c);
      return Object.entries(fixtures)
        .filter(([, id]) => s.has(id))
        .map(([k]) => k);
    };
    expect(await visible('owner')).toEqual(['vm']);
    expect(await visible('peer')).toEqual([]);
    expect(await visible('outsider')).toEqual(['customGlobal', 'customB']);
    expect(await visible('manager')).toEqual(['deptA', 'vm', 'customA', 'customGlobal']);
    expect(await visible('admin')).toEqual(['deptA', 'vm', 'customA', 'customGlobal', 'customB']);
    // Query filters never widen the scope.
    const other = await h.call('GET', `/api/filters?department=${deptB.id}`, { as: u.manager });
    expect((other.body.items as Array<{ departmentId: string }>).map((f) => f.departmentId)).toEqual([]);
    const kinds = await h.call('GET', `/api/filters?kind=custom&department=${deptA.id}`, { as: u.admin });
    expect(new Set((kinds.body.items as Array<{ kind: string }>).map((f) => f.kind))).toEqual(
      new Set(['custom']),
    );
  });

  it('a firewall operation is visible to the managers of its department and admins only', async () => {
    const res = await h.call('PUT', `/api/departments/${deptD.id}/policy`, {
      as: u.admin,
      body: { policy: 'ALLOW_OUTBOUND' },
    });
    expect(res.status).toBe(202);
    const id = res.body.operation.id as string;
    expect(res.body.operation).toMatchObject({
      type: 'firewall',
      resource: 'firewall',
      resourceId: deptD.id,
    });
    const status = async (c: Exclude<Caller, 'anonymous'>) =>
      (await h.call('GET', `/api/operations/${id}`, { as: u[c] })).status;
    expect(await status('admin')).toBe(200);
    expect(await status('manager')).toBe(404); // a MEMBER of D, not its manager
    expect(await status('owner')).toBe(404);
    expect(await status('outsider')).toBe(404);
  });
});
