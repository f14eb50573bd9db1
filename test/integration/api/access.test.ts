/**
 * Every endpoint × {anonymous, owner USER, peer USER (same department, MEMBER), outsider USER (another
 * department), department MANAGER, ADMIN}: the expected status, table-driven; and no data of others in
 * any list or catch-up. Machine rows here are fixtures (no hypervisor behind them): each mutating machine
 * route is aimed at a request the domain refuses (422) or a taken name (409), so a caller that passes the
 * permission check gets that refusal and no workflow starts; the real operations run in operations.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { type Department } from '../../../src/entities/department';
import { Event } from '../../../src/entities/event';
import { Host } from '../../../src/entities/host';
import { Image } from '../../../src/entities/image';
import { type Machine } from '../../../src/entities/machine';
import { MachineTemplate } from '../../../src/entities/machine-template';
import { Operation } from '../../../src/entities/operation';
import { OperationRequest } from '../../../src/entities/operation-request';
import { maxEventId, seedMachineRow, startApi, type ApiHarness } from '../../support/api-harness';
import { runAccessMatrix, uncoveredRoutes, type AccessRow } from '../../support/access-matrix';
import { seedDepartment, seedTemplate, seedUser } from '../../support/db';
import { seedCallers, type Caller, type CallerUsers } from '../../support/principals';
import { startStack, type Stack } from '../../support/stack';

type Row = AccessRow;

describe('API access: every endpoint × every kind of caller', () => {
  let stack: Stack;
  let h: ApiHarness;
  let u: CallerUsers;
  let deptA: Department;
  let deptB: Department;
  let template: MachineTemplate;
  let m: Machine; // owner's, in A, running, 10 GiB, backs a linked clone
  let clone: Machine; // owner's linked clone of m
  let peerVm: Machine; // peer's, in A
  let outsiderVm: Machine; // outsider's, in B
  let opId: string;
  let baseEvent: number;
  const rows: Row[] = [];

  beforeAll(async () => {
    stack = await startStack({ workers: false });
    h = await startApi(stack);
    const ds = stack.dataSource;
    u = await seedCallers(ds);
    deptA = await seedDepartment(ds, [
      [u.owner, 'MEMBER'],
      [u.peer, 'MEMBER'],
      [u.manager, 'MANAGER'],
    ]);
    deptB = await seedDepartment(ds, [[u.outsider, 'MEMBER']]);
    template = await seedTemplate(ds);
    const host = await ds.getRepository(Host).findOneByOrFail({ name: stack.hostName });
    const base = { templateId: template.id, hostId: host.id };
    baseEvent = await maxEventId(ds);
    m = await seedMachineRow(ds, {
      ...base,
      ownerId: u.owner.id,
      departmentId: deptA.id,
      status: 'running',
      storageGiB: 10,
    });
    clone = await seedMachineRow(ds, {
      ...base,
      ownerId: u.owner.id,
      departmentId: deptA.id,
      sourceMachineId: m.id,
      linkedClone: true,
    });
    peerVm = await seedMachineRow(ds, { ...base, ownerId: u.peer.id, departmentId: deptA.id });
    outsiderVm = await seedMachineRow(ds, { ...base, ownerId: u.outsider.id, departmentId: deptB.id });
    opId = randomUUID();
    await ds.getRepository(Operation).insert({
      id: opId,
      workflowId: `vm-${m.id}`,
      type: 'power',
      machineId: m.id,
      actorId: u.owner.id,
      idempotencyKey: null,
      status: 'succeeded',
      steps: [],
      input: null,
      error: null,
      startedAt: new Date(),
      finishedAt: new Date(),
    });
    for (const vm of [m, peerVm, outsiderVm]) {
      await ds.getRepository(Event).insert({
        resource: 'vms',
        action: 'update',
        resourceId: vm.id,
        payload: { machine: { id: vm.id } },
        actorId: vm.ownerId,
        workflowId: null,
        ownerId: vm.ownerId,
        departmentId: vm.departmentId,
        dedupeKey: `test:${randomUUID()}`,
      });
    }
    // A progress event written before its machine row existed (no owner on the row): routed through the request.
    const pendingOp = randomUUID();
    const pendingVm = randomUUID();
    await ds.getRepository(OperationRequest).insert({
      id: pendingOp,
      workflowId: `vm-${pendingVm}`,
      type: 'create',
      machineId: pendingVm,
      actorId: u.peer.id,
      ownerId: u.peer.id,
      departmentId: deptA.id,
    });
    await ds.getRepository(Event).insert({
      resource: 'vms',
      action: 'progress',
      resourceId: pendingVm,
      payload: { operationId: pendingOp, step: 'validate', status: 'started' },
      actorId: u.peer.id,
      workflowId: null,
      ownerId: null,
      departmentId: null,
      dedupeKey: `test:${randomUUID()}`,
    });

    const victim = await seedUser(ds);
    const newbie = await seedUser(ds);
    const leaver = await seedUser(ds);
    const deptD = await seedDepartment(ds, [
      [u.owner, 'MEMBER'],
      [leaver, 'MEMBER'],
    ]);
    await ds.query('INSERT INTO department_member (departmentId, userId, role) VALUES (?, ?, ?)', [
      deptA.id,
      leaver.id,
      'MEMBER',
    ]);
    const uniq = () => randomUUID().slice(0, 8);
    const tplPatch = await seedTemplate(ds);
    const tplDelete = await seedTemplate(ds);
    // A ready image open to department A (a row: no volume behind it), used by a template: the admin's
    // delete is refused (409) and its upload too (only a pending or failed image takes one).
    const image = ds.getRepository(Image).create({
      id: randomUUID(),
      name: `img ${uniq()}`,
      description: '',
      osFamily: 'linux',
      format: 'qcow2',
      virtualSizeBytes: 1024 ** 3,
      sizeBytes: 1024 ** 2,
      sha256: 'a'.repeat(64),
      firmware: 'bios',
      provisioning: 'cloud-init',
      origin: 'upload',
      hostName: stack.hostName,
      pool: 'vmflow',
      volumeName: `vmflow-image-${uniq()}`,
      path: null,
      status: 'ready',
      lastError: null,
      departmentIds: [deptA.id],
      currentOperationId: null,
    });
    await ds.getRepository(Image).insert(image);
    const tplImage = await seedTemplate(ds);
    await ds.getRepository(MachineTemplate).update({ id: tplImage.id }, { imageId: image.id });

    rows.push(
      {
        method: 'POST',
        route: '/api/auth/login',
        path: () => '/api/auth/login',
        body: () => ({ email: u.owner.email, password: 'test-password' }),
        expect: [200, 200, 200, 200, 200, 200],
      },
      {
        method: 'GET',
        route: '/api/auth/me',
        path: () => '/api/auth/me',
        expect: [401, 200, 200, 200, 200, 200],
      },
      {
        method: 'GET',
        route: '/api/users',
        path: () => '/api/users',
        expect: [401, 403, 403, 403, 403, 200],
      },
      {
        method: 'GET',
        route: '/api/users/:id',
        path: () => `/api/users/${u.owner.id}`,
        expect: [401, 200, 404, 404, 404, 200],
      },
      {
        method: 'POST',
        route: '/api/users',
        path: () => '/api/users',
        body: () => ({ email: `n-${uniq()}@test.vmflow.local`, password: 'password-123' }),
        expect: [401, 403, 403, 403, 403, 201],
      },
      {
        method: 'PATCH',
        route: '/api/users/:id',
        path: () => `/api/users/${u.owner.id}`,
        body: () => ({ firstName: 'Renamed' }),
        expect: [401, 200, 404, 404, 404, 200],
      },
      {
        method: 'DELETE',
        route: '/api/users/:id',
        path: () => `/api/users/${victim.id}`,
        expect: [401, 404, 404, 404, 404, 204],
      },
      {
        method: 'GET',
        route: '/api/departments',
        path: () => '/api/departments',
        expect: [401, 200, 200, 200, 200, 200],
      },
      {
        method: 'GET',
        route: '/api/departments/:id',
        path: () => `/api/departments/${deptA.id}`,
        expect: [401, 200, 200, 404, 200, 200],
      },
      {
        method: 'POST',
        route: '/api/departments',
        path: () => '/api/departments',
        body: () => ({ name: `dept ${uniq()}` }),
        expect: [401, 403, 403, 403, 403, 201],
      },
      {
        method: 'PATCH',
        route: '/api/departments/:id',
        path: () => `/api/departments/${deptA.id}`,
        body: () => ({ name: `dept ${uniq()}` }),
        expect: [401, 403, 403, 404, 403, 200],
      },
      {
        method: 'DELETE',
        route: '/api/departments/:id',
        path: () => `/api/departments/${deptD.id}`,
        expect: [401, 403, 404, 404, 404, 204],
      },
      {
        method: 'PUT',
        route: '/api/departments/:id/members/:userId',
        path: () => `/api/departments/${deptA.id}/members/${newbie.id}`,
        body: () => ({ role: 'MEMBER' }),
        expect: [401, 403, 403, 404, 403, 200],
      },
      {
        method: 'DELETE',
        route: '/api/departments/:id/members/:userId',
        path: () => `/api/departments/${deptA.id}/members/${leaver.id}`,
        expect: [401, 403, 403, 404, 403, 204],
      },
      {
        method: 'GET',
        route: '/api/templates',
        path: () => '/api/templates',
        expect: [401, 200, 200, 200, 200, 200],
      },
      {
        method: 'GET',
        route: '/api/templates/:id',
        path: () => `/api/templates/${template.id}`,
        expect: [401, 200, 200, 200, 200, 200],
      },
      {
        method: 'POST',
        route: '/api/templates',
        path: () => '/api/templates',
        body: () => ({ name: `tpl ${uniq()}`, cpu: 1, memory: 64, storage: 1, os: 'none' }),
        expect: [401, 403, 403, 403, 403, 201],
      },
      {
        method: 'PATCH',
        route: '/api/templates/:id',
        path: () => `/api/templates/${tplPatch.id}`,
        body: () => ({ description: 'changed' }),
        expect: [401, 403, 403, 403, 403, 200],
      },
      {
        method: 'DELETE',
        route: '/api/templates/:id',
        path: () => `/api/templates/${tplDelete.id}`,
        expect: [401, 403, 403, 403, 403, 204],
      },
      {
        method: 'GET',
        route: '/api/images',
        path: () => '/api/images',
        expect: [401, 200, 200, 200, 200, 200],
      },
      {
        method: 'GET',
        route: '/api/images/:id',
        path: () => `/api/images/${image.id}`,
        expect: [401, 200, 200, 404, 200, 200],
      },
      {
        method: 'POST',
        route: '/api/images',
        path: () => '/api/images',
        body: () => ({
          name: `img ${uniq()}`,
          osFamily: 'linux',
          format: 'qcow2',
          sha256: 'b'.repeat(64),
          hostName: stack.hostName,
        }),
        expect: [401, 403, 403, 403, 403, 201],
      },
      {
        method: 'PATCH',
        route: '/api/images/:id',
        path: () => `/api/images/${image.id}`,
        body: () => ({ description: 'changed' }),
        expect: [401, 403, 403, 404, 403, 200],
      },
      {
        method: 'DELETE',
        route: '/api/images/:id',
        path: () => `/api/images/${image.id}`,
        expect: [401, 403, 403, 404, 403, 409],
      },
      {
        method: 'PUT',
        route: '/api/images/:id/content',
        path: () => `/api/images/${image.id}/content`,
        expect: [401, 403, 403, 404, 403, 409],
      },
      {
        method: 'GET',
        route: '/api/machines',
        path: () => '/api/machines',
        expect: [401, 200, 200, 200, 200, 200],
      },
      {
        method: 'GET',
        route: '/api/machines/:id',
        path: () => `/api/machines/${m.id}`,
        expect: [401, 200, 404, 404, 200, 200],
      },
      {
        method: 'GET',
        route: '/api/machines/:id/metrics',
        path: () => `/api/machines/${m.id}/metrics`,
        expect: [401, 200, 404, 404, 200, 200],
      },
      // A taken name: 409 for whoever may create in department A (a member, for itself), 404 for an outsider.
      {
        method: 'POST',
        route: '/api/machines',
        path: () => '/api/machines',
        body: () => ({ name: m.name, templateId: template.id, departmentId: deptA.id }),
        expect: [401, 409, 409, 404, 409, 409],
      },
      // Shrinking the disk: refused (422) for whoever may change hardware; owners may not (403).
      {
        method: 'PATCH',
        route: '/api/machines/:id/hardware',
        path: () => `/api/machines/${m.id}/hardware`,
        body: () => ({ storage: 5 }),
        expect: [401, 403, 404, 404, 422, 422],
      },
      // The source is running: refused for whoever may clone it.
      {
        method: 'POST',
        route: '/api/machines/:id/clone',
        path: () => `/api/machines/${m.id}/clone`,
        body: () => ({ name: `c ${uniq()}` }),
        expect: [401, 422, 404, 404, 422, 422],
      },
      {
        method: 'POST',
        route: '/api/machines/:id/power',
        path: () => `/api/machines/${m.id}/power`,
        body: () => ({ action: 'resume' }),
        expect: [401, 422, 404, 404, 422, 422],
      },
      // It backs a linked clone: refused.
      {
        method: 'DELETE',
        route: '/api/machines/:id',
        path: () => `/api/machines/${m.id}`,
        expect: [401, 422, 404, 404, 422, 422],
      },
      {
        method: 'GET',
        route: '/api/operations/:id',
        path: () => `/api/operations/${opId}`,
        expect: [401, 200, 404, 404, 200, 200],
      },
      // Guest reads of the peer's machine (off): whoever may see it gets 503, before anything is asked of a
      // host (the guest suite, guests/guest-commands.test.ts, proves the reads through the host's worker).
      ...[
        '/api/machines/:id/guest',
        '/api/machines/:id/processes',
        '/api/machines/:id/guest/processes',
        '/api/machines/:id/guest/services',
        '/api/machines/:id/applications',
        '/api/machines/:id/guest/applications',
      ].map((route) => ({
        method: 'GET',
        route,
        path: () => route.replace(':id', peerVm.id),
        expect: [401, 404, 503, 404, 503, 503] as AccessRow['expect'],
      })),
      // Guest commands on the peer's machine (off): its owner, a plain member, may not (403); managers and
      // admins get past the permission to the machine's status (503: not running).
      {
        method: 'POST',
        route: '/api/machines/:id/guest/exec',
        path: () => `/api/machines/${peerVm.id}/guest/exec`,
        body: () => ({ command: '/bin/true' }),
        expect: [401, 404, 403, 404, 503, 503],
      },
      {
        method: 'POST',
        route: '/api/machines/:id/guest/processes/:pid/kill',
        path: () => `/api/machines/${peerVm.id}/guest/processes/1234/kill`,
        body: () => ({}),
        expect: [401, 404, 403, 404, 503, 503],
      },
      {
        method: 'POST',
        route: '/api/machines/:id/guest/services/:name',
        path: () => `/api/machines/${peerVm.id}/guest/services/cron.service`,
        body: () => ({ action: 'restart' }),
        expect: [401, 404, 403, 404, 503, 503],
      },
      // Finished: refused for whoever may cancel it.
      {
        method: 'POST',
        route: '/api/operations/:id/cancel',
        path: () => `/api/operations/${opId}/cancel`,
        expect: [401, 422, 404, 404, 422, 422],
      },
      {
        method: 'GET',
        route: '/api/events',
        path: () => `/api/events?after=${baseEvent}`,
        expect: [401, 200, 200, 200, 200, 200],
      },
      {
        method: 'GET',
        route: '/api/hosts',
        path: () => '/api/hosts',
        expect: [401, 403, 403, 403, 403, 200],
      },
      { method: 'GET', route: '/healthz', path: () => '/healthz', expect: [200, 200, 200, 200, 200, 200] },
      { method: 'GET', route: '/readyz', path: () => '/readyz', expect: [200, 200, 200, 200, 200, 200] },
      {
        method: 'GET',
        route: '/api/openapi.json',
        path: () => '/api/openapi.json',
        expect: [200, 200, 200, 200, 200, 200],
      },
    );
  });

  afterAll(async () => {
    await h?.close();
    await stack?.stop();
  });

  it('the table covers every route of the app', () => {
    // Firewall and network routes have tables of their own (firewall/firewall-access.test.ts,
    // networks/api.test.ts), each checking that it covers every route of its tag.
    expect(uncoveredRoutes(h.api.routes, rows, (r) => r.tag !== 'firewall' && r.tag !== 'networks')).toEqual(
      [],
    );
  });

  it('answers each caller as expected', async () => {
    const { got, want } = await runAccessMatrix(h, u, rows, {
      internals: /at .+\.ts:\d+|SELECT |INSERT |virDomain|stack/i,
      detail: true,
    });
    expect(got).toEqual(want);
  });

  it('lists only what each caller may see', async () => {
    const ids = async (caller: Exclude<Caller, 'anonymous'>) => {
      const res = await h.call('GET', '/api/machines?limit=100', { as: u[caller] });
      return new Set((res.body.items as Array<{ id: string }>).map((x) => x.id));
    };
    const mine = [m.id, clone.id, peerVm.id, outsiderVm.id];
    const visible = async (c: Exclude<Caller, 'anonymous'>) =>
      [...(await ids(c))].filter((id) => mine.includes(id)).sort();
    expect(await visible('owner')).toEqual([m.id, clone.id].sort());
    expect(await visible('peer')).toEqual([peerVm.id]);
    expect(await visible('outsider')).toEqual([outsiderVm.id]);
    expect(await visible('manager')).toEqual([m.id, clone.id, peerVm.id].sort());
    const adminRes = await h.call('GET', `/api/machines?department=${deptA.id}&limit=100`, { as: u.admin });
    expect((adminRes.body.items as Machine[]).map((x) => x.id).sort()).toEqual(
      [m.id, clone.id, peerVm.id].sort(),
    );
    // Filters never widen the scope: a member asking for another owner's machines gets none.
    const peers = await h.call('GET', `/api/machines?owner=${u.peer.id}`, { as: u.owner });
    expect(peers.body.items).toEqual([]);
    const deps = await h.call('GET', '/api/departments', { as: u.outsider });
    expect((deps.body.items as Department[]).map((d) => d.id)).toEqual([deptB.id]);
    const members = await h.call('GET', `/api/departments/${deptA.id}`, { as: u.peer });
    expect(members.body.members).toBeUndefined();
    const asManager = await h.call('GET', `/api/departments/${deptA.id}`, { as: u.manager });
    expect((asManager.body.members as Array<{ userId: string }>).map((x) => x.userId)).toContain(u.peer.id);
  });

  it('catch-up returns only the events each caller may see', async () => {
    const seen = async (caller: Exclude<Caller, 'anonymous'>) => {
      const end = Date.now() + 10_000;
      for (;;) {
        const res = await h.call('GET', `/api/events?after=${baseEvent}&limit=1000`, { as: u[caller] });
        const vms = (
          res.body.events as Array<{ resource: string; resourceId: string; eventId: number }>
        ).filter((e) => e.resource === 'vms');
        const ids = vms.map((e) => e.eventId);
        expect([...ids].sort((a, b) => a - b)).toEqual(ids); // in order
        if (res.body.lastEventId >= baseEvent + 4 || Date.now() > end)
          return new Set(vms.map((e) => e.resourceId));
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const owner = await seen('owner');
    expect(owner.has(m.id)).toBe(true);
    expect(owner.has(peerVm.id) || owner.has(outsiderVm.id)).toBe(false);
    const peer = await seen('peer');
    expect(peer.has(peerVm.id)).toBe(true);
    expect(peer.has(m.id) || peer.has(outsiderVm.id)).toBe(false);
    expect(peer.size).toBe(2); // its machine, and the progress event routed through its operation request
    const manager = await seen('manager');
    expect([m.id, peerVm.id].every((id) => manager.has(id))).toBe(true);
    expect(manager.has(outsiderVm.id)).toBe(false);
    const outsider = await seen('outsider');
    expect([...outsider]).toEqual([outsiderVm.id]);
    const admin = await seen('admin');
    expect([m.id, peerVm.id, outsiderVm.id].every((id) => admin.has(id))).toBe(true);
  });
});
