/**
 * The firewall permission rules (pure): who sees and changes which filter, policy and service setting,
 * which custom filters a filter may include, and who may flush or move a VM.
 */
import { type Principal } from '../../../src/api/permissions';
import {
  canCreateFilter,
  canEditDepartmentFirewall,
  canEditFilter,
  canEditMachineFirewall,
  canFlush,
  canMoveMachine,
  canViewDepartmentFirewall,
  canViewFilter,
  canViewMachineFirewall,
  filterScope,
  mayInclude,
} from '../../../src/api/permissions-firewall';
import { admin, everyone, manager, managerB, owner, principal } from '../../support/principals';

type Who = keyof typeof everyone;

const vm = { ownerId: 'owner', departmentId: 'A' };
const deptFilter = { filter: { kind: 'department' as const, departmentId: 'A', machineId: null } };
const vmFilter = { filter: { kind: 'vm' as const, departmentId: null, machineId: 'm1' }, machine: vm };
const customA = { filter: { kind: 'custom' as const, departmentId: 'A', machineId: null } };
const customGlobal = { filter: { kind: 'custom' as const, departmentId: null, machineId: null } };

const who = (pred: (p: Principal) => boolean): Who[] =>
  (Object.keys(everyone) as Who[]).filter((k) => pred(everyone[k]));

describe('firewall permissions', () => {
  it('a department filter: its managers and admins see and change it; members do not see it', () => {
    expect(who((p) => canViewFilter(p, deptFilter))).toEqual(['manager', 'admin']);
    expect(who((p) => canEditFilter(p, deptFilter))).toEqual(['manager', 'admin']);
  });

  it("a VM filter: the owner reads it, the department's managers and admins change it", () => {
    expect(who((p) => canViewFilter(p, vmFilter))).toEqual(['owner', 'manager', 'admin']);
    expect(who((p) => canEditFilter(p, vmFilter))).toEqual(['manager', 'admin']);
    // Without its machine, a VM filter is nobody's but the admins'.
    const orphan = { ...vmFilter, machine: null };
    expect(who((p) => canViewFilter(p, orphan))).toEqual(['admin']);
  });

  it('custom filters: scoped ones to their managers; global ones seen by every manager, changed by admins', () => {
    expect(who((p) => canViewFilter(p, customA))).toEqual(['manager', 'admin']);
    expect(who((p) => canEditFilter(p, customA))).toEqual(['manager', 'admin']);
    expect(who((p) => canViewFilter(p, customGlobal))).toEqual(['manager', 'managerB', 'admin']);
    expect(who((p) => canEditFilter(p, customGlobal))).toEqual(['admin']);
    expect(who((p) => canCreateFilter(p, 'A'))).toEqual(['manager', 'admin']);
    expect(who((p) => canCreateFilter(p, null))).toEqual(['admin']);
  });

  it('department policy and services: members read, managers and admins change', () => {
    expect(who((p) => canViewDepartmentFirewall(p, 'A'))).toEqual([
      'owner',
      'peer',
      'manager',
      'managerB',
      'admin',
    ]);
    expect(who((p) => canEditDepartmentFirewall(p, 'A'))).toEqual(['manager', 'admin']);
  });

  it("a VM's services: the owner reads, managers of its department and admins change", () => {
    expect(who((p) => canViewMachineFirewall(p, vm))).toEqual(['owner', 'manager', 'admin']);
    expect(who((p) => canEditMachineFirewall(p, vm))).toEqual(['manager', 'admin']);
  });

  it('flush: a department by its managers, everything by admins', () => {
    expect(who((p) => canFlush(p, 'A'))).toEqual(['manager', 'admin']);
    expect(who((p) => canFlush(p, null))).toEqual(['admin']);
  });

  it('moving a VM takes managing both departments (or admin)', () => {
    const both = principal('both', 'USER', [
      ['A', 'MANAGER'],
      ['B', 'MANAGER'],
    ]);
    expect(canMoveMachine(both, vm, 'B')).toBe(true);
    expect(canMoveMachine(manager, vm, 'B')).toBe(false);
    expect(canMoveMachine(managerB, vm, 'B')).toBe(false);
    expect(canMoveMachine(owner, vm, 'B')).toBe(false);
    expect(canMoveMachine(admin, vm, 'B')).toBe(true);
  });

  it('a filter includes only custom filters that are global or of its own department', () => {
    expect(mayInclude('A', customA.filter)).toBe(true);
    expect(mayInclude('A', customGlobal.filter)).toBe(true);
    expect(mayInclude('B', customA.filter)).toBe(false);
    expect(mayInclude(null, customA.filter)).toBe(false);
    expect(mayInclude(null, customGlobal.filter)).toBe(true);
    expect(mayInclude('A', deptFilter.filter)).toBe(false);
    expect(mayInclude('A', vmFilter.filter)).toBe(false);
  });

  it('the list scope is null for admins and names the caller and its managed departments otherwise', () => {
    expect(filterScope(admin)).toBeNull();
    const mine = filterScope(owner)!;
    expect(mine.params).toEqual({ fsMe: 'owner', fsManaged: [] });
    expect(mine.where).not.toContain("kind = 'custom'");
    const managed = filterScope(manager)!;
    expect(managed.params).toEqual({ fsMe: 'manager', fsManaged: ['A'] });
    expect(managed.where).toContain("f.kind = 'custom' AND (f.departmentId IS NULL");
  });
});
