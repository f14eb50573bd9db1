/**
 * A fault at every step of every firewall workflow, before and after the step's side effect (the fault
 * injector of the activity deps): afterwards libvirt's filters (read back as XML) and the database's firewall
 * rows are exactly as they were before the workflow started. Destroy (forward-only) leaves a `failed` row that
 * a second destroy finishes without leaving a filter behind; a failed create leaves no department filter that
 * nothing uses.
 */
import { randomUUID } from 'node:crypto';
import { type FaultPhase } from '../../../src/activities/faults';
import { Machine } from '../../../src/entities/machine';
import { buildNWFilterXml } from '../../../src/libvirt/xml';
import { libvirtNames } from '../../../src/workflows/shared';
import { seedDepartment } from '../../support/db';
import {
  dbSnapshot,
  departmentFilterRow,
  failureTypeOf,
  filterXml,
  runFirewallChange,
  runFlush,
  seedCustomFilter,
  vmFilterRow,
} from '../../support/firewall';
import { tracesOf } from '../../support/leftovers';
import {
  createMachine,
  createRequest,
  destroyIfPresent,
  runMachineOperation,
  seedWorld,
  type World,
} from '../../support/machines';
import { startStack, type Stack } from '../../support/stack';

jest.setTimeout(300_000);

const PHASES: FaultPhase[] = ['before', 'after'];
const cases = (steps: string[]) => steps.flatMap((s) => PHASES.map((p) => [s, p] as const));

describe('firewall workflows: a fault at every step leaves libvirt and the database as they were', () => {
  let stack: Stack;
  let world: World;
  let machineId: string;
  let customId: string;
  const made: string[] = [];
  const deptId = () => world.department.id;

  /** The XML of every filter a case may touch (null: absent). */
  const libvirtState = async (extra: string[] = []) => {
    const names = [
      libvirtNames.vmFilter(machineId),
      libvirtNames.departmentFilter(deptId()),
      libvirtNames.customFilter(customId),
      ...extra,
    ];
    return Object.fromEntries(
      await Promise.all(names.map(async (n) => [n, await filterXml(stack.libvirt, n)])),
    );
  };
  const dbState = async () => {
    const dept = await departmentFilterRow(stack.dataSource, deptId());
    const vm = await vmFilterRow(stack.dataSource, machineId);
    return dbSnapshot(stack.dataSource, [dept.id, vm.id, customId], [deptId(), machineId], [deptId()]);
  };
  /** Runs `run` with a fault armed and asserts that it failed and changed nothing. */
  const expectNoTrace = async (
    step: string,
    phase: FaultPhase,
    run: () => Promise<unknown>,
    extra: string[] = [],
  ) => {
    const [libvirtBefore, dbBefore] = [await libvirtState(extra), await dbState()];
    stack.faults.arm(step, phase);
    await expect(failureTypeOf(run())).resolves.toBe('InjectedFault');
    expect(await libvirtState(extra)).toEqual(libvirtBefore);
    expect(await dbState()).toEqual(dbBefore);
  };

  beforeAll(async () => {
    stack = await startStack();
    world = await seedWorld(stack.dataSource);
    await departmentFilterRow(stack.dataSource, deptId());
    const custom = await seedCustomFilter(stack.dataSource);
    customId = custom.id;
    const m = await createMachine(stack, world, { start: true });
    machineId = m.machineId;
    made.push(machineId);
    // The department filter includes the custom filter, which holds a rule: a removal must prune it.
    await runFirewallChange(stack, custom.id, {
      type: 'addRule',
      filterId: custom.id,
      ruleId: randomUUID(),
      rule: { action: 'drop', direction: 'out', protocol: 'tcp', dstPortStart: 25 },
    });
    const dept = await departmentFilterRow(stack.dataSource, deptId());
    await runFirewallChange(stack, deptId(), {
      type: 'setIncludes',
      filterId: dept.id,
      includes: [custom.id],
    });
    expect(await filterXml(stack.libvirt, libvirtNames.customFilter(custom.id))).toContain('dstportstart');
  });
  afterEach(() => stack.faults.clear());
  afterAll(async () => {
    for (const id of made) await destroyIfPresent(stack, id).catch(() => undefined);
    await stack?.stop();
  });

  describe('firewallChange: a rule added to the VM filter', () => {
    it.each(cases(['applyFirewallChange', 'planFilterPush', 'readFilters', 'pushFilters']))(
      'fails at %s (%s)',
      async (step, phase) => {
        const vm = await vmFilterRow(stack.dataSource, machineId);
        await expectNoTrace(step, phase, () =>
          runFirewallChange(stack, deptId(), {
            type: 'addRule',
            filterId: vm.id,
            ruleId: randomUUID(),
            rule: { action: 'accept', direction: 'in', protocol: 'tcp', dstPortStart: 443 },
          }),
        );
      },
    );
  });

  describe('firewallChange: the department stops including the custom filter (pruned)', () => {
    it.each(cases(['applyFirewallChange', 'pushFilters', 'planPrune', 'pruneFilters']))(
      'fails at %s (%s)',
      async (step, phase) => {
        const dept = await departmentFilterRow(stack.dataSource, deptId());
        await expectNoTrace(step, phase, () =>
          runFirewallChange(stack, deptId(), { type: 'setIncludes', filterId: dept.id, includes: [] }),
        );
        expect(await filterXml(stack.libvirt, libvirtNames.customFilter(customId))).not.toBeNull();
      },
    );

    it('without a fault, the custom filter goes (nothing else uses it) and comes back when included again', async () => {
      const dept = await departmentFilterRow(stack.dataSource, deptId());
      await runFirewallChange(stack, deptId(), { type: 'setIncludes', filterId: dept.id, includes: [] });
      expect(await filterXml(stack.libvirt, libvirtNames.customFilter(customId))).toBeNull();
      await runFirewallChange(stack, deptId(), {
        type: 'setIncludes',
        filterId: dept.id,
        includes: [customId],
      });
      expect(await filterXml(stack.libvirt, libvirtNames.customFilter(customId))).toContain('dstportstart');
    });
  });

  describe('firewallChange: preset and service toggle', () => {
    it.each(cases(['applyFirewallChange', 'pushFilters']))(
      'setPolicy fails at %s (%s)',
      async (step, phase) => {
        await expectNoTrace(step, phase, () =>
          runFirewallChange(stack, deptId(), {
            type: 'setPolicy',
            departmentId: deptId(),
            policy: 'BLOCK_ALL',
          }),
        );
      },
    );
    it.each(cases(['applyFirewallChange', 'pushFilters']))(
      'toggleService fails at %s (%s)',
      async (step, phase) => {
        await expectNoTrace(step, phase, () =>
          runFirewallChange(stack, deptId(), {
            type: 'toggleService',
            scope: 'department',
            scopeId: deptId(),
            serviceId: 'rdp',
            action: 'PROVIDE',
            enabled: true,
          }),
        );
      },
    );
  });

  describe('flushFilters', () => {
    it.each(cases(['planFilterPush', 'readFilters', 'pushFilters', 'recordFlush']))(
      'fails at %s (%s): the filter changed behind vmflow’s back stays as it was',
      async (step, phase) => {
        const name = libvirtNames.departmentFilter(deptId());
        const conn = await stack.libvirt.get();
        const current = await conn.lookupNWFilterByName(name);
        // Drift: the flush would push this filter back to the database's content.
        await conn.defineNWFilter(
          buildNWFilterXml({
            name,
            uuid: await current.getUUID(),
            filterrefs: [{ filter: 'clean-traffic' }, { filter: libvirtNames.customFilter(customId) }],
          }),
        );
        await expectNoTrace(step, phase, () => runFlush(stack, deptId()));
        const fixed = await runFlush(stack, deptId());
        expect(fixed.pushed).toEqual([name]);
      },
    );
  });

  describe('changeMachineDepartment (running machine)', () => {
    const steps = [
      'planDepartmentChange',
      'setMachineStatus:updating',
      'readFilters',
      'ensureDepartmentFilter',
      'ensureVmFilter',
      'setMachineDepartment',
      'planPrune',
      'pruneFilters',
      'setMachineStatus:running',
    ];
    it.each(cases(steps))('fails at %s (%s): filters, row and status as before', async (step, phase) => {
      const target = await seedDepartment(stack.dataSource, [[world.owner, 'MEMBER']]);
      await departmentFilterRow(stack.dataSource, target.id);
      const targetFilter = libvirtNames.departmentFilter(target.id);
      const rowBefore = await stack.dataSource.getRepository(Machine).findOneByOrFail({ id: machineId });
      await expectNoTrace(
        step,
        phase,
        () =>
          runMachineOperation(stack.env.client, 'changeMachineDepartment', {
            machineId,
            departmentId: target.id,
            actorId: null,
          }),
        [targetFilter],
      );
      expect(await filterXml(stack.libvirt, targetFilter)).toBeNull();
      const row = await stack.dataSource.getRepository(Machine).findOneByOrFail({ id: machineId });
      expect({ departmentId: row.departmentId, status: row.status, op: row.currentOperationId }).toEqual({
        departmentId: rowBefore.departmentId,
        status: 'running',
        op: null,
      });
    });
  });

  describe('createMachine and destroyMachine leave no department filter that nothing uses', () => {
    it.each(cases(['ensureDepartmentFilter', 'ensureVmFilter', 'defineDomain']))(
      'create fails at %s (%s): the new department filter is pruned',
      async (step, phase) => {
        const dept = await seedDepartment(stack.dataSource, [[world.owner, 'MEMBER']]);
        const req = createRequest(stack, { ...world, department: dept });
        stack.faults.arm(step, phase);
        await expect(
          failureTypeOf(runMachineOperation(stack.env.client, 'createMachine', req as never)),
        ).resolves.toBe('InjectedFault');
        made.push(req.machineId);
        expect(await filterXml(stack.libvirt, libvirtNames.departmentFilter(dept.id))).toBeNull();
        expect((await tracesOf(req.machineId, stack)).vmFilter).toBe(false);
      },
    );

    it.each(PHASES)('destroy fails at pruneFilters (%s); destroying again leaves nothing', async (phase) => {
      const dept = await seedDepartment(stack.dataSource, [[world.owner, 'MEMBER']]);
      const m = await createMachine(stack, { ...world, department: dept });
      made.push(m.machineId);
      const name = libvirtNames.departmentFilter(dept.id);
      expect(await filterXml(stack.libvirt, name)).not.toBeNull();
      stack.faults.arm('pruneFilters', phase);
      await expect(
        failureTypeOf(
          runMachineOperation(stack.env.client, 'destroyMachine', { machineId: m.machineId, actorId: null }),
        ),
      ).resolves.toBe('InjectedFault');
      expect(
        (await stack.dataSource.getRepository(Machine).findOneByOrFail({ id: m.machineId })).status,
      ).toBe('failed');
      await runMachineOperation(stack.env.client, 'destroyMachine', {
        machineId: m.machineId,
        actorId: null,
      });
      expect(await filterXml(stack.libvirt, name)).toBeNull();
      expect((await tracesOf(m.machineId, stack)).row).toBeNull();
    });
  });
});
