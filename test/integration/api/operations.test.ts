/**
 * Real machine operations over HTTP on the real stack (Temporal, workers with real activities, libvirtd,
 * MariaDB), followed live by real socket.io clients:
 * - create → power → hardware → clone → destroy: the owner's and the manager's sockets receive every
 *   `vms:progress` and resource event of those machines, exactly the rows of the event table, in order;
 *   a client of another department receives none; a client that disconnects mid-operation catches up on
 *   reconnect, without gaps or duplicates;
 * - Idempotency-Key retries (sequential and concurrent), 409 on concurrent operations, cancel.
 */
import { randomUUID } from 'node:crypto';
import { Machine } from '../../../src/entities/machine';
import { Operation } from '../../../src/entities/operation';
import { OperationRequest } from '../../../src/entities/operation-request';
import { type Department } from '../../../src/entities/department';
import { type MachineTemplate } from '../../../src/entities/machine-template';
import { type User } from '../../../src/entities/user';
import { startApi, type ApiHarness, type RecordingSocket } from '../../support/api-harness';
import { seedDepartment, seedTemplate, seedUser } from '../../support/db';
import { NO_HYPERVISOR_TRACE, tracesOf } from '../../support/leftovers';
import { destroyIfPresent, eventsOf, waitFor } from '../../support/machines';
import { startStack, type Stack } from '../../support/stack';

describe('machine operations over HTTP, followed over Socket.IO', () => {
  let stack: Stack;
  let h: ApiHarness;
  let owner: User;
  let manager: User;
  let stranger: User;
  let dept: Department;
  let template: MachineTemplate;
  const made: string[] = [];

  const op = async (id: string, as: User = owner, deadline = 240_000) =>
    waitFor(
      async () => {
        const r = await h.call('GET', `/api/operations/${id}`, { as });
        expect(r.status).toBe(200);
        return r.body.status !== 'running' ? r.body : undefined;
      },
      `operation ${id}`,
      deadline,
    );
  const create = async (
    name: string,
    extra: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ) => {
    const r = await h.call('POST', '/api/machines', {
      as: owner,
      body: { name, templateId: template.id, departmentId: dept.id, ...extra },
      headers,
    });
    expect(r.status).toBe(202);
    made.push(r.body.machine.id);
    return r;
  };
  /** The events a socket got about a machine, as event ids. */
  const idsFor = (s: RecordingSocket, machineId: string) =>
    s.events
      .filter((e) => e.payload && e.payload.resourceId === machineId)
      .map((e) => e.payload.eventId as number);
  /** The event table's rows about a machine, as ids. */
  const dbIds = async (machineId: string) =>
    (await eventsOf(stack.dataSource, machineId)).map((e) => Number(e.id));

  beforeAll(async () => {
    stack = await startStack();
    h = await startApi(stack);
    owner = await seedUser(stack.dataSource);
    manager = await seedUser(stack.dataSource);
    stranger = await seedUser(stack.dataSource);
    dept = await seedDepartment(stack.dataSource, [
      [owner, 'MEMBER'],
      [manager, 'MANAGER'],
    ]);
    await seedDepartment(stack.dataSource, [[stranger, 'MANAGER']]);
    template = await seedTemplate(stack.dataSource);
  });
  afterAll(async () => {
    for (const id of made.reverse()) await destroyIfPresent(stack, id).catch(() => undefined);
    await h?.close();
    await stack?.stop();
  });

  it('create → power → hardware → clone → destroy, every step pushed live, in order, to those allowed only', async () => {
    const ownerSock = await h.socket(owner);
    const managerSock = await h.socket(manager);
    const strangerSock = await h.socket(stranger);
    const midSock = await h.socket(owner);

    // create
    const created = await create(`api seq ${randomUUID().slice(0, 6)}`, { guestPassword: 's3cret-guest' });
    const machineId = created.body.machine.id as string;
    expect(created.body.machine).toMatchObject({
      id: machineId,
      status: 'creating',
      ownerId: owner.id,
      departmentId: dept.id,
      cpu: 1,
      memoryMiB: 64,
    });
    expect(created.body.operation).toMatchObject({ type: 'create', machineId, status: 'running' });
    expect(created.body.operation.temporalUrl).toBe(
      `http://127.0.0.1:8233/namespaces/default/workflows/vm-${machineId}`,
    );
    expect(created.headers.get('location')).toBe(`/api/operations/${created.body.operation.id}`);
    const createOp = await op(created.body.operation.id);
    expect(createOp).toMatchObject({ status: 'succeeded', type: 'create' });
    expect(createOp.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual(
      expect.arrayContaining([
        'validate:started',
        'validate:completed',
        'defineDomain:completed',
        'finalize:completed',
      ]),
    );
    expect((await h.call('GET', `/api/machines/${machineId}`, { as: owner })).body).toMatchObject({
      status: 'off',
      hostName: stack.hostName,
    });
    // The guest password travelled sealed: never in the operation, the events or the machine view.
    const everything = JSON.stringify([
      createOp,
      await eventsOf(stack.dataSource, machineId),
      (await h.call('GET', `/api/machines/${machineId}`, { as: owner })).body,
    ]);
    expect(everything).not.toContain('s3cret-guest');

    // power: start; one socket drops mid-operation and comes back with its last event id
    const start = await h.call('POST', `/api/machines/${machineId}/power`, {
      as: owner,
      body: { action: 'start' },
    });
    expect(start.status).toBe(202);
    await midSock.waitFor(
      (e) => e.name === 'vms:progress' && e.payload.data.operationId === start.body.operation.id,
      'a progress event of the start',
    );
    midSock.close();
    const before = midSock.events.filter((e) => e.payload?.eventId);
    const lastSeen = before[before.length - 1]!.payload.eventId as number;
    expect((await op(start.body.operation.id)).status).toBe('succeeded');
    const back = await h.socket(owner, { lastEventId: lastSeen });

    const off = await h.call('POST', `/api/machines/${machineId}/power`, {
      as: owner,
      body: { action: 'poweroff' },
    });
    expect(off.status).toBe(202);
    expect((await op(off.body.operation.id)).status).toBe('succeeded');

    // hardware (a manager of the department)
    const hw = await h.call('PATCH', `/api/machines/${machineId}/hardware`, {
      as: manager,
      body: { cpu: 2, memory: 96, storage: 2 },
    });
    expect(hw.status).toBe(202);
    expect((await op(hw.body.operation.id, manager)).status).toBe('succeeded');
    expect((await h.call('GET', `/api/machines/${machineId}`, { as: owner })).body).toMatchObject({
      cpu: 2,
      memoryMiB: 96,
      storageGiB: 2,
      status: 'off',
    });

    // clone
    const cl = await h.call('POST', `/api/machines/${machineId}/clone`, {
      as: owner,
      body: { name: `api clone ${randomUUID().slice(0, 6)}` },
    });
    expect(cl.status).toBe(202);
    const cloneId = cl.body.machine.id as string;
    made.push(cloneId);
    expect(cl.body.machine).toMatchObject({
      status: 'creating',
      sourceMachineId: machineId,
      linkedClone: false,
    });
    expect((await op(cl.body.operation.id)).status).toBe('succeeded');
    expect((await h.call('GET', `/api/machines/${cloneId}`, { as: owner })).body.status).toBe('off');

    // destroy both
    for (const id of [cloneId, machineId]) {
      const del = await h.call('DELETE', `/api/machines/${id}`, { as: owner });
      expect(del.status).toBe(202);
      expect((await op(del.body.operation.id)).status).toBe('succeeded');
      expect((await h.call('GET', `/api/machines/${id}`, { as: owner })).status).toBe(404);
      expect(await tracesOf(id, stack)).toMatchObject({ ...NO_HYPERVISOR_TRACE, row: null });
    }

    // Every event row about the two machines reached the owner's and the manager's sockets, in order.
    for (const id of [machineId, cloneId]) {
      const want = await dbIds(id);
      expect(want.length).toBeGreaterThan(10);
      await waitFor(
        async () =>
          idsFor(ownerSock, id).length >= want.length && idsFor(managerSock, id).length >= want.length,
        `socket events of ${id}`,
        10_000,
      );
      expect(idsFor(ownerSock, id)).toEqual(want);
      expect(idsFor(managerSock, id)).toEqual(want);
    }
    // Including each progress step and each resource event, by name.
    const names = ownerSock.events.filter((e) => e.payload?.resourceId === machineId).map((e) => e.name);
    for (const n of [
      'vms:create',
      'vms:progress',
      'vms:update',
      'vms:power_on',
      'vms:power_off',
      'vms:delete',
    ])
      expect(names).toContain(n);
    const sample = ownerSock.events.find((e) => e.name === 'vms:power_on')!.payload;
    expect(sample).toEqual({
      eventId: expect.any(Number),
      resource: 'vms',
      action: 'power_on',
      resourceId: machineId,
      data: expect.objectContaining({ operationId: start.body.operation.id }),
      triggeredBy: owner.id,
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
    });
    // The other department's manager got nothing about them (nor any VM event at all).
    expect(strangerSock.events.filter((e) => e.name.startsWith('vms:'))).toEqual([]);
    // The client that dropped mid-operation: what it saw before + what it caught up = everything, once, in order.
    const after = back.events
      .filter((e) => e.payload?.resourceId === machineId)
      .map((e) => e.payload.eventId as number);
    const all = [
      ...before.filter((e) => e.payload.resourceId === machineId).map((e) => e.payload.eventId as number),
      ...after,
    ];
    expect(all).toEqual(await dbIds(machineId));
    expect(after[0]).toBeGreaterThan(lastSeen);
  }, 900_000);

  it('Idempotency-Key: a retry returns the first response and starts nothing new; concurrent ones make one operation', async () => {
    const key = `create-${randomUUID()}`;
    const name = `api idem ${randomUUID().slice(0, 6)}`;
    const [a, b] = await Promise.all([
      h.call('POST', '/api/machines', {
        as: owner,
        body: { name, templateId: template.id, departmentId: dept.id },
        headers: { 'Idempotency-Key': key },
      }),
      h.call('POST', '/api/machines', {
        as: owner,
        body: { name, templateId: template.id, departmentId: dept.id },
        headers: { 'Idempotency-Key': key },
      }),
    ]);
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(b.body).toEqual(a.body);
    const machineId = a.body.machine.id as string;
    made.push(machineId);
    expect(
      [a.headers.get('idempotent-replayed'), b.headers.get('idempotent-replayed')].filter(Boolean),
    ).toEqual(['true']);
    expect((await op(a.body.operation.id)).status).toBe('succeeded');
    const retry = await h.call('POST', '/api/machines', {
      as: owner,
      body: { name, templateId: template.id, departmentId: dept.id },
      headers: { 'Idempotency-Key': key },
    });
    expect(retry.status).toBe(202);
    expect(retry.body).toEqual(a.body);
    expect(await stack.dataSource.getRepository(Machine).countBy({ name, departmentId: dept.id })).toBe(1);
    expect(await stack.dataSource.getRepository(OperationRequest).countBy({ machineId })).toBe(1);
    const recorded = await stack.dataSource
      .getRepository(Operation)
      .findOneByOrFail({ id: a.body.operation.id });
    expect(recorded.idempotencyKey).toBe(`${owner.id}:${key}`);

    // The same key for a power action: one operation however often it is sent.
    const pkey = `power-${randomUUID()}`;
    const p1 = await h.call('POST', `/api/machines/${machineId}/power`, {
      as: owner,
      body: { action: 'start' },
      headers: { 'Idempotency-Key': pkey },
    });
    const p2 = await h.call('POST', `/api/machines/${machineId}/power`, {
      as: owner,
      body: { action: 'start' },
      headers: { 'Idempotency-Key': pkey },
    });
    expect(p1.status).toBe(202);
    expect(p2.body.operation.id).toBe(p1.body.operation.id);
    expect((await op(p1.body.operation.id)).status).toBe('succeeded');
    const p3 = await h.call('POST', `/api/machines/${machineId}/power`, {
      as: owner,
      body: { action: 'start' },
      headers: { 'Idempotency-Key': pkey },
    });
    expect(p3.status).toBe(202);
    expect(p3.body.operation.id).toBe(p1.body.operation.id);
    expect(await stack.dataSource.getRepository(OperationRequest).countBy({ machineId })).toBe(2);
    // The same key with another request is refused; another user's identical key is its own.
    const other = await h.call('POST', `/api/machines/${machineId}/power`, {
      as: owner,
      body: { action: 'poweroff' },
      headers: { 'Idempotency-Key': pkey },
    });
    expect(other.status).toBe(422);
    const bad = await h.call('POST', `/api/machines/${machineId}/power`, {
      as: owner,
      body: { action: 'poweroff' },
      headers: { 'Idempotency-Key': 'bad key with spaces' },
    });
    expect(bad.status).toBe(400);
    const offed = await h.call('POST', `/api/machines/${machineId}/power`, {
      as: owner,
      body: { action: 'poweroff' },
    });
    expect((await op(offed.body.operation.id)).status).toBe('succeeded');
  }, 600_000);

  it('a failure the workflow reports shows in the operation (status, failed step, error) and the machine row', async () => {
    const created = await create(`api too big ${randomUUID().slice(0, 6)}`, { cpu: 64 });
    const failed = await op(created.body.operation.id);
    expect(failed.status).toBe('failed');
    expect(failed.error).toMatch(/cpu 64 exceeds the host's \d+ CPUs/);
    expect(failed.steps).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          name: 'validate',
          status: 'failed',
          error: expect.stringMatching(/exceeds/),
        }),
      ]),
    );
    expect(failed.temporalUrl).toContain(`/workflows/vm-${created.body.machine.id}`);
    // It never got past validation: no row, nothing on the hypervisor.
    expect((await h.call('GET', `/api/machines/${created.body.machine.id}`, { as: owner })).status).toBe(404);
  }, 300_000);

  it("a guest command's stored output is shown to those who may run commands only (admins, managers)", async () => {
    const created = await create(`api output ${randomUUID().slice(0, 6)}`);
    expect((await op(created.body.operation.id)).status).toBe('succeeded');
    const id = randomUUID();
    // What a guest exec that printed a secret file leaves (written as the workflow would: the row's result).
    await stack.dataSource.getRepository(Operation).insert({
      id,
      workflowId: `vm-${created.body.machine.id}`,
      type: 'guest_exec',
      machineId: created.body.machine.id,
      resource: 'vms',
      resourceId: created.body.machine.id,
      actorId: manager.id,
      idempotencyKey: null,
      status: 'succeeded',
      steps: [],
      input: { command: '/bin/cat', args: ['/etc/shadow'] },
      error: null,
      result: { exitCode: 0, stdout: 'root:$6$secret-hash:19000:0:99999:7:::' },
      startedAt: new Date(),
      finishedAt: new Date(),
    });
    const asOwner = await h.call('GET', `/api/operations/${id}`, { as: owner });
    expect(asOwner.status).toBe(200);
    expect(asOwner.body).toMatchObject({ id, type: 'guest_exec', status: 'succeeded' });
    expect(asOwner.body).not.toHaveProperty('result');
    expect(JSON.stringify(asOwner.body)).not.toContain('secret-hash');
    const asManager = await h.call('GET', `/api/operations/${id}`, { as: manager });
    expect(asManager.body.result).toEqual({ exitCode: 0, stdout: 'root:$6$secret-hash:19000:0:99999:7:::' });
    expect((await h.call('GET', `/api/operations/${id}`, { as: stranger })).status).toBe(404);
  }, 300_000);

  it('409 names the running operation; cancel stops it and its compensation leaves the machine as it was', async () => {
    const created = await create(`api busy ${randomUUID().slice(0, 6)}`, { start: true });
    const machineId = created.body.machine.id as string;
    expect((await op(created.body.operation.id)).status).toBe('succeeded');
    // A graceful shutdown of a guest with no OS waits its whole deadline: a long-running operation.
    const shut = await h.call('POST', `/api/machines/${machineId}/power`, {
      as: owner,
      body: { action: 'shutdown', shutdownTimeoutSec: 120 },
    });
    expect(shut.status).toBe(202);
    const shutId = shut.body.operation.id as string;
    await waitFor(
      async () =>
        (await h.call('GET', `/api/operations/${shutId}`, { as: owner })).body.steps.some(
          (s: { name: string }) => s.name === 'shutdownDomain',
        ),
      'the shutdown step',
    );
    const busy = await h.call('POST', `/api/machines/${machineId}/power`, {
      as: owner,
      body: { action: 'poweroff' },
    });
    expect(busy.status).toBe(409);
    expect(busy.body.detail).toContain(shutId);
    expect(busy.body.runningOperation).toMatchObject({ id: shutId, type: 'power' });
    const del = await h.call('DELETE', `/api/machines/${machineId}`, { as: manager });
    expect(del.status).toBe(409);
    // Others may not cancel it; the owner may.
    expect((await h.call('POST', `/api/operations/${shutId}/cancel`, { as: stranger })).status).toBe(404);
    const cancel = await h.call('POST', `/api/operations/${shutId}/cancel`, { as: owner });
    expect(cancel.status).toBe(202);
    const done = await op(shutId);
    expect(done.status).toBe('cancelled');
    expect((await h.call('GET', `/api/machines/${machineId}`, { as: owner })).body).toMatchObject({
      status: 'running',
      currentOperationId: null,
    });
    expect((await h.call('POST', `/api/operations/${shutId}/cancel`, { as: owner })).status).toBe(422);

    // Cancelling a create removes everything it made.
    const c2 = await create(`api cancelled ${randomUUID().slice(0, 6)}`);
    const c2Id = c2.body.machine.id as string;
    const cancelled = await h.call('POST', `/api/operations/${c2.body.operation.id}/cancel`, { as: owner });
    expect(cancelled.status).toBe(202);
    expect((await op(c2.body.operation.id)).status).toBe('cancelled');
    expect(await tracesOf(c2Id, stack)).toMatchObject({ ...NO_HYPERVISOR_TRACE, row: null });

    const off = await h.call('POST', `/api/machines/${machineId}/power`, {
      as: owner,
      body: { action: 'poweroff' },
    });
    expect((await op(off.body.operation.id)).status).toBe('succeeded');
  }, 600_000);
});
