/**
 * The Socket.IO side against real clients: the JWT handshake, room isolation (a member never receives
 * another member's VM events), rooms that follow membership changes, catch-up from `lastEventId`, and
 * the relay's ordering across commit-order holes in the event table.
 */
import { randomUUID } from 'node:crypto';
import { type Department } from '../../../src/entities/department';
import { Event } from '../../../src/entities/event';
import { type User } from '../../../src/entities/user';
import { maxEventId, startApi, type ApiHarness } from '../../support/api-harness';
import { seedDepartment, seedUser } from '../../support/db';
import { waitFor } from '../../support/machines';
import { startStack, type Stack } from '../../support/stack';

describe('Socket.IO: handshake, rooms, catch-up and ordering', () => {
  let stack: Stack;
  let h: ApiHarness;
  let admin: User;
  let alice: User; // MEMBER of dept
  let bob: User; // MEMBER of dept
  let carol: User; // in no department (yet)
  let dept: Department;

  /** Writes a VM event row as an activity would. */
  const vmEvent = (ownerId: string, departmentId: string, action = 'update', resourceId = randomUUID()) =>
    stack.dataSource
      .getRepository(Event)
      .insert({
        resource: 'vms',
        action,
        resourceId,
        payload: { machine: { id: resourceId } },
        actorId: ownerId,
        workflowId: null,
        ownerId,
        departmentId,
        dedupeKey: `test:${randomUUID()}`,
      })
      .then((r) => ({ id: Number(r.identifiers[0]!.id), resourceId }));

  beforeAll(async () => {
    stack = await startStack({ workers: false });
    h = await startApi(stack);
    admin = await seedUser(stack.dataSource, 'ADMIN');
    alice = await seedUser(stack.dataSource);
    bob = await seedUser(stack.dataSource);
    carol = await seedUser(stack.dataSource);
    dept = await seedDepartment(stack.dataSource, [
      [alice, 'MEMBER'],
      [bob, 'MEMBER'],
    ]);
  });
  afterAll(async () => {
    await h?.close();
    await stack?.stop();
  });

  it('refuses a handshake without a valid token; accepts auth.token and the Authorization header', async () => {
    await expect(h.socket(null)).rejects.toThrow('unauthorized');
    await expect(h.socket(null, { token: 'not-a-jwt' })).rejects.toThrow('unauthorized');
    const forged = h.token(alice).slice(0, -4) + 'AAAA';
    await expect(h.socket(null, { token: forged })).rejects.toThrow('unauthorized');
    const ghost = { id: randomUUID(), role: 'ADMIN' as const };
    await expect(h.socket(null, { token: h.token(ghost) })).rejects.toThrow('unauthorized');
    const ok = await h.socket(alice);
    expect(ok.socket.connected).toBe(true);
    ok.close();
    const { io } = await import('socket.io-client');
    const viaHeader = io(h.url, {
      transports: ['websocket'],
      extraHeaders: { Authorization: `Bearer ${h.token(bob)}` },
      forceNew: true,
      reconnection: false,
    });
    await new Promise<void>((resolve, reject) => {
      viaHeader.once('relay:synced', () => resolve());
      viaHeader.once('connect_error', reject);
    });
    viaHeader.close();
  });

  it("a member receives its own VM events and its department's, never another member's VM events", async () => {
    const a = await h.socket(alice);
    const b = await h.socket(bob);
    const adm = await h.socket(admin);
    const mine = await vmEvent(alice.id, dept.id);
    const theirs = await vmEvent(bob.id, dept.id);
    const renamed = await h.call('PATCH', `/api/departments/${dept.id}`, {
      as: admin,
      body: { name: `renamed ${randomUUID().slice(0, 6)}` },
    });
    expect(renamed.status).toBe(200);
    await a.waitFor((e) => e.name === 'departments:update', 'the department event');
    await b.waitFor((e) => e.name === 'departments:update', 'the department event');
    await adm.waitFor((e) => e.payload?.eventId === theirs.id, "bob's event at the admin");
    expect(a.events.filter((e) => e.name.startsWith('vms:')).map((e) => e.payload.resourceId)).toEqual([
      mine.resourceId,
    ]);
    expect(b.events.filter((e) => e.name.startsWith('vms:')).map((e) => e.payload.resourceId)).toEqual([
      theirs.resourceId,
    ]);
    expect(adm.events.filter((e) => e.name === 'vms:update').map((e) => e.payload.eventId)).toEqual([
      mine.id,
      theirs.id,
    ]);
    for (const s of [a, b, adm]) s.close();
  });

  it('rooms follow membership: made MANAGER, a user receives the department’s VM events; removed, it stops', async () => {
    const c = await h.socket(carol);
    const before = await vmEvent(alice.id, dept.id);
    expect(
      (
        await h.call('PUT', `/api/departments/${dept.id}/members/${carol.id}`, {
          as: admin,
          body: { role: 'MANAGER' },
        })
      ).status,
    ).toBe(200);
    await c.waitFor((e) => e.name === 'users:update', 'the membership event');
    const during = await vmEvent(bob.id, dept.id);
    await c.waitFor((e) => e.payload?.eventId === during.id, 'a VM event of the department');
    expect(
      (await h.call('DELETE', `/api/departments/${dept.id}/members/${carol.id}`, { as: admin })).status,
    ).toBe(204);
    await waitFor(
      async () => c.events.filter((e) => e.name === 'users:update').length >= 2,
      'the removal event',
    );
    const after = await vmEvent(bob.id, dept.id);
    const marker = await vmEvent(carol.id, dept.id); // carol's own: still delivered, and after `after`
    await c.waitFor((e) => e.payload?.eventId === marker.id, 'its own VM event');
    const got = c.events.filter((e) => e.name.startsWith('vms:')).map((e) => e.payload.eventId);
    expect(got).toEqual([during.id, marker.id]);
    expect(got).not.toContain(before.id);
    expect(got).not.toContain(after.id);
    c.close();
  });

  it('a client reconnecting with its last event id gets what it missed, filtered, in order, once', async () => {
    const first = await h.socket(alice);
    const own1 = await vmEvent(alice.id, dept.id);
    await first.waitFor((e) => e.payload?.eventId === own1.id, 'a live event');
    const last = first.events[first.events.length - 1]!.payload.eventId as number;
    first.close();
    const missed = [] as number[];
    for (let i = 0; i < 5; i++) {
      missed.push((await vmEvent(alice.id, dept.id)).id);
      await vmEvent(bob.id, dept.id); // not hers
    }
    await h.call('PATCH', `/api/departments/${dept.id}`, {
      as: admin,
      body: { name: `again ${randomUUID().slice(0, 6)}` },
    });
    const target = await maxEventId(stack.dataSource);
    await waitFor(async () => h.api.relay.watermark >= target, 'the relay to pass the writes', 10_000);
    const again = await h.socket(alice, { lastEventId: last });
    const live = await vmEvent(alice.id, dept.id);
    await again.waitFor((e) => e.payload?.eventId === live.id, 'the live event after catch-up');
    const vms = again.events.filter((e) => e.name.startsWith('vms:')).map((e) => e.payload.eventId as number);
    expect(vms).toEqual([...missed, live.id]);
    expect(again.events.some((e) => e.name === 'departments:update')).toBe(true);
    const all = again.events.filter((e) => e.payload?.eventId).map((e) => e.payload.eventId as number);
    expect(new Set(all).size).toBe(all.length);
    expect([...all].sort((x, y) => x - y)).toEqual(all);
    // The same through REST catch-up.
    const rest = await h.call('GET', `/api/events?after=${last}`, { as: alice });
    expect(
      (rest.body.events as Array<{ resource: string; eventId: number }>)
        .filter((e) => e.resource === 'vms')
        .map((e) => e.eventId),
    ).toEqual([...missed, live.id]);
    again.close();
  });

  it('holds events behind a row still being committed, then delivers both in id order; skips ids that will never exist', async () => {
    const s = await h.socket(alice);
    const qr = stack.dataSource.createQueryRunner();
    await qr.connect();
    await qr.startTransaction();
    let held: number;
    try {
      const r = await qr.manager.getRepository(Event).insert({
        resource: 'vms',
        action: 'update',
        resourceId: randomUUID(),
        payload: {},
        actorId: alice.id,
        workflowId: null,
        ownerId: alice.id,
        departmentId: dept.id,
        dedupeKey: `test:${randomUUID()}`,
      });
      held = Number(r.identifiers[0]!.id);
      const later = await vmEvent(alice.id, dept.id);
      expect(later.id).toBeGreaterThan(held);
      // Not delivered while the lower id is uncommitted, and REST catch-up does not step past it either.
      await new Promise((r2) => setTimeout(r2, 600));
      expect(s.events.some((e) => e.payload?.eventId === later.id)).toBe(false);
      expect(h.api.relay.watermark).toBeLessThan(held);
      const rest = await h.call('GET', `/api/events?after=${held - 1}`, { as: alice });
      expect(rest.body.lastEventId).toBeLessThan(held);
      await qr.commitTransaction();
      await s.waitFor((e) => e.payload?.eventId === later.id, 'the held event');
      // Only these two: other runs on this machine share the database, and alice's socket also hears
      // `authenticated` events (templates) that they write meanwhile.
      const ids = s.events
        .filter((e) => e.payload?.eventId === held || e.payload?.eventId === later.id)
        .map((e) => e.payload.eventId);
      expect(ids).toEqual([held, later.id]);
    } finally {
      if (qr.isTransactionActive) await qr.rollbackTransaction();
      await qr.release();
    }
    // A duplicate insert that is ignored still burns an id: a permanent hole the relay steps over quickly.
    const dup = `test:${randomUUID()}`;
    await stack.dataSource.query(
      'INSERT IGNORE INTO event (resource, action, resourceId, payload, ownerId, departmentId, dedupeKey) VALUES (?,?,?,?,?,?,?)',
      ['vms', 'update', null, '{}', alice.id, dept.id, dup],
    );
    await stack.dataSource.query(
      'INSERT IGNORE INTO event (resource, action, resourceId, payload, ownerId, departmentId, dedupeKey) VALUES (?,?,?,?,?,?,?)',
      ['vms', 'update', null, '{}', alice.id, dept.id, dup],
    );
    const t0 = Date.now();
    const next = await vmEvent(alice.id, dept.id);
    await s.waitFor((e) => e.payload?.eventId === next.id, 'the event after a permanent hole', 5_000);
    expect(Date.now() - t0).toBeLessThan(2_000);
    s.close();
  });
});
