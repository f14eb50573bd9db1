/**
 * /api/networks and PUT /api/machines/:id/network over HTTP on the real stack: every bad request is a
 * 400 naming its fields (or 409/422) and makes nothing (no row, no libvirt network, no workflow); the
 * permission model (admins manage, others see shared networks and their departments', 404 for the rest);
 * 202 + operation for what touches libvirt; the delete refused with 409 naming the attached machines;
 * machines created on a network and moved; `networks:*` events reach the right sockets; OpenAPI covers
 * every route.
 */
import { randomUUID } from 'node:crypto';
import { type Department } from '../../../src/entities/department';
import { Machine } from '../../../src/entities/machine';
import { type MachineTemplate } from '../../../src/entities/machine-template';
import { In } from 'typeorm';
import { Network } from '../../../src/entities/network';
import { OperationRequest } from '../../../src/entities/operation-request';
import { type User } from '../../../src/entities/user';
import { parseDomainXml } from '../../../src/libvirt/xml';
import { libvirtNames } from '../../../src/workflows/shared';
import { seedMachineRow, startApi, type ApiHarness } from '../../support/api-harness';
import { seedDepartment, seedTemplate, seedUser } from '../../support/db';
import { destroyIfPresent, domainOf, waitFor } from '../../support/machines';
import {
  NO_NETWORK_TRACE,
  definitionsOf,
  networkTraces,
  nicFilterOn,
  rangesOf,
  removeNetwork,
  subnets,
} from '../../support/networks';
import { startStack, type Stack } from '../../support/stack';
import { Host } from '../../../src/entities/host';

const nextSubnet = subnets(252, 120);

describe('/api/networks on the real stack', () => {
  let stack: Stack;
  let h: ApiHarness;
  let admin: User;
  let alice: User; // MEMBER of deptA
  let bob: User; // MEMBER of deptB
  let deptA: Department;
  let deptB: Department;
  let template: MachineTemplate;
  const made: string[] = [];
  const machinesMade: string[] = [];

  const op = async (id: string, as: User = admin) =>
    waitFor(
      async () => {
        const r = await h.call('GET', `/api/operations/${id}`, { as });
        expect(r.status).toBe(200);
        return r.body.status !== 'running' ? r.body : undefined;
      },
      `operation ${id}`,
      120_000,
    );
  /**
   * What this suite's requests can have made: network rows and operation requests of its users, and the
   * vmflow libvirt networks that no other suite's row accounts for (other suites may run alongside).
   */
  const counts = async () => {
    const actors = [admin.id, alice.id, bob.id];
    const rows = await stack.dataSource.getRepository(Network).find({ select: { id: true } });
    const names = await Promise.all(
      (await (await stack.libvirt.get()).listAllNetworks()).map((n) => n.getName().catch(() => '')),
    );
    const known = new Set(rows.map((r) => libvirtNames.network(r.id)));
    return {
      rows: rows.filter((r) => made.includes(r.id)).length,
      requests: await stack.dataSource
        .getRepository(OperationRequest)
        .count({ where: { resource: 'networks', actorId: In(actors) } }),
      orphanLibvirt: names.filter((n) => n.startsWith('vmflow-net-') && !known.has(n)).length,
    };
  };
  /** Creates a network over HTTP and waits for it. */
  const createNetwork = async (body: Record<string, unknown> = {}) => {
    const s = await nextSubnet(stack);
    const r = await h.call('POST', '/api/networks', {
      as: admin,
      body: {
        name: `n-${randomUUID().slice(0, 8)}`,
        mode: 'nat',
        cidr: s.cidr,
        dhcpStart: s.dhcpStart,
        dhcpEnd: s.dhcpEnd,
        ...body,
      },
    });
    expect(r.status).toBe(202);
    made.push(r.body.network.id);
    expect((await op(r.body.operation.id)).status).toBe('succeeded');
    return { id: r.body.network.id as string, s, created: r };
  };

  beforeAll(async () => {
    stack = await startStack();
    h = await startApi(stack);
    admin = await seedUser(stack.dataSource, 'ADMIN');
    alice = await seedUser(stack.dataSource);
    bob = await seedUser(stack.dataSource);
    deptA = await seedDepartment(stack.dataSource, [[alice, 'MEMBER']]);
    deptB = await seedDepartment(stack.dataSource, [[bob, 'MEMBER']]);
    template = await seedTemplate(stack.dataSource);
  });
  afterAll(async () => {
    for (const id of machinesMade) await destroyIfPresent(stack, id).catch(() => undefined);
    await stack?.dataSource.getRepository(Machine).delete({ departmentId: deptA.id });
    for (const id of made) await removeNetwork(stack, id).catch(() => undefined);
    await h?.close();
    await stack?.stop();
  });

  describe('POST /api/networks: every bad request names its fields and makes nothing', () => {
    const s = { cidr: '10.252.250.0/24', dhcpStart: '10.252.250.100', dhcpEnd: '10.252.250.200' };
    it.each<[string, Record<string, unknown>, number, string[]]>([
      ['a malformed CIDR', { mode: 'nat', cidr: '10.252.250/24' }, 400, ['cidr']],
      ['host bits in the CIDR', { mode: 'nat', cidr: '10.252.250.7/24' }, 400, ['cidr']],
      ['no subnet in nat mode', { mode: 'nat' }, 400, ['cidr']],
      ['a gateway outside the subnet', { mode: 'nat', ...s, gateway: '10.252.251.1' }, 400, ['gateway']],
      [
        'a reversed range',
        { mode: 'nat', ...s, dhcpStart: '10.252.250.200', dhcpEnd: '10.252.250.100' },
        400,
        ['dhcpEnd'],
      ],
      ['a range over the gateway', { mode: 'nat', ...s, dhcpStart: '10.252.250.1' }, 400, ['dhcpStart']],
      [
        'a range outside the subnet',
        { mode: 'nat', ...s, dhcpStart: '10.252.249.1', dhcpEnd: '10.252.249.9' },
        400,
        ['dhcpStart'],
      ],
      ['a bridge name too long', { mode: 'bridge', bridgeName: 'x'.repeat(16) }, 400, ['bridgeName']],
      ['bridge mode with a subnet', { mode: 'bridge', bridgeName: 'br0', cidr: s.cidr }, 400, ['cidr']],
      ['VLAN 4095', { mode: 'nat', ...s, vlanId: 4095 }, 400, ['vlanId']],
      ['a VLAN outside bridge mode', { mode: 'nat', ...s, vlanId: 10 }, 400, ['vlanId']],
      [
        'a zero bandwidth',
        { mode: 'nat', ...s, bandwidth: { inbound: { average: 0 } } },
        400,
        ['bandwidth.inbound.average'],
      ],
      [
        'a peak below the average',
        { mode: 'nat', ...s, bandwidth: { outbound: { average: 10, peak: 5 } } },
        400,
        ['bandwidth.outbound.peak'],
      ],
      [
        'a bad lease',
        { mode: 'nat', ...s, staticHosts: [{ mac: 'nope', ip: '10.252.250.5' }] },
        400,
        ['staticHosts[0].mac'],
      ],
      ['an unknown mode (zod)', { mode: 'vxlan', ...s }, 400, ['mode']],
      ['an unknown field (zod)', { mode: 'nat', ...s, color: 'red' }, 400, ['color']],
      [
        'several bad fields at once',
        {
          mode: 'nat',
          ...s,
          gateway: '10.9.9.1',
          dhcpEnd: '10.252.250.50',
          dhcpStart: '10.252.250.60',
          vlanId: 0,
        },
        400,
        ['gateway', 'dhcpEnd', 'vlanId'],
      ],
      [
        "a subnet overlapping the host's vmflow-default",
        { mode: 'isolated', cidr: '10.250.0.0/16' },
        400,
        ['cidr'],
      ],
      [
        'bandwidth on this host (no sfq)',
        { mode: 'nat', ...s, bandwidth: { inbound: { average: 100 } } },
        422,
        ['bandwidth'],
      ],
      ['an unknown department', { mode: 'nat', ...s, departmentId: randomUUID() }, 404, ['departmentId']],
    ])('%s (%j) → %i naming %j', async (_what, body, status, fields) => {
      const before = await counts();
      const name = `bad-${randomUUID().slice(0, 6)}`;
      const r = await h.call('POST', '/api/networks', { as: admin, body: { name, ...body } });
      expect(r.status).toBe(status);
      expect(r.headers.get('content-type')).toMatch(/application\/problem\+json/);
      const named = (r.body.errors ?? []).map((e: { field: string }) => e.field);
      for (const f of fields) expect(named).toContain(f);
      if (status === 422) expect(r.body.detail).toMatch(/'sfq' queueing discipline/);
      expect(await counts()).toEqual(before);
      expect(await stack.dataSource.getRepository(Network).exists({ where: { name } })).toBe(false);
    });

    it('a name or bridge another network holds → 409', async () => {
      const { created } = await createNetwork();
      const s2 = await nextSubnet(stack);
      const before = await counts();
      const r = await h.call('POST', '/api/networks', {
        as: admin,
        body: { name: created.body.network.name, mode: 'nat', cidr: s2.cidr },
      });
      expect(r.status).toBe(409);
      expect(r.body.errors).toEqual([expect.objectContaining({ field: 'name' })]);
      // The same subnet as an existing vmflow network: 400 cidr.
      const o = await h.call('POST', '/api/networks', {
        as: admin,
        body: { name: `o-${randomUUID().slice(0, 6)}`, mode: 'isolated', cidr: created.body.network.cidr },
      });
      expect(o.status).toBe(400);
      expect(o.body.errors[0]).toMatchObject({
        field: 'cidr',
        message: expect.stringMatching(/overlaps network/),
      });
      expect(await counts()).toEqual(before);
    });

    it('non-admins may not create (403), nothing made', async () => {
      const before = await counts();
      const r = await h.call('POST', '/api/networks', {
        as: alice,
        body: { name: 'mine', mode: 'isolated' },
      });
      expect(r.status).toBe(403);
      expect(await counts()).toEqual(before);
    });
  });

  it('creates a network: 202 with the network as it will be; sockets of its department get networks:create', async () => {
    const adminSocket = await h.socket(admin);
    const aliceSocket = await h.socket(alice);
    const bobSocket = await h.socket(bob);
    const s = await nextSubnet(stack);
    const r = await h.call('POST', '/api/networks', {
      as: admin,
      body: {
        name: `dept-a-${randomUUID().slice(0, 6)}`,
        mode: 'nat',
        cidr: s.cidr,
        dhcpStart: s.dhcpStart,
        dhcpEnd: s.dhcpEnd,
        departmentId: deptA.id,
      },
    });
    expect(r.status).toBe(202);
    made.push(r.body.network.id);
    expect(r.headers.get('location')).toBe(`/api/operations/${r.body.operation.id}`);
    expect(r.body.network).toMatchObject({
      status: 'creating',
      cidr: s.cidr,
      gateway: s.gateway,
      departmentId: deptA.id,
      bridgeName: libvirtNames.bridge(r.body.network.id),
      internalName: libvirtNames.network(r.body.network.id),
    });
    expect(r.body.operation).toMatchObject({
      type: 'create_network',
      resource: 'networks',
      resourceId: r.body.network.id,
    });
    for (const sock of [adminSocket, aliceSocket]) {
      const ev = await sock.waitFor(
        (e) => e.name === 'networks:create' && e.payload.resourceId === r.body.network.id,
        'networks:create',
      );
      expect(ev.payload.data.network).toMatchObject({ id: r.body.network.id, status: 'active' });
    }
    await aliceSocket.waitFor(
      (e) => e.name === 'networks:progress' && e.payload.resourceId === r.body.network.id,
      'progress',
    );
    expect((await op(r.body.operation.id)).status).toBe('succeeded');
    const got = await h.call('GET', `/api/networks/${r.body.network.id}`, { as: alice });
    expect(got.status).toBe(200);
    expect(got.body).toMatchObject({ status: 'active', hostName: stack.hostName });
    // A member of another department hears nothing about it.
    expect(bobSocket.events.filter((e) => e.payload?.resourceId === r.body.network.id)).toEqual([]);
    for (const sock of [adminSocket, aliceSocket, bobSocket]) sock.close();
  });

  it('scopes what callers see: shared networks and their departments (admins: all); others 404', async () => {
    const shared = await createNetwork();
    const a = await createNetwork({ departmentId: deptA.id });
    const b = await createNetwork({ departmentId: deptB.id });
    const ids = async (u: User, q = '') =>
      ((await h.call('GET', `/api/networks${q}`, { as: u })).body.items as Array<{ id: string }>).map(
        (n) => n.id,
      );
    expect(await ids(alice)).toEqual(expect.arrayContaining([shared.id, a.id]));
    expect(await ids(alice)).not.toContain(b.id);
    expect(await ids(bob)).toEqual(expect.arrayContaining([shared.id, b.id]));
    expect(await ids(bob)).not.toContain(a.id);
    expect(await ids(admin)).toEqual(expect.arrayContaining([shared.id, a.id, b.id]));
    expect(await ids(alice, '?shared=true')).not.toContain(a.id);
    expect(await ids(alice, '?shared=false')).toEqual(expect.arrayContaining([a.id]));
    expect(await ids(alice, `?department=${deptB.id}&shared=false`)).toEqual([]);
    expect((await h.call('GET', `/api/networks/${b.id}`, { as: alice })).status).toBe(404);
    expect(
      (
        await h.call('PATCH', `/api/networks/${b.id}`, {
          as: alice,
          body: { dhcpStart: null, dhcpEnd: null },
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await h.call('PATCH', `/api/networks/${a.id}`, {
          as: alice,
          body: { dhcpStart: null, dhcpEnd: null },
        })
      ).status,
    ).toBe(403);
    expect((await h.call('DELETE', `/api/networks/${shared.id}`, { as: alice })).status).toBe(403);
    expect((await h.call('DELETE', `/api/networks/${b.id}`, { as: alice })).status).toBe(404);
  });

  it('PATCH: live DHCP edits (202, visible in libvirt); a redefine under a running machine is 422 naming it', async () => {
    const n = await createNetwork();
    const lease = { mac: '52:54:00:25:52:01', ip: n.s.at(9), name: 'api' };
    const bad = await h.call('PATCH', `/api/networks/${n.id}`, {
      as: admin,
      body: { dhcpStart: n.s.at(1), dhcpEnd: n.s.at(5) },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].field).toBe('dhcpStart');
    const r = await h.call('PATCH', `/api/networks/${n.id}`, {
      as: admin,
      body: { dhcpStart: n.s.at(40), dhcpEnd: n.s.at(45), staticHosts: [lease] },
    });
    expect(r.status).toBe(202);
    expect((await op(r.body.operation.id)).status).toBe('succeeded');
    const { liveXml } = await definitionsOf(stack, n.id);
    expect(rangesOf(liveXml!)).toEqual([{ start: n.s.at(40), end: n.s.at(45) }]);
    expect(liveXml).toContain(`mac='${lease.mac}'`);
    expect((await h.call('GET', `/api/networks/${n.id}`, { as: admin })).body).toMatchObject({
      dhcpStart: n.s.at(40),
      staticHosts: [lease],
    });

    const host = await stack.dataSource.getRepository(Host).findOneByOrFail({ name: stack.hostName });
    const running = await seedMachineRow(stack.dataSource, {
      ownerId: alice.id,
      departmentId: deptA.id,
      templateId: template.id,
      hostId: host.id,
      status: 'running',
      networkName: libvirtNames.network(n.id),
    });
    const t = await nextSubnet(stack);
    const refused = await h.call('PATCH', `/api/networks/${n.id}`, {
      as: admin,
      body: { cidr: t.cidr, dhcpStart: t.dhcpStart, dhcpEnd: t.dhcpEnd, staticHosts: [] },
    });
    expect(refused.status).toBe(422);
    expect(refused.body.machines).toEqual([expect.objectContaining({ id: running.id, name: running.name })]);
    expect(refused.body.detail).toMatch(/running machines/);

    // DELETE while it is attached: 409 naming it; nothing starts.
    const before = await counts();
    const del = await h.call('DELETE', `/api/networks/${n.id}`, { as: admin });
    expect(del.status).toBe(409);
    expect(del.body.machines).toEqual([expect.objectContaining({ id: running.id, name: running.name })]);
    expect(await counts()).toEqual(before);
    await stack.dataSource.getRepository(Machine).delete({ id: running.id });

    const gone = await h.call('DELETE', `/api/networks/${n.id}`, { as: admin });
    expect(gone.status).toBe(202);
    expect((await op(gone.body.operation.id)).status).toBe('succeeded');
    expect(await networkTraces(stack, n.id)).toEqual({ ...NO_NETWORK_TRACE, row: null });
    expect((await h.call('GET', `/api/networks/${n.id}`, { as: admin })).status).toBe(404);
  });

  it('machines: created on a network (POST /api/machines networkId), moved with PUT /api/machines/:id/network', async () => {
    const a = await createNetwork({ departmentId: deptA.id });
    const b = await createNetwork();
    const other = await createNetwork({ departmentId: deptB.id });
    const bad = await h.call('POST', '/api/machines', {
      as: alice,
      body: {
        name: `vm-${randomUUID().slice(0, 6)}`,
        templateId: template.id,
        departmentId: deptA.id,
        networkId: other.id,
      },
    });
    expect(bad.status).toBe(404);
    expect(bad.body.errors[0].field).toBe('networkId');

    const r = await h.call('POST', '/api/machines', {
      as: alice,
      body: {
        name: `vm-${randomUUID().slice(0, 6)}`,
        templateId: template.id,
        departmentId: deptA.id,
        networkId: a.id,
      },
    });
    expect(r.status).toBe(202);
    machinesMade.push(r.body.machine.id);
    expect(r.body.machine.networkName).toBe(libvirtNames.network(a.id));
    expect((await op(r.body.operation.id, alice)).status).toBe('succeeded');
    const dom = await domainOf(stack, r.body.machine.id);
    const nicBefore = parseDomainXml(await dom.getXML({ inactive: true })).interfaces[0]!;
    expect(nicBefore.source).toBe(libvirtNames.network(a.id));
    const vmFilter = libvirtNames.vmFilter(r.body.machine.id);
    expect(nicBefore.filterref).toEqual(await nicFilterOn(stack, libvirtNames.network(a.id), vmFilter));

    const invisible = await h.call('PUT', `/api/machines/${r.body.machine.id}/network`, {
      as: alice,
      body: { networkId: other.id },
    });
    expect(invisible.status).toBe(404);
    const otherDept = await h.call('PUT', `/api/machines/${r.body.machine.id}/network`, {
      as: admin,
      body: { networkId: other.id },
    });
    expect(otherDept.status).toBe(422);
    expect(
      (
        await h.call('PUT', `/api/machines/${r.body.machine.id}/network`, {
          as: bob,
          body: { networkId: b.id },
        })
      ).status,
    ).toBe(404);

    const moved = await h.call('PUT', `/api/machines/${r.body.machine.id}/network`, {
      as: alice,
      body: { networkId: b.id },
    });
    expect(moved.status).toBe(202);
    expect(moved.body.operation).toMatchObject({ type: 'change_network', machineId: r.body.machine.id });
    expect((await op(moved.body.operation.id, alice)).status).toBe('succeeded');
    const nicAfter = parseDomainXml(await dom.getXML({ inactive: true })).interfaces[0]!;
    // The same NIC (MAC, model, filter) on B, its address learned from B's DHCP server now.
    expect(nicAfter).toEqual({
      ...nicBefore,
      source: libvirtNames.network(b.id),
      filterref: await nicFilterOn(stack, libvirtNames.network(b.id), vmFilter),
    });
    expect((await h.call('GET', `/api/machines/${r.body.machine.id}`, { as: alice })).body.networkName).toBe(
      libvirtNames.network(b.id),
    );
  });

  it('OpenAPI documents every network route with its schemas', async () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document is JSON read loosely
    const doc = (await h.call('GET', '/api/openapi.json')).body as any;
    for (const [p, method] of [
      ['/api/networks', 'get'],
      ['/api/networks', 'post'],
      ['/api/networks/{id}', 'get'],
      ['/api/networks/{id}', 'patch'],
      ['/api/networks/{id}', 'delete'],
      ['/api/machines/{id}/network', 'put'],
    ] as const) {
      expect({ p, method, documented: !!doc.paths[p]?.[method] }).toEqual({ p, method, documented: true });
    }
    const ref = (s: { $ref: string }) => doc.components.schemas[s.$ref.split('/').pop()!];
    const post = doc.paths['/api/networks'].post;
    const body = ref(post.requestBody.content['application/json'].schema);
    expect(body.additionalProperties).toBe(false);
    expect(body.required).toEqual(expect.arrayContaining(['name', 'mode']));
    expect(body.properties.mode.enum).toEqual(['nat', 'route', 'bridge', 'isolated']);
    expect(Object.keys(post.responses)).toEqual(
      expect.arrayContaining(['202', '400', '403', '404', '409', '422']),
    );
    expect(Object.keys(ref(post.responses['202'].content['application/json'].schema).properties)).toEqual([
      'network',
      'operation',
    ]);
    expect(
      ref(doc.paths['/api/machines'].post.requestBody.content['application/json'].schema).properties,
    ).toHaveProperty('networkId');
  });
});
