/**
 * The firewall DB activities and loaders on MariaDB (no hypervisor): the checks applyFirewallChange makes
 * against the database (the filter exists, the rule belongs to it, includes are custom filters of its
 * department with no cycle, the scope), its idempotency by operation, the exact revert of each kind of
 * change, what planFilterPush plans (hosts of the machines concerned, dependency order, modes), and the
 * compiled filters of a new machine, a clone, and a machine moving department.
 */
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { type DataSource } from 'typeorm';
import { createDbActivities, registerHost } from '../../../src/activities/db';
import { createFirewallDbActivities } from '../../../src/activities/db-firewall';
import { Department } from '../../../src/entities/department';
import { Event } from '../../../src/entities/event';
import { FirewallFilter, FirewallRule, ServiceSetting } from '../../../src/entities/firewall';
import { Host } from '../../../src/entities/host';
import { type Machine } from '../../../src/entities/machine';
import { PRIORITY } from '../../../src/firewall/compile';
import {
  describeFilter,
  ensureDepartmentFilterRow,
  ensureVmFilterRow,
  machineServices,
} from '../../../src/firewall/load';
import { FailureType, libvirtNames, type FirewallChange } from '../../../src/workflows/shared';
import { seedMachineRow } from '../../support/api-harness';
import { openTestDataSource, seedDepartment, seedTemplate, seedUser } from '../../support/db';
import { dbSnapshot, seedCustomFilter } from '../../support/firewall';

describe('firewall DB activities', () => {
  let ds: DataSource;
  let fw: ReturnType<typeof createFirewallDbActivities>;
  let db: ReturnType<typeof createDbActivities>;
  let host: Host;
  let otherHost: Host;
  let dept: Department;
  let deptFilter: FirewallFilter;
  let machine: Machine;
  let vmFilter: FirewallFilter;
  let templateId: string;
  let ownerId: string;
  /** Machine rows this suite made (deleted with their filter rows in afterAll). */
  const made: string[] = [];

  const apply = (scopeId: string, change: FirewallChange, operationId = randomUUID()) =>
    fw.applyFirewallChange({ operationId, actorId: null, scopeId, change });
  const failureOf = async (p: Promise<unknown>) => {
    const err = await p.then(
      () => {
        throw new Error('expected a failure');
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApplicationFailure);
    const f = err as ApplicationFailure;
    return {
      type: f.type,
      field: (f.details?.[0] as { field?: string } | undefined)?.field,
      message: f.message,
    };
  };
  const newMachine = async (h: Host, d: Department, status: Machine['status'] = 'off') => {
    const m = await seedMachineRow(ds, {
      ownerId,
      departmentId: d.id,
      templateId,
      hostId: h.id,
      status,
      diskPath: '/var/lib/vmflow/images/fixture.qcow2',
    });
    await ds.transaction((t) => ensureVmFilterRow(t, m.id, m.name));
    made.push(m.id);
    return m;
  };

  beforeAll(async () => {
    ds = await openTestDataSource();
    fw = createFirewallDbActivities({ dataSource: ds });
    db = createDbActivities({ dataSource: ds });
    const reg = (name: string) =>
      registerHost(ds, {
        name,
        libvirtUri: 'test:///default',
        taskQueue: `host-${name}`,
        cpus: 4,
        memoryMiB: 4096,
        storagePool: 'vmflow',
        defaultNetwork: 'vmflow-default',
      });
    host = await reg(`fwdb-${randomUUID().slice(0, 8)}`);
    otherHost = await reg(`fwdb-${randomUUID().slice(0, 8)}`);
    const owner = await seedUser(ds);
    ownerId = owner.id;
    templateId = (await seedTemplate(ds)).id;
    dept = await seedDepartment(ds, [[owner, 'MEMBER']]);
    deptFilter = await ds.transaction((t) => ensureDepartmentFilterRow(t, dept.id, dept.name));
    machine = await newMachine(host, dept);
    vmFilter = await ds.getRepository(FirewallFilter).findOneByOrFail({ kind: 'vm', machineId: machine.id });
  });
  afterAll(async () => {
    for (const machineId of made)
      await db.deleteMachine({ operationId: randomUUID(), actorId: null, machineId });
    await ds?.getRepository(Host).delete({ id: host.id });
    await ds?.getRepository(Host).delete({ id: otherHost.id });
    await ds?.destroy();
  });

  const rule = { action: 'accept', direction: 'in', protocol: 'tcp', dstPortStart: 22 };

  it('refuses what the database contradicts, naming the field, and writes nothing', async () => {
    const vmDept = await seedCustomFilter(ds);
    const before = await dbSnapshot(ds, [deptFilter.id, vmFilter.id], [], [dept.id]);
    const otherDept = await seedDepartment(ds);
    const foreign = await seedCustomFilter(ds, { departmentId: otherDept.id });
    const cases: Array<[string, FirewallChange, string, string]> = [
      [
        dept.id,
        { type: 'addRule', filterId: randomUUID(), ruleId: randomUUID(), rule },
        FailureType.NotFound,
        'filterId',
      ],
      [
        dept.id,
        { type: 'deleteRule', filterId: vmFilter.id, ruleId: randomUUID() },
        FailureType.NotFound,
        'ruleId',
      ],
      [
        otherDept.id,
        { type: 'addRule', filterId: vmFilter.id, ruleId: randomUUID(), rule },
        FailureType.Validation,
        'scopeId',
      ],
      [
        dept.id,
        { type: 'setIncludes', filterId: deptFilter.id, includes: [vmFilter.id] },
        FailureType.Refused,
        'includes[0]',
      ],
      [
        dept.id,
        { type: 'setIncludes', filterId: deptFilter.id, includes: [randomUUID()] },
        FailureType.NotFound,
        'includes[0]',
      ],
      [
        dept.id,
        { type: 'setIncludes', filterId: deptFilter.id, includes: [vmDept.id, foreign.id] },
        FailureType.Refused,
        'includes[1]',
      ],
      [
        dept.id,
        { type: 'setPolicy', departmentId: randomUUID(), policy: 'BLOCK_ALL' },
        FailureType.NotFound,
        'departmentId',
      ],
      [
        dept.id,
        {
          type: 'toggleService',
          scope: 'vm',
          scopeId: randomUUID(),
          serviceId: 'ssh',
          action: 'USE',
          enabled: true,
        },
        FailureType.NotFound,
        'scopeId',
      ],
      [
        dept.id,
        { type: 'addRule', filterId: vmFilter.id, ruleId: randomUUID(), rule: { ...rule, dstPortEnd: 1 } },
        FailureType.Validation,
        'rule.dstPortEnd',
      ],
    ];
    for (const [scope, change, type, field] of cases) {
      expect({ change: change.type, ...(await failureOf(apply(scope, change))) }).toMatchObject({
        type,
        field,
      });
    }
    expect(await dbSnapshot(ds, [deptFilter.id, vmFilter.id], [], [dept.id])).toEqual(before);
  });

  it('refuses an include cycle between custom filters', async () => {
    const a = await seedCustomFilter(ds);
    const b = await seedCustomFilter(ds, { includes: [a.id] });
    expect(
      await failureOf(apply(a.id, { type: 'setIncludes', filterId: a.id, includes: [b.id] })),
    ).toMatchObject({
      type: FailureType.Refused,
      field: 'includes[0]',
      message: expect.stringMatching(/cycle/),
    });
  });

  it('is idempotent by operation: a retry returns the first result and writes once', async () => {
    const operationId = randomUUID();
    const ruleId = randomUUID();
    const change: FirewallChange = { type: 'addRule', filterId: vmFilter.id, ruleId, rule };
    const first = await apply(dept.id, change, operationId);
    const again = await apply(dept.id, change, operationId);
    expect(again).toEqual(first);
    expect(first).toEqual({ filterIds: [vmFilter.id], pruneCandidates: [], departmentId: dept.id });
    expect(await ds.getRepository(FirewallRule).countBy({ id: ruleId })).toBe(1);
    const events = await ds.getRepository(Event).findBy({ resource: 'firewall', resourceId: vmFilter.id });
    expect(events.filter((e) => e.payload.operationId === operationId).map((e) => e.action)).toEqual([
      'rule_created',
    ]);
    expect(events.find((e) => e.payload.operationId === operationId)!.departmentId).toBe(dept.id);
    await fw.revertFirewallChange({ operationId, actorId: null });
    await fw.revertFirewallChange({ operationId, actorId: null }); // twice: still one revert
    expect(await ds.getRepository(FirewallRule).countBy({ id: ruleId })).toBe(0);
  });

  it('reverts each kind of change exactly (a deleted rule comes back with its id and place)', async () => {
    const r1 = randomUUID();
    const r2 = randomUUID();
    await apply(dept.id, { type: 'addRule', filterId: deptFilter.id, ruleId: r1, rule });
    await apply(dept.id, {
      type: 'addRule',
      filterId: deptFilter.id,
      ruleId: r2,
      rule: { ...rule, dstPortStart: 80 },
    });
    const custom = await seedCustomFilter(ds);
    const scopes = [dept.id, machine.id];
    const snap = () => dbSnapshot(ds, [deptFilter.id, vmFilter.id], scopes, [dept.id]);
    const changes: FirewallChange[] = [
      { type: 'deleteRule', filterId: deptFilter.id, ruleId: r1 },
      { type: 'updateRule', filterId: deptFilter.id, ruleId: r2, rule: { ...rule, action: 'drop' } },
      { type: 'addRule', filterId: deptFilter.id, ruleId: randomUUID(), rule },
      { type: 'setIncludes', filterId: deptFilter.id, includes: [custom.id] },
      { type: 'setPolicy', departmentId: dept.id, policy: 'ALLOW_INTERNET' },
      {
        type: 'toggleService',
        scope: 'department',
        scopeId: dept.id,
        serviceId: 'ssh',
        action: 'PROVIDE',
        enabled: true,
      },
      {
        type: 'toggleService',
        scope: 'vm',
        scopeId: machine.id,
        serviceId: 'ssh',
        action: 'PROVIDE',
        enabled: false,
      },
    ];
    for (const change of changes) {
      const before = await snap();
      const operationId = randomUUID();
      await apply(dept.id, change, operationId);
      expect(await snap()).not.toEqual(before);
      await fw.revertFirewallChange({ operationId, actorId: null });
      expect({ change: change.type, state: await snap() }).toEqual({ change: change.type, state: before });
    }
    const version = (await ds.getRepository(FirewallFilter).findOneByOrFail({ id: deptFilter.id })).version;
    expect(version).toBeGreaterThan(1);
  });

  it('a department toggle changes the VM filters that follow it, not those with their own setting', async () => {
    const d = await seedDepartment(ds);
    await ds.transaction((t) => ensureDepartmentFilterRow(t, d.id, d.name));
    const follows = await newMachine(host, d);
    const own = await newMachine(host, d);
    await apply(d.id, {
      type: 'toggleService',
      scope: 'vm',
      scopeId: own.id,
      serviceId: 'https',
      action: 'USE',
      enabled: false,
    });
    const applied = await apply(d.id, {
      type: 'toggleService',
      scope: 'department',
      scopeId: d.id,
      serviceId: 'https',
      action: 'USE',
      enabled: true,
    });
    const followsFilter = await ds.getRepository(FirewallFilter).findOneByOrFail({ machineId: follows.id });
    expect(applied.filterIds).toEqual([followsFilter.id]);
    const eff = (await machineServices(ds.manager, own.id)).find(
      (s) => s.serviceId === 'https' && s.action === 'USE',
    );
    expect(eff).toEqual({ serviceId: 'https', action: 'USE', enabled: false, source: 'vm' });
    const eff2 = (await machineServices(ds.manager, follows.id)).find(
      (s) => s.serviceId === 'https' && s.action === 'USE',
    );
    expect(eff2).toMatchObject({ enabled: true, source: 'department' });
    // enabled: null clears the VM's own setting: it follows its department again.
    await apply(d.id, {
      type: 'toggleService',
      scope: 'vm',
      scopeId: own.id,
      serviceId: 'https',
      action: 'USE',
      enabled: null,
    });
    expect(await ds.getRepository(ServiceSetting).countBy({ scopeId: own.id })).toBe(0);
  });

  it('plans pushes per host of the machines concerned, custom → department → VM, with modes', async () => {
    const d = await seedDepartment(ds);
    const df = await ds.transaction((t) => ensureDepartmentFilterRow(t, d.id, d.name));
    const inner = await seedCustomFilter(ds);
    const outer = await seedCustomFilter(ds, { includes: [inner.id] });
    await ds.getRepository(FirewallFilter).update({ id: df.id }, { includes: [outer.id] });
    const here = await newMachine(host, d, 'running');
    const there = await newMachine(otherHost, d, 'creating');
    await newMachine(otherHost, d, 'failed'); // no hypervisor resources: never pushed to
    const names = (p: Awaited<ReturnType<typeof fw.planFilterPush>>[number]) =>
      p.filters.map((f) => `${f.spec.name}:${f.mode}`);

    // A change of the department filter: its hosts, with the custom filters it needs first.
    const plans = await fw.planFilterPush({ filterIds: [df.id] });
    expect(plans.map((p) => p.hostName)).toEqual([host.name, otherHost.name].sort());
    for (const p of plans) {
      expect(names(p)).toEqual([
        `${inner.internalName}:ifAbsent`,
        `${outer.internalName}:ifAbsent`,
        `${df.internalName}:upsert`,
      ]);
    }
    // A change of the inner custom filter reaches every host where it is used, transitively.
    const innerPlans = await fw.planFilterPush({ filterIds: [inner.id] });
    expect(innerPlans.map((p) => p.hostName).sort()).toEqual([host.name, otherHost.name].sort());
    expect(names(innerPlans[0])[0]).toBe(`${inner.internalName}:upsert`);
    // A flush of the department: everything, VM filters of machines being created only updated.
    const flush = await fw.planFilterPush({ departmentId: d.id });
    const byHost = new Map(flush.map((p) => [p.hostName, names(p)]));
    expect(byHost.get(host.name)).toEqual([
      `${inner.internalName}:upsert`,
      `${outer.internalName}:upsert`,
      `${df.internalName}:upsert`,
      `${libvirtNames.vmFilter(here.id)}:upsert`,
    ]);
    expect(byHost.get(otherHost.name)!.at(-1)).toBe(`${libvirtNames.vmFilter(there.id)}:ifPresent`);
    // A department without machines has nothing to push.
    const empty = await seedDepartment(ds);
    const ef = await ds.transaction((t) => ensureDepartmentFilterRow(t, empty.id, empty.name));
    expect(await fw.planFilterPush({ filterIds: [ef.id] })).toEqual([]);
  });

  it('describes a filter: its rules, the derived preset/service rules and the compiled spec', async () => {
    const d = await seedDepartment(ds);
    const df = await ds.transaction((t) => ensureDepartmentFilterRow(t, d.id, d.name));
    await ds.getRepository(Department).update({ id: d.id }, { firewallPolicy: 'BLOCK_ALL' });
    const m = await newMachine(host, d);
    await apply(d.id, {
      type: 'toggleService',
      scope: 'department',
      scopeId: d.id,
      serviceId: 'ssh',
      action: 'PROVIDE',
      enabled: true,
    });
    const vm = await ds.getRepository(FirewallFilter).findOneByOrFail({ machineId: m.id });
    const ruleId = randomUUID();
    await apply(d.id, { type: 'addRule', filterId: vm.id, ruleId, rule });

    const dd = (await describeFilter(ds.manager, df.id))!;
    expect(dd.derived.every((r) => r.origin === 'preset')).toBe(true);
    expect(
      dd.derived.some((r) => r.rule.action === 'drop' && r.rule.priority === PRIORITY.presetDefault),
    ).toBe(true);
    const vd = (await describeFilter(ds.manager, vm.id))!;
    expect(vd.rules).toEqual([{ id: ruleId, rule: { ...rule, priority: 500 }, createdAt: expect.any(Date) }]);
    expect(vd.derived.map((r) => [r.origin, r.serviceId, r.action, r.rule.dstPortStart])).toEqual([
      ['service', 'ssh', 'PROVIDE', 22],
      ['service', 'ssh', 'PROVIDE', 22],
    ]);
    expect(vd.spec.filterrefs).toEqual([{ filter: libvirtNames.departmentFilter(d.id) }]);
    expect(vd.spec.rules!.at(-1)).toEqual({ ...rule, priority: 500 });
    expect(await describeFilter(ds.manager, randomUUID())).toBeNull();
  });

  it('plans a create (department services), a clone (the source’s filter) and a department change', async () => {
    const owner = await seedUser(ds);
    const d = await seedDepartment(ds, [[owner, 'MEMBER']]);
    await ds.transaction((t) => ensureDepartmentFilterRow(t, d.id, d.name));
    await apply(d.id, {
      type: 'toggleService',
      scope: 'department',
      scopeId: d.id,
      serviceId: 'dns',
      action: 'USE',
      enabled: true,
    });
    const machineId = randomUUID();
    const plan = await db.planCreate({
      operationId: randomUUID(),
      actorId: null,
      machineId,
      name: 'vm',
      templateId,
      departmentId: d.id,
      ownerId: owner.id,
      hostName: host.name,
    });
    expect(plan.departmentFilterSpecs!.map((s) => s.name)).toEqual([libvirtNames.departmentFilter(d.id)]);
    expect(plan.vmFilterSpec!.rules!.map((r) => `${r.direction}:${r.protocol}/${r.dstPortStart}`)).toEqual([
      'out:udp/53',
      'out:udp-ipv6/53',
      'out:tcp/53',
      'out:tcp-ipv6/53',
    ]);

    // A clone copies its source's VM rules, includes and service settings.
    const source = await newMachine(host, d);
    const custom = await seedCustomFilter(ds, { departmentId: d.id });
    const sf = await ds.getRepository(FirewallFilter).findOneByOrFail({ machineId: source.id });
    await apply(d.id, { type: 'setIncludes', filterId: sf.id, includes: [custom.id] });
    await apply(d.id, { type: 'addRule', filterId: sf.id, ruleId: randomUUID(), rule });
    await apply(d.id, {
      type: 'addRule',
      filterId: sf.id,
      ruleId: randomUUID(),
      rule: { ...rule, dstPortStart: 2 },
    });
    await apply(d.id, {
      type: 'toggleService',
      scope: 'vm',
      scopeId: source.id,
      serviceId: 'smtp',
      action: 'USE',
      enabled: true,
    });
    await ds.getRepository(ServiceSetting).delete({ scopeId: d.id });
    const cloneId = randomUUID();
    made.push(cloneId);
    const { plan: clonePlan } = await db.planClone({
      sourceMachineId: source.id,
      machineId: cloneId,
      name: 'copy',
      operationId: randomUUID(),
    });
    expect(clonePlan.departmentFilterSpecs!.map((s) => s.name)).toEqual([
      custom.internalName,
      libvirtNames.departmentFilter(d.id),
    ]);
    expect(clonePlan.vmFilterSpec!.name).toBe(libvirtNames.vmFilter(cloneId));
    expect(clonePlan.vmFilterSpec!.filterrefs!.map((r) => r.filter)).toEqual([
      libvirtNames.departmentFilter(d.id),
      custom.internalName,
    ]);
    const sourceSpec = (await describeFilter(ds.manager, sf.id))!.spec;
    expect(clonePlan.vmFilterSpec!.rules).toEqual(sourceSpec.rules);
    const op = randomUUID();
    await db.insertMachine({
      operationId: op,
      actorId: null,
      machineId: cloneId,
      name: 'copy',
      ownerId: owner.id,
      departmentId: d.id,
      templateId,
      hostName: host.name,
      plan: clonePlan,
      sourceMachineId: source.id,
    });
    const cf = await ds.getRepository(FirewallFilter).findOneByOrFail({ machineId: cloneId });
    expect(cf.includes).toEqual([custom.id]);
    expect((await describeFilter(ds.manager, cf.id))!.spec).toEqual({
      ...sourceSpec,
      name: libvirtNames.vmFilter(cloneId),
    });
    expect(await ds.getRepository(ServiceSetting).findBy({ scopeId: cloneId })).toEqual([
      expect.objectContaining({ scope: 'vm', serviceId: 'smtp', action: 'USE' }),
    ]);

    // A department change is refused while the VM filter includes a custom filter of its department.
    const target = await seedDepartment(ds, [[owner, 'MEMBER']]);
    expect(
      await failureOf(
        db.planDepartmentChange({ machineId: cloneId, departmentId: target.id, operationId: randomUUID() }),
      ),
    ).toMatchObject({ type: FailureType.IllegalTransition }); // still `creating`
    await ds.query('UPDATE machine SET status = ? WHERE id = ?', ['off', cloneId]);
    expect(
      await failureOf(
        db.planDepartmentChange({ machineId: cloneId, departmentId: target.id, operationId: randomUUID() }),
      ),
    ).toMatchObject({ type: FailureType.Refused, field: 'departmentId' });
    await apply(d.id, { type: 'setIncludes', filterId: cf.id, includes: [] });
    const outsider = await seedDepartment(ds);
    expect(
      await failureOf(
        db.planDepartmentChange({ machineId: cloneId, departmentId: outsider.id, operationId: randomUUID() }),
      ),
    ).toMatchObject({ type: FailureType.Forbidden });
    const move = await db.planDepartmentChange({
      machineId: cloneId,
      departmentId: target.id,
      operationId: randomUUID(),
    });
    expect(move.noop).toBe(false);
    expect(move.vmFilterSpec.filterrefs).toEqual([{ filter: libvirtNames.departmentFilter(target.id) }]);
    expect(move.pruneCandidates).toEqual([libvirtNames.departmentFilter(d.id)]);
    // Its own smtp setting stays; the old department's services no longer apply.
    expect(move.vmFilterSpec.rules!.filter((r) => r.dstPortStart === 25)).toHaveLength(2);

    // Deleting the machine takes its filter row, rules and settings with it.
    await db.deleteMachine({ operationId: op, actorId: null, machineId: cloneId });
    expect(await ds.getRepository(FirewallFilter).countBy({ machineId: cloneId })).toBe(0);
    expect(await ds.getRepository(FirewallRule).countBy({ filterId: cf.id })).toBe(0);
    expect(await ds.getRepository(ServiceSetting).countBy({ scopeId: cloneId })).toBe(0);
  });
});
