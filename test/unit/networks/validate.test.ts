/**
 * Network validation (src/networks/validate.ts): each kind of bad network is refused with the request's
 * field and a reason a caller can act on; every problem of a request is reported at once; conflicts
 * with other networks; QoS refusals; the plan of an update; the spec of a design.
 */
import { randomUUID } from 'node:crypto';
import {
  designNetwork,
  findConflicts,
  networkSpecOf,
  planNetworkUpdate,
  qosProblem,
  type CurrentNetwork,
  type NetworkRequest,
} from '../../../src/networks/validate';
import { libvirtNames } from '../../../src/workflows/shared';

const nat: NetworkRequest = {
  name: 'lab',
  mode: 'nat',
  cidr: '10.20.0.0/24',
  dhcpStart: '10.20.0.100',
  dhcpEnd: '10.20.0.200',
};

function problemsOf(req: Partial<NetworkRequest>) {
  const r = designNetwork({ ...nat, ...req } as NetworkRequest);
  if (r.ok) throw new Error(`expected problems, got a design: ${JSON.stringify(r.design)}`);
  return r.problems;
}

describe('designNetwork: good networks', () => {
  it('fills in the gateway (first host address) and normalises the design', () => {
    const r = designNetwork({
      ...nat,
      staticHosts: [{ mac: '52:54:00:AA:00:01', ip: '10.20.0.10', name: 'web' }],
    });
    expect(r).toEqual({
      ok: true,
      design: {
        mode: 'nat',
        cidr: '10.20.0.0/24',
        gateway: '10.20.0.1',
        dhcpStart: '10.20.0.100',
        dhcpEnd: '10.20.0.200',
        staticHosts: [{ mac: '52:54:00:aa:00:01', ip: '10.20.0.10', name: 'web' }],
        bridgeName: null,
        forwardDev: null,
        vlanId: null,
        bandwidth: null,
      },
    });
  });

  it.each<[string, NetworkRequest]>([
    [
      'route with a gateway of its own',
      { name: 'r', mode: 'route', cidr: '10.21.0.0/16', gateway: '10.21.255.254' },
    ],
    ['isolated without a subnet', { name: 'i', mode: 'isolated' }],
    [
      'isolated with DHCP',
      { name: 'i', mode: 'isolated', cidr: '10.22.0.0/28', dhcpStart: '10.22.0.2', dhcpEnd: '10.22.0.14' },
    ],
    ['bridge on a host bridge', { name: 'b', mode: 'bridge', bridgeName: 'br0' }],
    ['bridge with a VLAN (Open vSwitch)', { name: 'b', mode: 'bridge', bridgeName: 'ovsbr0', vlanId: 4094 }],
    [
      'nat with an uplink and bandwidth',
      {
        ...nat,
        forwardDev: 'eth0',
        bandwidth: { inbound: { average: 1000, peak: 2000, burst: 512 }, outbound: { average: 500 } },
      },
    ],
  ])('accepts %s', (_what, req) => {
    expect(designNetwork(req)).toMatchObject({ ok: true });
  });
});

describe('designNetwork: each kind of bad network names its field', () => {
  it.each<[string, Partial<NetworkRequest>, string, RegExp]>([
    ['no name', { name: '' }, 'name', /must not be empty/],
    ['a blank name', { name: '   ' }, 'name', /blank/],
    ['a name with a control character', { name: 'a\u0007b' }, 'name', /control/],
    ['a name too long', { name: 'x'.repeat(65) }, 'name', /at most 64/],
    ['an unknown mode', { mode: 'vxlan' as never }, 'mode', /one of 'nat', 'route', 'bridge', 'isolated'/],
    ['a malformed CIDR', { cidr: '10.20.0/24' }, 'cidr', /CIDR form/],
    ['a prefix too long', { cidr: '10.20.0.0/33' }, 'cidr', /at most 32/],
    [
      'a prefix that leaves no hosts',
      { cidr: '10.20.0.0/31', dhcpStart: undefined, dhcpEnd: undefined },
      'cidr',
      /room for hosts/,
    ],
    ['host bits set', { cidr: '10.20.0.1/24' }, 'cidr', /network address: did you mean 10\.20\.0\.0\/24/],
    ['an IPv6 subnet', { cidr: 'fd00::/64', dhcpStart: undefined, dhcpEnd: undefined }, 'cidr', /IPv4/],
    [
      'nat without a subnet',
      { cidr: undefined, dhcpStart: undefined, dhcpEnd: undefined },
      'cidr',
      /required in 'nat' mode/,
    ],
    [
      'route without a subnet',
      { mode: 'route', cidr: undefined, dhcpStart: undefined, dhcpEnd: undefined },
      'cidr',
      /required in 'route' mode/,
    ],
    [
      'a gateway outside the subnet',
      { gateway: '10.21.0.1' },
      'gateway',
      /outside the subnet 10\.20\.0\.0\/24/,
    ],
    ['the network address as gateway', { gateway: '10.20.0.0' }, 'gateway', /not its network or broadcast/],
    [
      'the broadcast address as gateway',
      { gateway: '10.20.0.255' },
      'gateway',
      /not its network or broadcast/,
    ],
    ['a gateway that is no address', { gateway: 'ten' }, 'gateway', /IP address/],
    [
      'a gateway without a subnet',
      { mode: 'isolated', cidr: undefined, gateway: '10.20.0.1', dhcpStart: undefined, dhcpEnd: undefined },
      'gateway',
      /give cidr/,
    ],
    [
      'a range start outside the subnet',
      { dhcpStart: '10.19.0.100' },
      'dhcpStart',
      /outside the network's subnet/,
    ],
    ['a range end outside the subnet', { dhcpEnd: '10.21.0.200' }, 'dhcpEnd', /outside the network's subnet/],
    ['a reversed range', { dhcpStart: '10.20.0.200', dhcpEnd: '10.20.0.100' }, 'dhcpEnd', /reversed/],
    [
      'a range covering the gateway',
      { dhcpStart: '10.20.0.1', dhcpEnd: '10.20.0.50' },
      'dhcpStart',
      /gateway/,
    ],
    ['a range covering a chosen gateway', { gateway: '10.20.0.150' }, 'dhcpStart', /gateway/],
    ['a range on the broadcast address', { dhcpEnd: '10.20.0.255' }, 'dhcpEnd', /broadcast/],
    ['half a range', { dhcpEnd: undefined }, 'dhcpEnd', /required with dhcpStart/],
    ['a range without a subnet', { mode: 'isolated', cidr: undefined }, 'dhcpStart', /give cidr/],
    [
      'a lease without DHCP',
      {
        dhcpStart: undefined,
        dhcpEnd: undefined,
        staticHosts: [{ mac: '52:54:00:00:00:01', ip: '10.20.0.5' }],
      },
      'staticHosts',
      /DHCP/,
    ],
    [
      'a lease outside the subnet',
      { staticHosts: [{ mac: '52:54:00:00:00:01', ip: '10.30.0.5' }] },
      'staticHosts[0].ip',
      /outside/,
    ],
    [
      'a lease on the gateway',
      { staticHosts: [{ mac: '52:54:00:00:00:01', ip: '10.20.0.1' }] },
      'staticHosts[0].ip',
      /gateway/,
    ],
    [
      'a lease with a bad MAC',
      { staticHosts: [{ mac: '52:54:00:00:00', ip: '10.20.0.5' }] },
      'staticHosts[0].mac',
      /MAC address/,
    ],
    [
      'a lease with a multicast MAC',
      { staticHosts: [{ mac: '01:00:5e:00:00:01', ip: '10.20.0.5' }] },
      'staticHosts[0].mac',
      /unicast/,
    ],
    [
      'a lease without a MAC',
      { staticHosts: [{ ip: '10.20.0.5' } as never] },
      'staticHosts[0].mac',
      /required/,
    ],
    [
      'a lease with a host name that injects',
      { staticHosts: [{ mac: '52:54:00:00:00:01', ip: '10.20.0.5', name: 'a,b' }] },
      'staticHosts[0].name',
      /DNS host name/,
    ],
    [
      'two leases for one MAC',
      {
        staticHosts: [
          { mac: '52:54:00:00:00:01', ip: '10.20.0.5' },
          { mac: '52:54:00:00:00:01', ip: '10.20.0.6' },
        ],
      },
      'staticHosts[1].mac',
      /already used by staticHosts\[0\]/,
    ],
    [
      'bridge mode without a bridge',
      { mode: 'bridge', cidr: undefined, dhcpStart: undefined, dhcpEnd: undefined },
      'bridgeName',
      /required in 'bridge' mode/,
    ],
    [
      'bridge mode with a subnet',
      { mode: 'bridge', bridgeName: 'br0', dhcpStart: undefined, dhcpEnd: undefined },
      'cidr',
      /omitted in 'bridge' mode/,
    ],
    [
      'a bridge name over 15 characters',
      {
        mode: 'bridge',
        bridgeName: 'bridge-0123456789',
        cidr: undefined,
        dhcpStart: undefined,
        dhcpEnd: undefined,
      },
      'bridgeName',
      /15 characters/,
    ],
    [
      'a bridge name with a slash',
      { mode: 'bridge', bridgeName: 'br/0', cidr: undefined, dhcpStart: undefined, dhcpEnd: undefined },
      'bridgeName',
      /A-Z a-z 0-9/,
    ],
    [
      "one of vmflow's bridge names",
      {
        mode: 'bridge',
        bridgeName: 'vfbr0123456789',
        cidr: undefined,
        dhcpStart: undefined,
        dhcpEnd: undefined,
      },
      'bridgeName',
      /vmflow's own/,
    ],
    ['a bridge name in nat mode', { bridgeName: 'br0' }, 'bridgeName', /chosen by vmflow/],
    [
      'VLAN 0',
      {
        mode: 'bridge',
        bridgeName: 'br0',
        vlanId: 0,
        cidr: undefined,
        dhcpStart: undefined,
        dhcpEnd: undefined,
      },
      'vlanId',
      /between 1 and 4094/,
    ],
    [
      'VLAN 4095',
      {
        mode: 'bridge',
        bridgeName: 'br0',
        vlanId: 4095,
        cidr: undefined,
        dhcpStart: undefined,
        dhcpEnd: undefined,
      },
      'vlanId',
      /between 1 and 4094/,
    ],
    ['a VLAN on a nat network', { vlanId: 10 }, 'vlanId', /Open vSwitch/],
    [
      'an uplink in isolated mode',
      { mode: 'isolated', forwardDev: 'eth0' },
      'forwardDev',
      /only used in 'nat' and 'route'/,
    ],
    ['bandwidth with no direction', { bandwidth: {} }, 'bandwidth', /inbound and\/or outbound/],
    [
      'a zero average',
      { bandwidth: { inbound: { average: 0 } } },
      'bandwidth.inbound.average',
      /between 1 and 4294967295/,
    ],
    [
      'a fractional rate',
      { bandwidth: { outbound: { average: 1.5 } } },
      'bandwidth.outbound.average',
      /integer/,
    ],
    [
      'a rate out of range',
      { bandwidth: { inbound: { average: 4294967296 } } },
      'bandwidth.inbound.average',
      /4294967295/,
    ],
    [
      'a peak below the average',
      { bandwidth: { inbound: { average: 100, peak: 50 } } },
      'bandwidth.inbound.peak',
      /at least the average/,
    ],
    [
      'a negative burst',
      { bandwidth: { outbound: { average: 100, burst: -1 } } },
      'bandwidth.outbound.burst',
      /between 1/,
    ],
    [
      'a floor on a network',
      { bandwidth: { inbound: { average: 100, floor: 10 } as never } },
      'bandwidth.inbound.floor',
      /interfaces of type network/,
    ],
  ])('refuses %s (%s)', (_what, req, field, reason) => {
    const problems = problemsOf(req);
    expect(problems.map((p) => p.field)).toContain(field);
    const p = problems.find((x) => x.field === field)!;
    expect(p.message).toMatch(reason);
    expect(p.kind).toBe('invalid');
  });

  it('reports every bad field of a request at once, each once', () => {
    const problems = problemsOf({
      name: '',
      gateway: '10.99.0.1',
      dhcpStart: '10.20.0.200',
      dhcpEnd: '10.20.0.100',
      vlanId: 9999,
      bandwidth: { inbound: { average: 0 } },
      staticHosts: [{ mac: 'zz', ip: '10.20.0.5' }],
    });
    expect(problems.map((p) => p.field).sort()).toEqual(
      ['bandwidth.inbound.average', 'dhcpEnd', 'gateway', 'name', 'staticHosts[0].mac', 'vlanId'].sort(),
    );
    expect(new Set(problems.map((p) => p.field)).size).toBe(problems.length);
  });
});

describe('findConflicts', () => {
  const others = [
    { label: 'libvirt network vmflow-default', cidrs: ['10.250.0.0/24'], bridgeName: 'vmflowbr0' },
    { label: 'network "lab"', cidrs: ['10.20.0.0/24'], bridgeName: 'vfbr0123456789' },
  ];
  it.each([
    ['the same subnet', '10.250.0.0/24', /overlaps libvirt network vmflow-default \(10\.250\.0\.0\/24\)/],
    ['a subnet containing another', '10.0.0.0/8', /overlaps libvirt network vmflow-default/],
    ['a subnet inside another', '10.20.0.128/25', /overlaps network "lab" \(10\.20\.0\.0\/24\)/],
  ])('refuses %s (field cidr)', (_what, cidr, reason) => {
    const [p] = findConflicts({ cidr, bridgeName: null }, others);
    expect(p).toMatchObject({ field: 'cidr', kind: 'invalid' });
    expect(p!.message).toMatch(reason);
  });
  it('accepts an adjacent subnet', () => {
    expect(findConflicts({ cidr: '10.250.1.0/24', bridgeName: 'vfbrnew' }, others)).toEqual([]);
  });
  it("refuses another network's bridge (taken)", () => {
    expect(findConflicts({ cidr: null, bridgeName: 'vmflowbr0' }, others)).toEqual([
      {
        field: 'bridgeName',
        kind: 'taken',
        message: 'bridge vmflowbr0 is already used by libvirt network vmflow-default',
      },
    ]);
  });
});

describe('qosProblem', () => {
  const bw = { inbound: { average: 100 } };
  it('nothing to say without bandwidth, or on a host with QoS', () => {
    expect(qosProblem(null, { qos: false, qosReason: 'no sfq' })).toBeNull();
    expect(qosProblem(bw, { qos: true })).toBeNull();
  });
  it('refuses bandwidth on a host without QoS, with the probed reason', () => {
    expect(
      qosProblem(bw, { qos: false, qosReason: "the host kernel has no 'sfq' queueing discipline" }),
    ).toEqual({
      field: 'bandwidth',
      kind: 'unsupported',
      message:
        "bandwidth limits cannot be applied on this host: the host kernel has no 'sfq' queueing discipline",
    });
  });
  it('refuses bandwidth on a host not probed yet', () => {
    expect(qosProblem(bw, null)?.message).toMatch(/not been probed/);
  });
});

describe('planNetworkUpdate', () => {
  const designed = designNetwork({
    ...nat,
    staticHosts: [{ mac: '52:54:00:00:00:01', ip: '10.20.0.10', name: 'a' }],
  });
  if (!designed.ok) throw new Error('fixture');
  const current: CurrentNetwork = { ...designed.design, name: 'lab' };

  it('a new range and leases: live edits only', () => {
    const r = planNetworkUpdate(current, {
      dhcpStart: '10.20.0.50',
      dhcpEnd: '10.20.0.60',
      staticHosts: [
        { mac: '52:54:00:00:00:01', ip: '10.20.0.11', name: 'a' },
        { mac: '52:54:00:00:00:02', ip: '10.20.0.12' },
      ],
    });
    expect(r).toMatchObject({
      ok: true,
      plan: {
        redefine: [],
        range: {
          from: { start: '10.20.0.100', end: '10.20.0.200' },
          to: { start: '10.20.0.50', end: '10.20.0.60' },
        },
        removeHosts: [{ mac: '52:54:00:00:00:01', ip: '10.20.0.10', name: 'a' }],
        addHosts: [
          { mac: '52:54:00:00:00:01', ip: '10.20.0.11', name: 'a' },
          { mac: '52:54:00:00:00:02', ip: '10.20.0.12' },
        ],
      },
    });
  });

  it('removing the range needs the leases gone too', () => {
    const r = planNetworkUpdate(current, { dhcpStart: null, dhcpEnd: null });
    expect(r).toMatchObject({ ok: false, problems: [{ field: 'staticHosts' }] });
    const ok = planNetworkUpdate(current, { dhcpStart: null, dhcpEnd: null, staticHosts: [] });
    expect(ok).toMatchObject({
      ok: true,
      plan: { range: { to: null }, removeHosts: [{ ip: '10.20.0.10' }] },
    });
  });

  it('a new subnet: redefine, gateway defaults to its first host, range and leases must follow', () => {
    expect(planNetworkUpdate(current, { cidr: '10.30.0.0/24' })).toMatchObject({
      ok: false,
      problems: [{ field: 'dhcpStart' }, { field: 'staticHosts[0].ip' }],
    });
    const r = planNetworkUpdate(current, {
      cidr: '10.30.0.0/24',
      dhcpStart: '10.30.0.100',
      dhcpEnd: '10.30.0.200',
      staticHosts: [],
    });
    expect(r).toMatchObject({
      ok: true,
      plan: { redefine: ['subnet', 'gateway'], next: { gateway: '10.30.0.1' } },
    });
  });

  it('bandwidth: redefine; a half range, a subnet on a bridge network: refused', () => {
    expect(planNetworkUpdate(current, { bandwidth: { outbound: { average: 10 } } })).toMatchObject({
      ok: true,
      plan: { redefine: ['bandwidth'] },
    });
    expect(planNetworkUpdate(current, { dhcpStart: '10.20.0.50' })).toMatchObject({
      ok: false,
      problems: [{ field: 'dhcpEnd' }],
    });
    const bridge: CurrentNetwork = {
      ...current,
      mode: 'bridge',
      cidr: null,
      gateway: null,
      dhcpStart: null,
      dhcpEnd: null,
      staticHosts: null,
      bridgeName: 'br0',
    };
    expect(planNetworkUpdate(bridge, { cidr: '10.1.0.0/24' })).toMatchObject({
      ok: false,
      problems: [{ field: 'cidr' }],
    });
  });
});

describe('networkSpecOf', () => {
  it('names the network by id, uses the id as UUID and the generated bridge', () => {
    const id = randomUUID();
    const designed = designNetwork({ ...nat, bandwidth: { inbound: { average: 100 } } });
    if (!designed.ok) throw new Error('fixture');
    const spec = networkSpecOf(designed.design, {
      networkId: id,
      internalName: libvirtNames.network(id),
      bridgeName: libvirtNames.bridge(id),
    });
    expect(spec).toEqual({
      name: `vmflow-net-${id}`,
      uuid: id,
      mode: 'nat',
      bridgeName: libvirtNames.bridge(id),
      ip: { address: '10.20.0.1', prefix: 24, dhcp: { start: '10.20.0.100', end: '10.20.0.200' } },
      bandwidth: { inbound: { average: 100 } },
    });
    expect(libvirtNames.bridge(id).length).toBeLessThanOrEqual(15);
  });
});
