/**
 * The permission rules (pure): who sees and runs which VM, and that socket rooms deliver an event to
 * exactly the callers that may see it — the same rule as REST and catch-up.
 */
import {
  canChangeHardware,
  canCreateMachine,
  canOperateMachine,
  canSeeEvent,
  canUseImage,
  canViewMachine,
  roomsForEvent,
  roomsForPrincipal,
  type EventRoute,
} from '../../../src/api/permissions';
import { admin, everyone, manager, managerB, owner, peer } from '../../support/principals';

const vm = { ownerId: 'owner', departmentId: 'A' };

describe('permissions', () => {
  it.each([
    ['owner', true, true, false, true],
    ['peer', false, false, false, true],
    ['outsider', false, false, false, false],
    ['manager', true, true, true, true],
    ['managerB', false, false, false, true],
    ['admin', true, true, true, true],
  ] as const)(
    '%s: view %s, operate %s, hardware %s, create in A for itself %s',
    (who, view, operate, hardware, create) => {
      const p = everyone[who];
      expect(canViewMachine(p, vm)).toBe(view);
      expect(canOperateMachine(p, vm)).toBe(operate);
      expect(canChangeHardware(p, vm)).toBe(hardware);
      expect(canCreateMachine(p, 'A', p.id)).toBe(create);
    },
  );

  it('only managers and admins create for someone else', () => {
    expect(canCreateMachine(owner, 'A', 'peer')).toBe(false);
    expect(canCreateMachine(manager, 'A', 'peer')).toBe(true);
    expect(canCreateMachine(managerB, 'A', 'peer')).toBe(false);
    expect(canCreateMachine(admin, 'Z', 'peer')).toBe(true);
  });

  it('rooms deliver an event to exactly those who may see it (and VM events never to plain members)', () => {
    const events: EventRoute[] = [
      { resource: 'vms', resourceId: 'm1', ownerId: 'owner', departmentId: 'A' },
      { resource: 'vms', resourceId: 'm2', ownerId: 'peer', departmentId: 'A' },
      { resource: 'vms', resourceId: 'm3', ownerId: 'outsider', departmentId: 'B' },
      { resource: 'vms', resourceId: 'm4', ownerId: null, departmentId: null },
      { resource: 'departments', resourceId: 'A', ownerId: null, departmentId: 'A' },
      { resource: 'users', resourceId: 'peer', ownerId: null, departmentId: null },
      { resource: 'templates', resourceId: 't', ownerId: null, departmentId: null },
      { resource: 'hosts', resourceId: 'h', ownerId: null, departmentId: null },
    ];
    const expected: Record<string, string[]> = {
      owner: ['m1', 'A', 't'],
      peer: ['m2', 'A', 'peer', 't'],
      outsider: ['m3', 't'],
      manager: ['m1', 'm2', 'A', 't'],
      managerB: ['m3', 'A', 't'],
      admin: ['m1', 'm2', 'm3', 'm4', 'A', 'peer', 't', 'h'],
    };
    for (const [who, p] of Object.entries(everyone)) {
      const rooms = new Set(roomsForPrincipal(p));
      const byRooms = events
        .filter((e) => roomsForEvent(e).some((r) => rooms.has(r)))
        .map((e) => e.resourceId);
      const byRule = events.filter((e) => canSeeEvent(p, e)).map((e) => e.resourceId);
      expect(byRooms).toEqual(byRule);
      expect(byRule).toEqual(expected[who]);
      // REST and events agree: a VM event is visible iff the VM is.
      for (const e of events.filter((x) => x.resource === 'vms' && x.ownerId)) {
        expect(canSeeEvent(p, e)).toBe(
          canViewMachine(p, { ownerId: e.ownerId!, departmentId: e.departmentId! }),
        );
      }
    }
    expect(roomsForPrincipal(peer)).not.toContain('managers:A');
    expect(roomsForEvent(events[0]!)).not.toContain('department:A');
  });

  it.each([
    ['open to every department', null, ['owner', 'peer', 'outsider', 'manager', 'managerB', 'admin']],
    ['open to A', ['A'], ['owner', 'peer', 'manager', 'managerB', 'admin']],
    ['open to B', ['B'], ['outsider', 'managerB', 'admin']],
    ['open to A and B', ['A', 'B'], ['owner', 'peer', 'outsider', 'manager', 'managerB', 'admin']],
    ['open to no department', [], ['admin']],
  ] as const)('a ready image %s: usable by exactly the callers listed', (_what, departmentIds, users) => {
    const image = {
      status: 'ready' as const,
      departmentIds: departmentIds === null ? null : [...departmentIds],
    };
    const usable = Object.entries(everyone)
      .filter(([, p]) => canUseImage(p, image))
      .map(([who]) => who);
    expect(usable).toEqual(users);
  });

  it.each(['pending', 'importing', 'failed', 'deleting'] as const)(
    'an image that is %s is usable (and visible) by admins only',
    (status) => {
      for (const [who, p] of Object.entries(everyone))
        expect([who, canUseImage(p, { status, departmentIds: null })]).toEqual([who, who === 'admin']);
    },
  );
});
