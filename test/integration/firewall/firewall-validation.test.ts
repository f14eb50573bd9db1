/**
 * Validation of the firewall routes on the real stack: each kind of bad rule, sent to a department filter
 * and to a VM filter (add and update), is a 400 problem+json naming the field, every problem of a rule at
 * once; and nothing changes — no rule row, no operation, no event, the filters' libvirt XML as it was.
 * Bad includes, policies, service toggles, flushes and moves likewise.
 */
import { randomUUID } from 'node:crypto';
import { In } from 'typeorm';
import { Department, DepartmentMember } from '../../../src/entities/department';
import { Event } from '../../../src/entities/event';
import { FirewallFilter, FirewallRule, ServiceSetting } from '../../../src/entities/firewall';
import { Operation } from '../../../src/entities/operation';
import { OperationRequest } from '../../../src/entities/operation-request';
import { type User } from '../../../src/entities/user';
import { ensureDepartmentFilterRow, ensureVmFilterRow } from '../../../src/firewall/load';
import { libvirtNames } from '../../../src/workflows/shared';
import { startApi, type ApiHarness } from '../../support/api-harness';
import { seedUser } from '../../support/db';
import { createMachine, destroyIfPresent, seedWorld, type World } from '../../support/machines';
import { startStack, type Stack } from '../../support/stack';

const tcp = { action: 'accept', direction: 'in', protocol: 'tcp' };

/** Each kind of bad rule, and the field its problem names. */
const BAD_RULES: Array<[what: string, rule: unknown, field: string]> = [
  ['a reversed destination port range', { ...tcp, dstPortStart: 80, dstPortEnd: 22 }, 'dstPortEnd'],
  ['a reversed source port range', { ...tcp, srcPortStart: 2000, srcPortEnd: 1000 }, 'srcPortEnd'],
  ['a port range end without a start', { ...tcp, dstPortEnd: 80 }, 'dstPortEnd'],
  ['a port out of range', { ...tcp, dstPortStart: 70000 }, 'dstPortStart'],
  ['ports on icmp', { ...tcp, protocol: 'icmp', dstPortStart: 22 }, 'dstPortStart'],
  ['ports on all', { ...tcp, protocol: 'all', srcPortStart: 22 }, 'srcPortStart'],
  ['an IPv4 address in an IPv6 rule', { ...tcp, protocol: 'tcp-ipv6', srcIpAddr: '10.0.0.1' }, 'srcIpAddr'],
  ['an IPv6 address in an IPv4 rule', { ...tcp, dstIpAddr: 'fd00::1' }, 'dstIpAddr'],
  ['$IP in an IPv6 rule', { ...tcp, protocol: 'udp-ipv6', dstIpAddr: '$IP' }, 'dstIpAddr'],
  ['a variable vmflow does not fill in', { ...tcp, srcIpAddr: '$GATEWAY' }, 'srcIpAddr'],
  ['a priority out of range', { ...tcp, priority: 5000 }, 'priority'],
  ["a priority in the presets' band", { ...tcp, priority: -1000 }, 'priority'],
  ['a fractional priority', { ...tcp, priority: 1.5 }, 'priority'],
  ['an unknown protocol', { ...tcp, protocol: 'gre' }, 'protocol'],
  ['a protocol users may not write', { ...tcp, protocol: 'mac' }, 'protocol'],
  ['an unknown action', { ...tcp, action: 'allow' }, 'action'],
  ['an action users may not write', { ...tcp, action: 'return' }, 'action'],
  ['no action', { direction: 'in', protocol: 'tcp' }, 'action'],
  ['an unknown direction', { ...tcp, direction: 'both' }, 'direction'],
  ['an unknown state', { ...tcp, state: ['NEW', 'OPEN'] }, 'state[1]'],
  ['a state on an IPv6 rule', { ...tcp, protocol: 'tcp-ipv6', state: ['NEW'] }, 'state'],
  ['a mask without an address', { ...tcp, srcIpMask: 24 }, 'srcIpMask'],
  ['a mask too long for IPv4', { ...tcp, dstIpAddr: '10.0.0.0', dstIpMask: 33 }, 'dstIpMask'],
  ['a reversed address range', { ...tcp, srcIpFrom: '10.0.0.9', srcIpTo: '10.0.0.1' }, 'srcIpTo'],
  ['half an address range', { ...tcp, dstIpFrom: '10.0.0.1' }, 'dstIpTo'],
  ['an ICMP code without a type', { ...tcp, protocol: 'icmp', icmpCode: 0 }, 'icmpCode'],
  ['an ICMP type on tcp', { ...tcp, icmpType: 8 }, 'icmpType'],
  ['a comment over two lines', { ...tcp, comment: 'a\nb' }, 'comment'],
  ['an unknown setting', { ...tcp, port: 22 }, 'port'],
];

describe('firewall API validation: bad input is refused and nothing changes', () => {
  let stack: Stack;
  let h: ApiHarness;
  let world: World;
  let manager: User;
  let machineId: string;
  let deptFilter: FirewallFilter;
  let vmFilter: FirewallFilter;
  let ruleId: string;

  /** Everything a refused request must leave as it was. */
  const snapshot = async () => {
    const ds = stack.dataSource;
    const conn = await stack.libvirt.get();
    const xml = async (name: string) => (await conn.lookupNWFilterByName(name)).getXML();
    const scope = [world.department.id, deptFilter.id, vmFilter.id, machineId];
    return {
      rules: (
        await ds
          .getRepository(FirewallRule)
          .find({ where: [{ filterId: deptFilter.id }, { filterId: vmFilter.id }] })
      ).map((r) => [r.id, r.spec]),
      filters: (
        await ds.getRepository(FirewallFilter).find({ where: [{ id: deptFilter.id }, { id: vmFilter.id }] })
      ).map((f) => [f.id, f.includes, f.version]),
      services: await ds
        .getRepository(ServiceSetting)
        .count({ where: [{ scopeId: machineId }, { scopeId: world.department.id }] }),
      requests: await ds
        .getRepository(OperationRequest)
        .count({ where: scope.flatMap((id) => [{ resourceId: id }, { machineId: id }]) }),
      operations: await ds
        .getRepository(Operation)
        .count({ where: scope.flatMap((id) => [{ resourceId: id }, { machineId: id }]) }),
      events: await ds
        .getRepository(Event)
        .count({ where: { resource: In(['firewall', 'services']), departmentId: world.department.id } }),
      policy: (await ds.getRepository(Department).findOneByOrFail({ id: world.department.id }))
        .firewallPolicy,
      libvirt: [
        await xml(libvirtNames.departmentFilter(world.department.id)),
        await xml(libvirtNames.vmFilter(machineId)),
      ],
    };
  };
  let before: Awaited<ReturnType<typeof snapshot>>;

  beforeAll(async () => {
    stack = await startStack();
    h = await startApi(stack);
    world = await seedWorld(stack.dataSource);
    manager = await seedUser(stack.dataSource);
    await stack.dataSource
      .getRepository(DepartmentMember)
      .insert({ departmentId: world.department.id, userId: manager.id, role: 'MANAGER' });
    const created = await createMachine(stack, world);
    machineId = created.machineId;
    deptFilter = await ensureDepartmentFilterRow(
      stack.dataSource.manager,
      world.department.id,
      world.department.name,
    );
    vmFilter = await ensureVmFilterRow(stack.dataSource.manager, machineId, created.name);
    ruleId = randomUUID();
    await stack.dataSource.getRepository(FirewallRule).insert({
      id: ruleId,
      filterId: deptFilter.id,
      spec: { ...tcp, dstPortStart: 8080, priority: 500 } as never,
    });
    before = await snapshot();
  });

  afterAll(async () => {
    if (stack && machineId) {
      await destroyIfPresent(stack, machineId);
      // destroyMachine prunes the department's filter once nothing uses it; in case a step failed half-way:
      const conn = await stack.libvirt.get();
      for (const name of [
        libvirtNames.vmFilter(machineId),
        libvirtNames.departmentFilter(world.department.id),
      ])
        await conn
          .lookupNWFilterByName(name)
          .then((f) => f.undefine())
          .catch(() => undefined);
    }
    await h?.close();
    await stack?.stop();
  });

  const expectRefused = async (
    method: string,
    path: string,
    body: unknown,
    field: string,
    status = 400,
  ): Promise<Array<{ field: string; message: string }>> => {
    const res = await h.call(method, path, { as: manager, body });
    expect({ method, path, body, status: res.status }).toEqual({ method, path, body, status });
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const errors = (res.body.errors ?? []) as Array<{ field: string; message: string }>;
    expect(errors.map((e) => e.field)).toContain(field);
    for (const e of errors) expect(e.message).toEqual(expect.any(String));
    return errors;
  };

  it.each(BAD_RULES)(
    'refuses %s (addRule on the department filter), naming the field',
    async (_w, rule, field) => {
      await expectRefused('POST', `/api/filters/${deptFilter.id}/rules`, rule, field);
    },
  );

  it.each(BAD_RULES)('refuses %s (addRule on the VM filter), naming the field', async (_w, rule, field) => {
    await expectRefused('POST', `/api/filters/${vmFilter.id}/rules`, rule, field);
  });

  it.each(BAD_RULES)('refuses %s (updateRule), naming the field', async (_w, rule, field) => {
    await expectRefused('PUT', `/api/filters/${deptFilter.id}/rules/${ruleId}`, rule, field);
  });

  it('reports every problem of a rule at once', async () => {
    const errors = await expectRefused(
      'POST',
      `/api/filters/${deptFilter.id}/rules`,
      {
        action: 'allow',
        direction: 'in',
        protocol: 'tcp',
        dstPortStart: 80,
        dstPortEnd: 22,
        priority: 5000,
        srcIpMask: 24,
      },
      'action',
    );
    expect(errors.map((e) => e.field)).toEqual(
      expect.arrayContaining(['action', 'dstPortEnd', 'priority', 'srcIpMask']),
    );
    expect(errors.find((e) => e.field === 'dstPortEnd')!.message).toMatch(/reversed/);
  });

  it('refuses bad includes, policies, toggles, flushes, moves and filters', async () => {
    const d = world.department.id;
    const uuid = randomUUID();
    await expectRefused(
      'PUT',
      `/api/filters/${deptFilter.id}/includes`,
      { includes: ['nope'] },
      'includes.0',
    );
    await expectRefused(
      'PUT',
      `/api/filters/${deptFilter.id}/includes`,
      { includes: [uuid, uuid] },
      'includes',
    );
    await expectRefused(
      'PUT',
      `/api/filters/${deptFilter.id}/includes`,
      { includes: Array.from({ length: 17 }, () => randomUUID()) },
      'includes',
    );
    await expectRefused(
      'PUT',
      `/api/filters/${deptFilter.id}/includes`,
      { includes: [uuid] },
      'includes.0',
      404,
    );
    await expectRefused(
      'PUT',
      `/api/filters/${deptFilter.id}/includes`,
      { includes: [vmFilter.id] },
      'includes.0',
      422,
    );
    await expectRefused('PUT', `/api/departments/${d}/policy`, { policy: 'ALLOW_SOME' }, 'policy');
    await expectRefused('PUT', `/api/departments/${d}/policy`, {}, 'policy');
    await expectRefused(
      'PUT',
      `/api/departments/${d}/services/ssh`,
      { action: 'SERVE', enabled: true },
      'action',
    );
    await expectRefused(
      'PUT',
      `/api/departments/${d}/services/ssh`,
      { action: 'USE', enabled: null },
      'enabled',
    );
    await expectRefused(
      'PUT',
      `/api/departments/${d}/services/gopher`,
      { action: 'USE', enabled: true },
      'serviceId',
      404,
    );
    await expectRefused(
      'PUT',
      `/api/machines/${machineId}/services/ssh`,
      { action: 'USE', enabled: 'yes' },
      'enabled',
    );
    await expectRefused(
      'PUT',
      `/api/machines/${machineId}/services/SSH!`,
      { action: 'USE', enabled: true },
      'path.serviceId',
    );
    await expectRefused(
      'POST',
      `/api/machines/${machineId}/filters`,
      { filterId: vmFilter.id },
      'filterId',
      422,
    );
    await expectRefused('POST', '/api/filters/flush', { departmentId: 'everything' }, 'departmentId');
    await expectRefused(
      'PUT',
      `/api/machines/${machineId}/department`,
      { departmentId: d },
      'departmentId',
      422,
    );
    await expectRefused(
      'PUT',
      `/api/machines/${machineId}/department`,
      { departmentId: 'x' },
      'departmentId',
    );
    await expectRefused('POST', '/api/filters', { name: '', departmentId: d }, 'name');
    await expectRefused('POST', '/api/filters', { name: 'x', departmentId: d, kind: 'vm' }, 'kind');
    await expectRefused('PATCH', `/api/filters/${deptFilter.id}`, { name: 'a\u202eb' }, 'name');
  });

  it('left everything as it was: rules, filters, settings, operations, events, libvirt XML', async () => {
    expect(await snapshot()).toEqual(before);
  });
});
