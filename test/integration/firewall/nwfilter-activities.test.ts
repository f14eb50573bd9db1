/**
 * The nwfilter activities on the real libvirtd (no domains needed): a push defines only what differs and
 * honours its modes, libvirt's own reformatting never counts as a difference, a restore puts back exactly
 * what a snapshot had (removing what did not exist), and a prune removes only department and custom filters
 * that nothing references, dependents first.
 */
import { randomUUID } from 'node:crypto';
import { createNwfilterActivities } from '../../../src/activities/nwfilter';
import { customFilterSpec, departmentFilterSpec, vmFilterSpec } from '../../../src/firewall/compile';
import { LibvirtProvider } from '../../../src/libvirt/provider';
import { buildNWFilterXml, type FilterSpec } from '../../../src/libvirt/xml';
import { libvirtNames } from '../../../src/workflows/shared';
import { filterXml, libvirtFilter } from '../../support/firewall';

describe('nwfilter activities', () => {
  const libvirt = new LibvirtProvider(process.env.LIBVIRT_URI ?? 'qemu:///system');
  const acts = createNwfilterActivities({ libvirt });
  const made = new Set<string>();
  const ids = { dept: randomUUID(), machine: randomUUID(), a: randomUUID(), b: randomUUID() };
  const customA = customFilterSpec({
    filterId: ids.a,
    rules: [
      {
        action: 'drop',
        direction: 'out',
        protocol: 'tcp',
        dstPortStart: 25,
        priority: 500,
        comment: 'no <smtp> & "relay"',
      },
    ],
    includes: [],
  });
  const customB = customFilterSpec({ filterId: ids.b, rules: [], includes: [customA.name] });
  const dept = (policy: 'ALLOW_ALL' | 'BLOCK_ALL' = 'BLOCK_ALL') =>
    departmentFilterSpec({ departmentId: ids.dept, policy, rules: [], includes: [customB.name] });
  const vm = vmFilterSpec({
    machineId: ids.machine,
    departmentId: ids.dept,
    rules: [
      {
        action: 'accept',
        direction: 'in',
        protocol: 'icmp',
        icmpType: 8,
        priority: -5,
        state: ['NEW', 'ESTABLISHED'],
      },
    ],
    services: [{ serviceId: 'vnc', action: 'PROVIDE' }],
    includes: [],
  });
  const track = (...specs: FilterSpec[]) => specs.forEach((s) => made.add(s.name));

  afterAll(async () => {
    const conn = await libvirt.get();
    // Dependents first.
    for (const name of [vm.name, dept().name, customB.name, customA.name, ...made]) {
      try {
        await (await conn.lookupNWFilterByName(name)).undefine();
      } catch {
        /* gone */
      }
    }
    await libvirt.close();
  });

  it('pushes in order, only what differs; libvirt’s reformatting is no difference', async () => {
    track(customA, customB, dept(), vm);
    const filters = [customA, customB, dept(), vm].map((spec) => ({ spec, mode: 'upsert' as const }));
    expect(await acts.pushFilters({ filters })).toEqual({
      pushed: [customA.name, customB.name, dept().name, vm.name],
      unchanged: [],
    });
    expect(await acts.pushFilters({ filters })).toEqual({
      pushed: [],
      unchanged: [customA.name, customB.name, dept().name, vm.name],
    });
    const uuid = (await libvirtFilter(libvirt, dept().name))!.uuid;
    const changed = await acts.pushFilters({ filters: [{ spec: dept('ALLOW_ALL'), mode: 'upsert' }] });
    expect(changed.pushed).toEqual([dept().name]);
    expect((await libvirtFilter(libvirt, dept().name))!.uuid).toBe(uuid); // redefined in place
  });

  it('honours the modes: ifAbsent never overwrites, ifPresent never creates', async () => {
    const ghost = vmFilterSpec({
      machineId: randomUUID(),
      departmentId: ids.dept,
      rules: [],
      services: [],
      includes: [],
    });
    track(ghost);
    expect(await acts.pushFilters({ filters: [{ spec: ghost, mode: 'ifPresent' }] })).toEqual({
      pushed: [],
      unchanged: [ghost.name],
    });
    expect(await filterXml(libvirt, ghost.name)).toBeNull();
    const before = await filterXml(libvirt, dept().name);
    await acts.pushFilters({ filters: [{ spec: dept('BLOCK_ALL'), mode: 'ifAbsent' }] });
    expect(await filterXml(libvirt, dept().name)).toBe(before);
  });

  it('restores exactly what a snapshot had: old content back, new filters removed', async () => {
    const fresh = customFilterSpec({ filterId: randomUUID(), rules: [], includes: [] });
    track(fresh);
    const snapshot = await acts.readFilters({ names: [dept().name, fresh.name] });
    expect(snapshot.map((s) => s.xml === null)).toEqual([false, true]);
    await acts.pushFilters({
      filters: [
        { spec: fresh, mode: 'upsert' },
        {
          spec: { ...dept('BLOCK_ALL'), filterrefs: [...dept().filterrefs!, { filter: fresh.name }] },
          mode: 'upsert',
        },
      ],
    });
    await acts.restoreFilters({ filters: [...snapshot].reverse() });
    expect(await filterXml(libvirt, dept().name)).toBe(snapshot[0].xml);
    expect(await filterXml(libvirt, fresh.name)).toBeNull();
    // Restoring onto a filter that was removed and made again (another uuid) still works.
    const conn = await libvirt.get();
    await acts.pushFilters({ filters: [{ spec: customA, mode: 'upsert' }] });
    const a = await acts.readFilters({ names: [customA.name] });
    await (await conn.lookupNWFilterByName(customA.name)).undefine().catch(() => undefined);
    await conn.defineNWFilter(buildNWFilterXml({ name: customA.name, rules: [] })); // new uuid
    await acts.restoreFilters({ filters: a });
    expect((await libvirtFilter(libvirt, customA.name))!.rules).toHaveLength(1);
  });

  it('prunes only department and custom filters nothing references, dependents first', async () => {
    // The VM filter references the department filter, which includes B, which includes A: nothing goes.
    const all = [dept().name, customB.name, customA.name, vm.name, 'clean-traffic'];
    expect(await acts.planPrune({ candidates: all })).toEqual([]);
    expect(await acts.pruneFilters({ candidates: all, cascade: true })).toEqual([]);
    // Without the VM filter, the department filter and (cascading) what it alone included go, in order.
    const conn = await libvirt.get();
    await acts.removeVmFilter({ name: vm.name });
    const planned = await acts.planPrune({ candidates: [dept().name] });
    expect(planned.map((p) => p.name)).toEqual([dept().name, customB.name, customA.name]);
    expect(await acts.pruneFilters({ candidates: [dept().name], cascade: true })).toEqual([
      dept().name,
      customB.name,
      customA.name,
    ]);
    for (const n of [dept().name, customB.name, customA.name]) expect(await filterXml(libvirt, n)).toBeNull();
    // The undo of a prune puts them back from the plan (dependencies first).
    await acts.restoreFilters({ filters: [...planned].reverse() });
    expect(await filterXml(libvirt, dept().name)).toBe(planned[0].xml);
    // libvirt's own filters are never candidates.
    expect(await acts.planPrune({ candidates: ['clean-traffic', 'allow-dhcp'] })).toEqual([]);
    expect(await conn.lookupNWFilterByName('clean-traffic')).toBeTruthy();
    made.add(libvirtNames.departmentFilter(ids.dept));
  });
});
