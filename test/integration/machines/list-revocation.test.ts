/**
 * GET /api/machines never shows a VM to a caller who may no longer see it, on any API process: the
 * principal is cached per process (dropped by the API's own writes and, later, by the relay's events), so
 * a second process that has not heard of a change yet still holds the old one. Here process B's relay
 * never polls: a membership removed through process A, a VM moved to another department or owner, and a
 * demoted admin are all excluded from the very next list on A and on B.
 */
import { Host } from '../../../src/entities/host';
import { type Department } from '../../../src/entities/department';
import { Machine } from '../../../src/entities/machine';
import { type User } from '../../../src/entities/user';
import { seedMachineRow, startApi, type ApiHarness } from '../../support/api-harness';
import { seedDepartment, seedTemplate, seedUser } from '../../support/db';
import { startStack, type Stack } from '../../support/stack';

describe('GET /api/machines after a revocation, on two API processes', () => {
  let stack: Stack;
  let a: ApiHarness;
  let b: ApiHarness; // a process whose relay has not delivered the change (and whose cache still holds it)
  let admin: User;
  let otherAdmin: User;
  let manager: User;
  let owner: User;
  let d1: Department;
  let d2: Department;
  let d3: Department;
  const vms: Record<string, Machine> = {};

  beforeAll(async () => {
    stack = await startStack({ workers: false });
    a = await startApi(stack);
    b = await startApi(stack, { relay: { pollMs: 3_600_000 } });
    const ds = stack.dataSource;
    admin = await seedUser(ds, 'ADMIN');
    otherAdmin = await seedUser(ds, 'ADMIN');
    manager = await seedUser(ds);
    owner = await seedUser(ds);
    d1 = await seedDepartment(ds, [
      [manager, 'MANAGER'],
      [owner, 'MEMBER'],
    ]);
    d2 = await seedDepartment(ds, [
      [manager, 'MANAGER'],
      [owner, 'MEMBER'],
    ]);
    d3 = await seedDepartment(ds, [
      [manager, 'MEMBER'],
      [owner, 'MEMBER'],
    ]);
    const template = await seedTemplate(ds);
    const host = await ds.getRepository(Host).findOneByOrFail({ name: stack.hostName });
    const base = { templateId: template.id, hostId: host.id };
    vms.inD1 = await seedMachineRow(ds, { ...base, ownerId: owner.id, departmentId: d1.id });
    vms.inD2 = await seedMachineRow(ds, { ...base, ownerId: owner.id, departmentId: d2.id });
    vms.movedAway = await seedMachineRow(ds, { ...base, ownerId: owner.id, departmentId: d2.id });
    vms.mineInD3 = await seedMachineRow(ds, { ...base, ownerId: manager.id, departmentId: d3.id });
  });

  afterAll(async () => {
    await stack?.dataSource.query('DELETE FROM machine WHERE id IN (?)', [
      Object.values(vms).map((m) => m.id),
    ]);
    await a?.close();
    await b?.close();
    await stack?.stop();
  });

  async function listed(h: ApiHarness, as: User): Promise<Set<string>> {
    const res = await h.call('GET', '/api/machines?limit=100', { as });
    expect(res.status).toBe(200);
    return new Set((res.body.items as Array<{ id: string }>).map((m) => m.id));
  }

  it('a manager removed from a department no longer sees its VMs on the very next request, on either process', async () => {
    for (const h of [a, b]) {
      const seen = await listed(h, manager);
      for (const vm of [vms.inD1!, vms.inD2!, vms.mineInD3!]) expect(seen.has(vm.id)).toBe(true);
    }
    const del = await a.call('DELETE', `/api/departments/${d1.id}/members/${manager.id}`, { as: admin });
    expect(del.status).toBe(204);
    for (const h of [a, b]) {
      const seen = await listed(h, manager);
      expect(seen.has(vms.inD1!.id)).toBe(false);
      expect(seen.has(vms.inD2!.id)).toBe(true);
      expect(seen.has(vms.mineInD3!.id)).toBe(true);
    }
    // The department filter too (its own branch).
    for (const h of [a, b]) {
      const res = await h.call('GET', `/api/machines?department=${d1.id}`, { as: manager });
      expect(res.status).toBe(200);
      expect(res.body.items).toEqual([]);
    }
  });

  it('a VM moved to another department, or to another owner, leaves the list on the very next request', async () => {
    for (const h of [a, b]) expect((await listed(h, manager)).has(vms.movedAway!.id)).toBe(true);
    // As the move's workflow commits it (the list reads the row itself: nothing of it is cached).
    await stack.dataSource.getRepository(Machine).update(vms.movedAway!.id, { departmentId: d3.id });
    for (const h of [a, b]) expect((await listed(h, manager)).has(vms.movedAway!.id)).toBe(false);

    for (const h of [a, b]) expect((await listed(h, manager)).has(vms.mineInD3!.id)).toBe(true);
    await stack.dataSource.getRepository(Machine).update(vms.mineInD3!.id, { ownerId: owner.id });
    for (const h of [a, b]) expect((await listed(h, manager)).has(vms.mineInD3!.id)).toBe(false);
  });

  it('a demoted admin no longer sees every VM on the very next request, on either process', async () => {
    for (const h of [a, b]) expect((await listed(h, otherAdmin)).has(vms.inD2!.id)).toBe(true);
    const res = await a.call('PATCH', `/api/users/${otherAdmin.id}`, { as: admin, body: { role: 'USER' } });
    expect(res.status).toBe(200);
    for (const h of [a, b]) expect((await listed(h, otherAdmin)).has(vms.inD2!.id)).toBe(false);
  });
});
