/* eslint-disable @typescript-eslint/no-explicit-any -- socket payloads are JSON that tests read loosely */
/**
 * The firewall API end to end on the real stack (HTTP, Temporal, workers, MariaDB, libvirtd, Socket.IO):
 * addRule / updateRule / deleteRule, service toggles (VM and department, VM override and clearing), policy
 * presets, custom filters applied to a VM, a VM moved to another department, each followed to its
 * operation's success and read back in the DB, the API and libvirt; `firewall:*` and `services:*` events
 * in the right rooms and not in others; a change waiting for a running one of its scope, then 409; and a
 * department deleted only once it has neither machines nor networks, leaving no filter behind.
 */
import { randomUUID } from 'node:crypto';
import { In } from 'typeorm';
import { Department, DepartmentMember } from '../../../src/entities/department';
import { FirewallFilter, FirewallRule, ServiceSetting } from '../../../src/entities/firewall';
import { Host } from '../../../src/entities/host';
import { Machine } from '../../../src/entities/machine';
import { Network } from '../../../src/entities/network';
import { type User } from '../../../src/entities/user';
import { isLibvirtError } from '../../../src/libvirt/errors';
import { CONTROL_TASK_QUEUE, firewallWorkflowId, libvirtNames } from '../../../src/workflows/shared';
import { startApi, type ApiHarness, type RecordingSocket } from '../../support/api-harness';
import { seedTemplate, seedUser } from '../../support/db';
import { createMachine, destroyIfPresent, waitFor } from '../../support/machines';
import { startStack, type Stack } from '../../support/stack';

describe('firewall API: the happy paths, events and department deletion', () => {
  let stack: Stack;
  let h: ApiHarness;
  let admin: User;
  let owner: User; // MEMBER of A (and of B), owns vm
  let peer: User; // MEMBER of A
  let manager: User; // MANAGER of A
  let managerB: User; // MANAGER of B
  let deptA: Department;
  let deptB: Department;
  let vm: { machineId: string; name: string };
  const machines: string[] = [];
  const libvirtIds: string[] = [];
  let sockets: Record<'admin' | 'owner' | 'peer' | 'manager' | 'managerB', RecordingSocket>;

  const xmlOf = async (name: string): Promise<string | null> => {
    const conn = await stack.libvirt.get();
    try {
      return await (await conn.lookupNWFilterByName(name)).getXML();
    } catch (e) {
      if (isLibvirtError(e)) return null;
      throw e;
    }
  };
  /** Follows an operation to its end (as the caller who started it) and expects success. */
  const succeeded = async (operationId: string, as: User = admin) => {
    const view = await waitFor(
      async () => {
        const res = await h.call('GET', `/api/operations/${operationId}`, { as });
        expect(res.status).toBe(200);
        return res.body.status === 'running' ? undefined : res.body;
      },
      `operation ${operationId}`,
      60_000,
    );
    expect({ status: view.status, error: view.error }).toEqual({ status: 'succeeded', error: undefined });
    return view;
  };
  const accepted = async (method: string, path: string, body: unknown, as: User = manager) => {
    const res = await h.call(method, path, { as, body });
    expect({ path, status: res.status, body: res.body }).toMatchObject({ path, status: 202 });
    await succeeded(res.body.operation.id, as);
    return res.body;
  };
  const createDepartment = async () => {
    const res = await h.call('POST', '/api/departments', {
      as: admin,
      body: { name: `fw ${randomUUID().slice(0, 8)}` },
    });
    expect(res.status).toBe(201);
    libvirtIds.push(res.body.id);
    return res.body as Department & { firewallPolicy: string };
  };
  const member = (d: { id: string }, u: User, role: 'MEMBER' | 'MANAGER') =>
    h
      .call('PUT', `/api/departments/${d.id}/members/${u.id}`, { as: admin, body: { role } })
      .then((r) => expect(r.status).toBe(200));
  const deptFilterOf = (departmentId: string) =>
    stack.dataSource.getRepository(FirewallFilter).findOneByOrFail({ kind: 'department', departmentId });

  beforeAll(async () => {
    stack = await startStack();
    h = await startApi(stack);
    const ds = stack.dataSource;
    admin = await seedUser(ds, 'ADMIN');
    owner = await seedUser(ds);
    peer = await seedUser(ds);
    manager = await seedUser(ds);
    managerB = await seedUser(ds);
    deptA = await createDepartment();
    deptB = await createDepartment();
    await member(deptA, owner, 'MEMBER');
    await member(deptA, peer, 'MEMBER');
    await member(deptA, manager, 'MANAGER');
    await member(deptB, managerB, 'MANAGER');
    await member(deptB, owner, 'MEMBER');
    const template = await seedTemplate(ds);
    const made = await createMachine(stack, { owner, department: deptA, template });
    vm = { machineId: made.machineId, name: made.name };
    machines.push(vm.machineId);
    libvirtIds.push(vm.machineId);
    sockets = {
      admin: await h.socket(admin),
      owner: await h.socket(owner),
      peer: await h.socket(peer),
      manager: await h.socket(manager),
      managerB: await h.socket(managerB),
    };
  });

  afterAll(async () => {
    for (const id of machines) await destroyIfPresent(stack, id).catch(() => undefined);
    if (stack) {
      // What the workflows should have pruned, in case a test failed half-way: users before what they include.
      const conn = await stack.libvirt.get();
      for (const prefix of ['vmflow-vm-', 'vmflow-dept-', 'vmflow-fw-'])
        for (const f of await conn.listAllNWFilters()) {
          const name = await f.getName();
          if (name.startsWith(prefix) && libvirtIds.some((id) => name.endsWith(id)))
            await f.undefine().catch(() => undefined);
        }
    }
    await h?.close();
    await stack?.stop();
  });

  /** Names of the events a socket got about a resource id (filter, department, machine) since `from`. */
  const got = (s: RecordingSocket, pred: (e: { name: string; payload: any }) => boolean) =>
    s.events.filter(pred).map((e) => e.name);

  it('creating a department creates its filter row, and the view carries its policy', async () => {
    expect(deptA.firewallPolicy).toBe('ALLOW_ALL');
    const f = await deptFilterOf(deptA.id);
    expect(f).toMatchObject({ kind: 'department', internalName: libvirtNames.departmentFilter(deptA.id) });
    const view = await h.call('GET', `/api/departments/${deptA.id}`, { as: peer });
    expect(view.body).toMatchObject({ id: deptA.id, firewallPolicy: 'ALLOW_ALL' });
  });

  it('GET /api/services lists the catalogue', async () => {
    const res = await h.call('GET', '/api/services', { as: peer });
    expect(res.status).toBe(200);
    expect(res.body).toEqual(
      expect.arrayContaining([
        { id: 'ssh', name: 'SSH', description: expect.any(String), ports: [{ protocol: 'tcp', port: 22 }] },
      ]),
    );
  });

  it('addRule, updateRule, deleteRule: each operation succeeds and the DB, the API and libvirt follow', async () => {
    const f = await deptFilterOf(deptA.id);
    const libvirtName = libvirtNames.departmentFilter(deptA.id);
    const added = await accepted('POST', `/api/filters/${f.id}/rules`, {
      action: 'accept',
      direction: 'in',
      protocol: 'tcp',
      dstPortStart: 2201,
      comment: 'api test <&>',
    });
    const ruleId = added.rule.id as string;
    expect(added.rule).toMatchObject({ id: ruleId, dstPortStart: 2201, priority: 500 });
    expect(await stack.dataSource.getRepository(FirewallRule).findOneBy({ id: ruleId })).toMatchObject({
      filterId: f.id,
      spec: expect.objectContaining({ dstPortStart: 2201 }),
    });
    const described = await h.call('GET', `/api/filters/${f.id}`, { as: manager });
    expect(described.body).toMatchObject({ id: f.id, kind: 'department', libvirtName });
    expect(described.body.rules).toEqual([
      { id: ruleId, rule: expect.objectContaining({ dstPortStart: 2201 }), createdAt: expect.any(String) },
    ]);
    expect(described.body.derived.length).toBeGreaterThan(0); // the preset's established/related accept
    expect(await xmlOf(libvirtName)).toContain("dstportstart='2201'");

    await accepted('PUT', `/api/filters/${f.id}/rules/${ruleId}`, {
      action: 'drop',
      direction: 'in',
      protocol: 'tcp',
      dstPortStart: 2202,
    });
    const xml = await xmlOf(libvirtName);
    expect(xml).toContain("dstportstart='2202'");
    expect(xml).not.toContain("dstportstart='2201'");

    // A retry with the same Idempotency-Key is the same rule and the same operation, not a second rule.
    const key = { 'Idempotency-Key': `fw-${randomUUID()}` };
    const body = { action: 'accept', direction: 'out', protocol: 'udp', dstPortStart: 5001 };
    const once = await h.call('POST', `/api/filters/${f.id}/rules`, { as: manager, body, headers: key });
    const twice = await h.call('POST', `/api/filters/${f.id}/rules`, { as: manager, body, headers: key });
    expect([once.status, twice.status]).toEqual([202, 202]);
    expect(twice.headers.get('idempotent-replayed')).toBe('true');
    expect(twice.body.rule.id).toBe(once.body.rule.id);
    expect(twice.body.operation.id).toBe(once.body.operation.id);
    await succeeded(once.body.operation.id, manager);
    expect(await stack.dataSource.getRepository(FirewallRule).countBy({ filterId: f.id })).toBe(2);
    await accepted('DELETE', `/api/filters/${f.id}/rules/${once.body.rule.id}`, undefined);

    await accepted('DELETE', `/api/filters/${f.id}/rules/${ruleId}`, undefined);
    expect(await stack.dataSource.getRepository(FirewallRule).findOneBy({ id: ruleId })).toBeNull();
    expect(await xmlOf(libvirtName)).not.toContain("dstportstart='2202'");

    // firewall:* go to the department's managers and admins, not to its members or other managers.
    const about = (e: { name: string; payload: any }) =>
      e.payload?.data?.filterId === f.id && e.payload?.data?.ruleId === ruleId;
    const want = ['firewall:rule_created', 'firewall:rule_updated', 'firewall:rule_deleted'];
    for (const s of [sockets.manager, sockets.admin]) {
      await s.waitFor((e) => about(e) && e.name === 'firewall:rule_deleted', 'the rule events');
      expect(got(s, about).filter((n) => want.includes(n))).toEqual(want);
    }
    for (const s of [sockets.owner, sockets.peer, sockets.managerB]) expect(got(s, about)).toEqual([]);
  });

  it('service toggles: a VM setting overrides its department, null clears it; services:* reach the right rooms', async () => {
    const services = async () =>
      (await h.call('GET', `/api/machines/${vm.machineId}/services`, { as: owner })).body.services as Array<{
        serviceId: string;
        action: string;
        enabled: boolean;
        source: string;
      }>;
    const ssh = async () => (await services()).find((s) => s.serviceId === 'ssh' && s.action === 'PROVIDE');
    expect(await ssh()).toEqual({ serviceId: 'ssh', action: 'PROVIDE', enabled: false, source: 'default' });

    await accepted('PUT', `/api/departments/${deptA.id}/services/ssh`, { action: 'PROVIDE', enabled: true });
    expect(await ssh()).toEqual({ serviceId: 'ssh', action: 'PROVIDE', enabled: true, source: 'department' });
    const dept = await h.call('GET', `/api/departments/${deptA.id}/services`, { as: peer });
    expect(dept.body.services).toContainEqual({
      serviceId: 'ssh',
      action: 'PROVIDE',
      enabled: true,
      source: 'department',
    });
    expect(await xmlOf(libvirtNames.vmFilter(vm.machineId))).toContain("dstportstart='22'");

    await accepted('PUT', `/api/machines/${vm.machineId}/services/ssh`, {
      action: 'PROVIDE',
      enabled: false,
    });
    expect(await ssh()).toEqual({ serviceId: 'ssh', action: 'PROVIDE', enabled: false, source: 'vm' });
    expect(await xmlOf(libvirtNames.vmFilter(vm.machineId))).not.toContain("dstportstart='22'");

    await accepted('PUT', `/api/machines/${vm.machineId}/services/ssh`, { action: 'PROVIDE', enabled: null });
    expect(await ssh()).toEqual({ serviceId: 'ssh', action: 'PROVIDE', enabled: true, source: 'department' });
    expect(
      await stack.dataSource.getRepository(ServiceSetting).findOneBy({ scope: 'vm', scopeId: vm.machineId }),
    ).toBeNull();

    // A VM's toggles reach its owner, the department's managers and admins; a department's, its managers.
    const vmToggle = (e: { name: string; payload: any }) =>
      e.name === 'services:toggled' && e.payload?.data?.scopeId === vm.machineId;
    const deptToggle = (e: { name: string; payload: any }) =>
      e.name === 'services:toggled' && e.payload?.data?.scopeId === deptA.id;
    for (const s of [sockets.owner, sockets.manager, sockets.admin])
      await s.waitFor((e) => vmToggle(e) && e.payload.data.enabled === null, 'the VM toggles');
    for (const s of [sockets.manager, sockets.admin]) await s.waitFor(deptToggle, 'the department toggle');
    expect(got(sockets.peer, (e) => vmToggle(e) || deptToggle(e))).toEqual([]);
    expect(got(sockets.managerB, (e) => vmToggle(e) || deptToggle(e))).toEqual([]);
  });

  it('policy presets: BLOCK_ALL then ALLOW_OUTBOUND, read back over HTTP and in libvirt', async () => {
    await accepted('PUT', `/api/departments/${deptA.id}/policy`, { policy: 'BLOCK_ALL' });
    const policy = await h.call('GET', `/api/departments/${deptA.id}/policy`, { as: manager });
    expect(policy.body).toMatchObject({ departmentId: deptA.id, policy: 'BLOCK_ALL' });
    expect(policy.body.rules.length).toBeGreaterThan(1);
    expect((await h.call('GET', `/api/departments/${deptA.id}`, { as: peer })).body.firewallPolicy).toBe(
      'BLOCK_ALL',
    );
    const blocked = await xmlOf(libvirtNames.departmentFilter(deptA.id));
    expect(blocked).toMatch(/action='drop'[^>]*priority='1000'|priority='1000'[^>]*action='drop'/);

    await accepted('PUT', `/api/departments/${deptA.id}/policy`, { policy: 'ALLOW_OUTBOUND' });
    expect((await h.call('GET', `/api/departments/${deptA.id}/policy`, { as: peer })).body.policy).toBe(
      'ALLOW_OUTBOUND',
    );
    const changed = (e: { name: string; payload: any }) =>
      e.name === 'firewall:policy_changed' && e.payload?.data?.policy === 'ALLOW_OUTBOUND';
    await sockets.manager.waitFor(changed, 'the policy event');
    expect(got(sockets.peer, changed)).toEqual([]);
    expect(got(sockets.managerB, changed)).toEqual([]);
  });

  it('custom filters: created (DB only), applied to a VM, delete refused while included, removed, deleted', async () => {
    const created = await h.call('POST', '/api/filters', {
      as: manager,
      body: { name: `web ${randomUUID().slice(0, 6)}`, description: 'web servers', departmentId: deptA.id },
    });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    libvirtIds.push(id);
    expect(created.body).toMatchObject({
      kind: 'custom',
      departmentId: deptA.id,
      libvirtName: `vmflow-fw-${id}`,
    });
    expect(await xmlOf(libvirtNames.customFilter(id))).toBeNull(); // DB only until something includes it
    const dup = await h.call('POST', '/api/filters', {
      as: manager,
      body: { name: created.body.name, departmentId: deptA.id },
    });
    expect(dup.status).toBe(409);
    await sockets.manager.waitFor(
      (e) => e.name === 'firewall:filter_created' && e.payload?.resourceId === id,
      'the filter event',
    );
    expect(got(sockets.managerB, (e) => e.payload?.resourceId === id)).toEqual([]);
    expect(got(sockets.peer, (e) => e.payload?.resourceId === id)).toEqual([]);

    await accepted('POST', `/api/filters/${id}/rules`, {
      action: 'accept',
      direction: 'in',
      protocol: 'tcp',
      dstPortStart: 8443,
    });
    await accepted('POST', `/api/machines/${vm.machineId}/filters`, { filterId: id });
    const vmFilter = await stack.dataSource
      .getRepository(FirewallFilter)
      .findOneByOrFail({ kind: 'vm', machineId: vm.machineId });
    expect(vmFilter.includes).toEqual([id]);
    expect(await xmlOf(libvirtNames.vmFilter(vm.machineId))).toContain(`filter='vmflow-fw-${id}'`);
    expect(await xmlOf(libvirtNames.customFilter(id))).toContain("dstportstart='8443'");

    const refusedDelete = await h.call('DELETE', `/api/filters/${id}`, { as: manager });
    expect(refusedDelete.status).toBe(409);
    expect(refusedDelete.body.includedBy).toEqual([{ id: vmFilter.id, name: vmFilter.name, kind: 'vm' }]);

    await accepted('DELETE', `/api/machines/${vm.machineId}/filters/${id}`, undefined);
    expect(
      (await stack.dataSource.getRepository(FirewallFilter).findOneByOrFail({ id: vmFilter.id })).includes,
    ).toEqual([]);
    expect(await xmlOf(libvirtNames.vmFilter(vm.machineId))).not.toContain(`vmflow-fw-${id}`);
    expect((await h.call('DELETE', `/api/filters/${id}`, { as: manager })).status).toBe(204);
    expect(await stack.dataSource.getRepository(FirewallFilter).findOneBy({ id })).toBeNull();
    expect(await stack.dataSource.getRepository(FirewallRule).countBy({ filterId: id })).toBe(0);
  });

  it('a flush of a department succeeds and pushes nothing more the second time', async () => {
    const first = await accepted('POST', '/api/filters/flush', { departmentId: deptA.id });
    expect(first.operation).toMatchObject({
      type: 'flush_filters',
      resource: 'firewall',
      resourceId: deptA.id,
    });
    const second = await accepted('POST', '/api/filters/flush', { departmentId: deptA.id });
    const flushed = async (operationId: string) =>
      (
        await sockets.manager.waitFor(
          (e) => e.name === 'firewall:flushed' && e.payload?.data?.operationId === operationId,
          'the flush event',
        )
      ).payload.data as { pushed: string[]; unchanged: string[] };
    await flushed(first.operation.id);
    const again = await flushed(second.operation.id);
    expect(again.pushed).toEqual([]);
    expect(again.unchanged).toEqual(
      expect.arrayContaining([libvirtNames.departmentFilter(deptA.id), libvirtNames.vmFilter(vm.machineId)]),
    );
    expect(
      got(
        sockets.managerB,
        (e) => e.name === 'firewall:flushed' && e.payload?.data?.departmentId === deptA.id,
      ),
    ).toEqual([]);
  });

  it('a change waits for the running one of its scope; past the wait it is 409 naming it', async () => {
    // Hold deptB's scope with a workflow that cannot finish (its host queue has no worker).
    const holder = randomUUID();
    const handle = await stack.env.client.workflow.start('pingHost', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: firewallWorkflowId(deptB.id),
      args: [{ hostName: `nowhere-${randomUUID().slice(0, 8)}` }],
      memo: { operationId: holder, type: 'firewall', resourceId: deptB.id, resourceKind: 'firewall' },
    });
    try {
      const t0 = Date.now();
      const res = await h.call('PUT', `/api/departments/${deptB.id}/policy`, {
        as: managerB,
        body: { policy: 'BLOCK_ALL' },
      });
      expect(Date.now() - t0).toBeGreaterThanOrEqual(29_000);
      expect(res.status).toBe(409);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.body.runningOperation).toMatchObject({ id: holder, type: 'firewall' });
      expect(res.body.detail).toContain(holder);
      expect(
        (await stack.dataSource.getRepository(Department).findOneByOrFail({ id: deptB.id })).firewallPolicy,
      ).toBe('ALLOW_ALL');
    } finally {
      await handle.terminate('test over');
    }
    // Once the scope is free, the same change runs.
    await accepted('PUT', `/api/departments/${deptB.id}/policy`, { policy: 'BLOCK_ALL' }, managerB);
  }, 120_000);

  it('moves a VM to another department: the owner must be a member; the filter follows', async () => {
    const outsiderDept = await createDepartment();
    const notMember = await h.call('PUT', `/api/machines/${vm.machineId}/department`, {
      as: admin,
      body: { departmentId: outsiderDept.id },
    });
    expect(notMember.status).toBe(422);
    expect(notMember.body.errors).toEqual([{ field: 'departmentId', message: expect.any(String) }]);

    await accepted('PUT', `/api/machines/${vm.machineId}/department`, { departmentId: deptB.id }, admin);
    expect(
      (await stack.dataSource.getRepository(Machine).findOneByOrFail({ id: vm.machineId })).departmentId,
    ).toBe(deptB.id);
    expect(await xmlOf(libvirtNames.vmFilter(vm.machineId))).toContain(
      `filter='${libvirtNames.departmentFilter(deptB.id)}'`,
    );
    // The machine's services now fall back to deptB's settings.
    const services = await h.call('GET', `/api/machines/${vm.machineId}/services`, { as: managerB });
    expect(services.status).toBe(200);
    expect(services.body.departmentId).toBe(deptB.id);
  });

  it('deleting a department: refused while machines or networks belong to it; then nothing of it is left', async () => {
    const ds = stack.dataSource;
    const dept = await createDepartment();
    await member(dept, owner, 'MEMBER');
    await member(dept, manager, 'MANAGER');
    const filter = await deptFilterOf(dept.id);
    const template = await seedTemplate(ds);
    const made = await createMachine(stack, { owner, department: dept, template });
    machines.push(made.machineId);
    await accepted('POST', `/api/filters/${filter.id}/rules`, {
      action: 'drop',
      direction: 'out',
      protocol: 'udp',
      dstPortStart: 5353,
    });
    await accepted('PUT', `/api/departments/${dept.id}/services/https`, { action: 'USE', enabled: true });
    const custom = await h.call('POST', '/api/filters', {
      as: manager,
      body: { name: 'scoped', departmentId: dept.id },
    });
    expect(custom.status).toBe(201);
    libvirtIds.push(custom.body.id);
    expect(await xmlOf(libvirtNames.departmentFilter(dept.id))).toContain("dstportstart='5353'");

    const withMachine = await h.call('DELETE', `/api/departments/${dept.id}`, { as: admin });
    expect(withMachine.status).toBe(422);

    await destroyIfPresent(stack, made.machineId);
    const host = await ds.getRepository(Host).findOneByOrFail({ name: stack.hostName });
    const networkId = randomUUID();
    await ds.getRepository(Network).insert({
      id: networkId,
      name: `fw-api-${networkId.slice(0, 8)}`,
      description: null,
      internalName: libvirtNames.network(networkId),
      bridgeName: libvirtNames.bridge(networkId),
      hostId: host.id,
      mode: 'isolated',
      cidr: '10.251.7.0/24',
      gateway: '10.251.7.1',
      dhcpStart: null,
      dhcpEnd: null,
      staticHosts: null,
      forwardDev: null,
      departmentId: dept.id,
      vlanId: null,
      bandwidth: null,
      qosApplied: false,
      status: 'active',
      lastError: null,
      currentOperationId: null,
    });
    try {
      const withNetwork = await h.call('DELETE', `/api/departments/${dept.id}`, { as: admin });
      expect(withNetwork.status).toBe(409);
      expect(withNetwork.body.networks).toEqual([{ id: networkId, name: `fw-api-${networkId.slice(0, 8)}` }]);
      expect(await ds.getRepository(FirewallFilter).countBy({ departmentId: dept.id })).toBe(2);
    } finally {
      await ds.getRepository(Network).delete({ id: networkId });
    }

    expect((await h.call('DELETE', `/api/departments/${dept.id}`, { as: admin })).status).toBe(204);
    const filterIds = [filter.id, custom.body.id as string];
    expect(await ds.getRepository(FirewallFilter).countBy({ id: In(filterIds) })).toBe(0);
    expect(await ds.getRepository(FirewallFilter).countBy({ departmentId: dept.id })).toBe(0);
    expect(await ds.getRepository(FirewallRule).countBy({ filterId: In(filterIds) })).toBe(0);
    expect(await ds.getRepository(ServiceSetting).countBy({ scope: 'department', scopeId: dept.id })).toBe(0);
    expect(await ds.getRepository(DepartmentMember).countBy({ departmentId: dept.id })).toBe(0);
    expect(await xmlOf(libvirtNames.departmentFilter(dept.id))).toBeNull();
    expect(await xmlOf(libvirtNames.customFilter(custom.body.id))).toBeNull();
  });
});
