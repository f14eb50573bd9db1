/**
 * The firewall on the real stack: after each change — rule added and removed, service toggled on and off
 * (department and VM level, with a VM override), preset switched, VM moved to another department — the
 * nwfilter XML in libvirt and the iptables/ebtables rules of the running VM's tap device in the namespace
 * reflect the database. Read back from libvirt and the namespace, never from our own state.
 */
import { randomUUID } from 'node:crypto';
import { Event } from '../../../src/entities/event';
import { Department } from '../../../src/entities/department';
import { FirewallFilter, FirewallRule } from '../../../src/entities/firewall';
import { PRIORITY } from '../../../src/firewall/compile';
import { buildNWFilterXml } from '../../../src/libvirt/xml';
import { FailureType, libvirtNames } from '../../../src/workflows/shared';
import {
  bindings,
  departmentFilterRow,
  failureTypeOf,
  fromGuest,
  libvirtFilter,
  runFirewallChange,
  runFlush,
  toGuest,
  vmFilterRow,
  vmflowFilters,
  createNetbootMachine,
  waitForRules,
} from '../../support/firewall';
import { seedDepartment } from '../../support/db';
import { filterLeftovers } from '../../support/leftovers';
import { destroyIfPresent, runMachineOperation, seedWorld, type World } from '../../support/machines';
import { startStack, type Stack } from '../../support/stack';

jest.setTimeout(300_000);

describe('firewall enforcement on the real stack', () => {
  let stack: Stack;
  let world: World;
  let machineId: string;
  let tap: string;
  const made: string[] = [];
  const deptId = () => world.department.id;
  const vmName = () => libvirtNames.vmFilter(machineId);
  const deptName = () => libvirtNames.departmentFilter(deptId());

  beforeAll(async () => {
    stack = await startStack();
    world = await seedWorld(stack.dataSource);
    await departmentFilterRow(stack.dataSource, deptId());
    ({ machineId, tap } = await createNetbootMachine(stack, world, made));
  }, 300_000);
  afterAll(async () => {
    for (const id of made) await destroyIfPresent(stack, id).catch(() => undefined);
    await stack?.stop();
  });

  it('a new machine: VM filter → department filter → clean-traffic and allow-dhcp; established first', async () => {
    const vm = await libvirtFilter(stack.libvirt, vmName());
    expect(vm!.filterrefs.map((r) => r.filter)).toEqual([deptName()]);
    const dept = await libvirtFilter(stack.libvirt, deptName());
    expect(dept!.filterrefs.map((r) => r.filter)).toEqual(['clean-traffic', 'allow-dhcp']);
    expect(dept!.rules[0]).toMatchObject({
      action: 'accept',
      priority: PRIORITY.established,
      protocol: 'all',
    });
    expect((await bindings(stack.libvirt)).get(tap)).toBe(vmName());
    const rules = await waitForRules(tap);
    expect(toGuest(rules, tap)[0]).toMatch(/--ctstate RELATED,ESTABLISHED .*-j ACCEPT$/);
    // ALLOW_ALL drops nothing in iptables; clean-traffic still guards the MAC in ebtables.
    expect(rules.iptables.filter((l) => / -j DROP$/.test(l))).toEqual([]);
    expect(rules.ebtables.join('\n')).toMatch(/DROP/);
  });

  it('a rule added to the VM filter appears in libvirt and iptables; removed, it disappears', async () => {
    const filter = await vmFilterRow(stack.dataSource, machineId);
    const ruleId = randomUUID();
    const rule = { action: 'drop', direction: 'in', protocol: 'tcp', dstPortStart: 2222 };
    const added = await runFirewallChange(stack, deptId(), {
      type: 'addRule',
      filterId: filter.id,
      ruleId,
      rule,
    });
    expect(added.pushed).toEqual([vmName()]);
    expect((await libvirtFilter(stack.libvirt, vmName()))!.rules).toEqual([
      expect.objectContaining({
        action: 'drop',
        direction: 'in',
        protocol: 'tcp',
        dstPortStart: 2222,
        priority: 500,
      }),
    ]);
    await waitForRules(
      tap,
      (r) => toGuest(r, tap).some((l) => /--dport 2222 .*-j DROP/.test(l)),
      'the drop of 2222',
    );
    const events = await stack.dataSource
      .getRepository(Event)
      .findBy({ resource: 'firewall', resourceId: filter.id });
    expect(events.map((e) => e.action)).toContain('rule_created');

    const removed = await runFirewallChange(stack, deptId(), {
      type: 'deleteRule',
      filterId: filter.id,
      ruleId,
    });
    expect(removed.pushed).toEqual([vmName()]);
    expect((await libvirtFilter(stack.libvirt, vmName()))!.rules).toEqual([]);
    await waitForRules(tap, (r) => !r.iptables.some((l) => l.includes('2222')), 'the drop of 2222 to go');
  });

  it('validation rejects a bad rule and nothing changes', async () => {
    const filter = await vmFilterRow(stack.dataSource, machineId);
    const before = await libvirtFilter(stack.libvirt, vmName());
    const bad = { action: 'accept', direction: 'in', protocol: 'icmp', dstPortStart: 22 };
    await expect(
      failureTypeOf(
        runFirewallChange(stack, deptId(), {
          type: 'addRule',
          filterId: filter.id,
          ruleId: randomUUID(),
          rule: bad,
        }),
      ),
    ).resolves.toBe(FailureType.Validation);
    expect(await stack.dataSource.getRepository(FirewallRule).countBy({ filterId: filter.id })).toBe(0);
    expect(await libvirtFilter(stack.libvirt, vmName())).toEqual(before);
  });

  it('BLOCK_ALL drops; a department service opens its port before the drop; a VM override closes it', async () => {
    await runFirewallChange(stack, deptId(), {
      type: 'setPolicy',
      departmentId: deptId(),
      policy: 'BLOCK_ALL',
    });
    let rules = await waitForRules(
      tap,
      (r) =>
        toGuest(r, tap).some((l) => / -j DROP$/.test(l)) &&
        fromGuest(r, tap).some((l) => / -j DROP$/.test(l)),
      'the BLOCK_ALL drops',
    );
    expect(rules.ip6tables.some((l) => / -j DROP$/.test(l))).toBe(true);
    // DHCP keeps working: its accepts come before the drop in both directions.
    const to = toGuest(rules, tap);
    expect(to.findIndex((l) => /--dport 68/.test(l))).toBeLessThan(to.findIndex((l) => / -j DROP$/.test(l)));

    const toggle = (scope: 'vm' | 'department', enabled: boolean | null) =>
      runFirewallChange(stack, deptId(), {
        type: 'toggleService',
        scope,
        scopeId: scope === 'vm' ? machineId : deptId(),
        serviceId: 'ssh',
        action: 'PROVIDE',
        enabled,
      });
    const sshOpen = (r: Awaited<ReturnType<typeof waitForRules>>) => {
      const chain = toGuest(r, tap);
      const ssh = chain.findIndex((l) => /--dport 22 .*-j ACCEPT/.test(l));
      return ssh >= 0 && ssh < chain.findIndex((l) => / -j DROP$/.test(l));
    };

    const on = await toggle('department', true);
    expect(on.pushed).toEqual([vmName()]);
    rules = await waitForRules(tap, sshOpen, 'ssh accepted before the drop');
    expect(
      (await libvirtFilter(stack.libvirt, vmName()))!.rules.map((r) => [
        r.direction,
        r.protocol,
        r.dstPortStart,
        r.priority,
      ]),
    ).toEqual([
      ['in', 'tcp', 22, PRIORITY.service],
      ['in', 'tcp-ipv6', 22, PRIORITY.service],
    ]);

    await toggle('vm', false); // the VM's own setting wins over its department's
    await waitForRules(
      tap,
      (r) => !r.iptables.some((l) => /--dport 22 /.test(l)),
      'ssh closed by the VM override',
    );
    await toggle('vm', null); // back to following the department
    await waitForRules(tap, sshOpen, 'ssh open again');
    await toggle('department', false);
    await waitForRules(
      tap,
      (r) => !r.iptables.some((l) => /--dport 22 /.test(l)),
      'ssh closed by the department',
    );

    await runFirewallChange(stack, deptId(), {
      type: 'setPolicy',
      departmentId: deptId(),
      policy: 'ALLOW_INTERNET',
    });
    rules = await waitForRules(
      tap,
      (r) =>
        fromGuest(r, tap).some((l) => /--dport 443 /.test(l)) &&
        !toGuest(r, tap).some((l) => /--dport 68 .*DROP/.test(l)),
      'the ALLOW_INTERNET rules',
    );
    const from = fromGuest(rules, tap);
    expect(from.findIndex((l) => /--dport 443 /.test(l))).toBeLessThan(
      from.findIndex((l) => / -j DROP$/.test(l)),
    );
    await runFirewallChange(stack, deptId(), {
      type: 'setPolicy',
      departmentId: deptId(),
      policy: 'ALLOW_ALL',
    });
    await waitForRules(tap, (r) => !r.iptables.some((l) => / -j DROP$/.test(l)), 'the drops to go');
    expect(
      (await stack.dataSource.getRepository(Department).findOneByOrFail({ id: deptId() })).firewallPolicy,
    ).toBe('ALLOW_ALL');
  });

  it('a flush pushes only what differs, and a second flush pushes nothing', async () => {
    const first = await runFlush(stack, deptId());
    expect(first.pushed).toEqual([]);
    expect(first.unchanged).toEqual(expect.arrayContaining([deptName(), vmName()]));
    // Someone changes the department filter behind vmflow's back.
    const conn = await stack.libvirt.get();
    const current = await conn.lookupNWFilterByName(deptName());
    await conn.defineNWFilter(
      buildNWFilterXml({
        name: deptName(),
        uuid: await current.getUUID(),
        filterrefs: [{ filter: 'clean-traffic' }],
        rules: [{ action: 'drop', direction: 'inout', protocol: 'all', priority: 1000 }],
      }),
    );
    const second = await runFlush(stack, deptId());
    expect(second.pushed).toEqual([deptName()]);
    expect((await libvirtFilter(stack.libvirt, deptName()))!.filterrefs.map((r) => r.filter)).toEqual([
      'clean-traffic',
      'allow-dhcp',
    ]);
    // (A flush of everything would reach the hosts of other suites: the workflow tier covers it.)
    const third = await runFlush(stack, deptId());
    expect(third.pushed).toEqual([]);
  });

  it('moving the VM to another department: its filter references the new one, the old one is pruned', async () => {
    const other = await seedDepartment(stack.dataSource, [[world.owner, 'MEMBER']]);
    await departmentFilterRow(stack.dataSource, other.id);
    await runFirewallChange(stack, other.id, {
      type: 'setPolicy',
      departmentId: other.id,
      policy: 'BLOCK_ALL',
    });
    const filter = await vmFilterRow(stack.dataSource, machineId);
    const ruleId = randomUUID();
    await runFirewallChange(stack, deptId(), {
      type: 'addRule',
      filterId: filter.id,
      ruleId,
      rule: { action: 'accept', direction: 'in', protocol: 'tcp', dstPortStart: 8080 },
    });
    const result = await runMachineOperation(stack.env.client, 'changeMachineDepartment', {
      machineId,
      departmentId: other.id,
      actorId: null,
    });
    expect(result.status).toBe('running');
    const vm = await libvirtFilter(stack.libvirt, vmName());
    expect(vm!.filterrefs.map((r) => r.filter)).toEqual([libvirtNames.departmentFilter(other.id)]);
    expect(vm!.rules.map((r) => r.dstPortStart)).toEqual([8080]); // its own rules stay
    expect(await libvirtFilter(stack.libvirt, deptName())).toBeNull(); // nothing else used it
    const rules = await waitForRules(
      tap,
      (r) => toGuest(r, tap).some((l) => / -j DROP$/.test(l)),
      'the new department’s BLOCK_ALL',
    );
    const chain = toGuest(rules, tap);
    expect(chain.findIndex((l) => /--dport 8080 .*ACCEPT/.test(l))).toBeLessThan(
      chain.findIndex((l) => / -j DROP$/.test(l)),
    );
    world = { ...world, department: other };
  });

  it('destroying the last VM of a department leaves no filter or binding of it', async () => {
    const dept = libvirtNames.departmentFilter(deptId());
    await runMachineOperation(stack.env.client, 'destroyMachine', {
      machineId,
      actorId: null,
      shutdownTimeoutSec: 1,
    });
    expect(await filterLeftovers([vmName(), dept], stack)).toEqual({ filters: [], bindings: [] });
    expect((await vmflowFilters(stack.libvirt)).filter((n) => n.includes(machineId))).toEqual([]);
    expect(await stack.dataSource.getRepository(FirewallFilter).countBy({ machineId })).toBe(0);
  });
});
