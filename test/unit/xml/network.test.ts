import {
  XmlParseError,
  buildDhcpHostXml,
  buildDhcpRangeXml,
  buildNetworkXml,
  netmaskToPrefix,
  parseNetworkXml,
  type NetworkSpec,
  type ParsedNetwork,
  type ParsedNetworkIp,
} from '../../../src/libvirt/xml';
import { expectSchemaValid, expectSpecError, virshTestDriver } from './xml-oracle';

const nat: NetworkSpec = {
  name: 'vmflow-net-1',
  uuid: '123e4567-e89b-12d3-a456-426614174000',
  mode: 'nat',
  bridgeName: 'vmfbr1',
  forwardDev: 'eth0',
  ip: {
    address: '192.168.100.1',
    prefix: 24,
    dhcp: {
      start: '192.168.100.100',
      end: '192.168.100.199',
      hosts: [
        { mac: '52:54:00:00:00:01', ip: '192.168.100.10', name: 'web-1' },
        { name: 'db.lab', ip: '192.168.100.11' },
        { mac: '52:54:00:00:00:02', ip: '192.168.100.150' },
      ],
    },
  },
  bandwidth: { inbound: { average: 10000, peak: 20000, burst: 4096 }, outbound: { average: 5000 } },
  domainName: 'lab.example',
  mtu: 1450,
};

const variants: Array<[string, NetworkSpec]> = [
  ['nat with everything', nat],
  [
    'route with an IPv6 subnet and DHCPv6 by name',
    {
      name: 'vmflow-r6',
      mode: 'route',
      ip: {
        address: 'fd00:10::1',
        prefix: 64,
        dhcp: { start: 'fd00:10::100', end: 'fd00:10::1ff', hosts: [{ name: 'v6host', ip: 'fd00:10::5' }] },
      },
    },
  ],
  [
    'nat with a netmask and no DHCP',
    { name: 'vmflow-nm', mode: 'nat', ip: { address: '10.20.0.1', netmask: '255.255.0.0' } },
  ],
  ['isolated without addresses', { name: 'vmflow-iso', mode: 'isolated' }],
  [
    'isolated with a subnet',
    {
      name: 'vmflow-iso2',
      mode: 'isolated',
      bridgeName: 'vmfiso2',
      ip: { address: '172.16.5.254', prefix: 28 },
    },
  ],
  [
    'existing host bridge',
    { name: 'vmflow-br', mode: 'bridge', bridgeName: 'br0', bandwidth: { outbound: { average: 100 } } },
  ],
  [
    'Open vSwitch bridge with a VLAN',
    { name: 'vmflow-ovs', mode: 'bridge', bridgeName: 'ovsbr0', virtualPort: 'openvswitch', vlanTag: 4094 },
  ],
];

function expected(spec: NetworkSpec): ParsedNetwork {
  const ips: ParsedNetworkIp[] = [];
  if (spec.ip) {
    const { address, prefix, netmask, dhcp } = spec.ip;
    const ip: ParsedNetworkIp = { address, prefix: prefix ?? netmaskToPrefix(netmask ?? '') ?? -1 };
    if (netmask) ip.netmask = netmask;
    if (dhcp) ip.dhcp = { start: dhcp.start, end: dhcp.end, hosts: dhcp.hosts ?? [] };
    ips.push(ip);
  }
  const { ip: _ip, ...rest } = spec;
  return { ...rest, ips, ...(ips[0] ? { ip: ips[0] } : {}) };
}

describe('buildNetworkXml / parseNetworkXml', () => {
  it.each(variants)('round-trips %s', (_, spec) => {
    expect(parseNetworkXml(buildNetworkXml(spec))).toEqual(expected(spec));
  });

  it.each(variants)('%s validates against libvirt network.rng', (_, spec) => {
    expectSchemaValid(buildNetworkXml(spec), 'network');
  });

  it.each(variants)("%s is accepted by libvirt's own parser, and its output parses back", (_, spec) => {
    const dumped = virshTestDriver([`net-define {0}`, `net-dumpxml ${spec.name}`], [buildNetworkXml(spec)]);
    const { uuid: _uuid, bridgeName: _bridge, ...want } = expected(spec);
    expect(parseNetworkXml(dumped)).toMatchObject(want);
  });

  it('emits the documented forward/bridge/ip shapes', () => {
    expect(buildNetworkXml(nat)).toContain('<forward mode="nat" dev="eth0"/>');
    expect(buildNetworkXml(nat)).toContain('<bridge name="vmfbr1" stp="on" delay="0"/>');
    expect(buildNetworkXml(variants[1][1])).toContain('<ip family="ipv6" address="fd00:10::1" prefix="64">');
    const bridged = buildNetworkXml(variants[5][1]);
    expect(bridged).toContain('<forward mode="bridge"/>');
    expect(bridged).toContain('<bridge name="br0"/>');
    expect(bridged).not.toContain('<ip');
    expect(buildNetworkXml(variants[3][1])).not.toContain('<forward');
  });

  it('reads the isolated mode, nat default mode and libvirt-filled bridge names', () => {
    const xml = `<network><name>n</name><forward/><bridge name='virbr3' stp='on' delay='0'/><mac address='52:54:00:1:2:3'/>
      <ip address='10.0.0.1' netmask='255.255.255.0'><dhcp><range start='10.0.0.2' end='10.0.0.9'><lease expiry='1' unit='hours'/></range></dhcp></ip>
      <ip family='ipv6' address='fd00::1' prefix='64'/></network>`;
    expect(parseNetworkXml(xml)).toMatchObject({
      mode: 'nat',
      bridgeName: 'virbr3',
      ip: {
        address: '10.0.0.1',
        prefix: 24,
        netmask: '255.255.255.0',
        dhcp: { start: '10.0.0.2', end: '10.0.0.9', hosts: [] },
      },
    });
    expect(parseNetworkXml(xml).ips).toHaveLength(2);
    expect(parseNetworkXml('<network><name>n</name></network>').mode).toBe('isolated');
  });

  it.each([
    ['malformed', '<network><name>n</network>'],
    ['wrong root', '<domain/>'],
    ['no name', '<network/>'],
  ])('throws XmlParseError for %s XML', (_, xml) =>
    expect(() => parseNetworkXml(xml)).toThrow(XmlParseError),
  );
});

describe('buildNetworkXml rejects invalid specs', () => {
  const withDhcp = (
    dhcp: Partial<NonNullable<NonNullable<NetworkSpec['ip']>['dhcp']>>,
  ): Partial<NetworkSpec> => ({
    ip: {
      address: '192.168.1.1',
      prefix: 24,
      dhcp: { start: '192.168.1.100', end: '192.168.1.200', ...dhcp },
    },
  });
  const bridged: Partial<NetworkSpec> = {
    mode: 'bridge',
    bridgeName: 'br0',
    ip: undefined,
    forwardDev: undefined,
    domainName: undefined,
  };
  const cases: Array<[string, Partial<NetworkSpec>, string, RegExp | null]> = [
    ['name with markup', { name: '<net>' }, 'name', null],
    ['bad UUID', { uuid: '123' }, 'uuid', null],
    ['unknown mode', { mode: 'open' as 'nat' }, 'mode', null],
    ['bridge name of 16 characters', { bridgeName: 'b'.repeat(16) }, 'bridgeName', /15/],
    ['bridge name with a space', { bridgeName: 'br 0' }, 'bridgeName', null],
    ['bridge mode without a bridge name', { ...bridged, bridgeName: undefined }, 'bridgeName', /required/],
    ['bridge mode with an IP', { ...bridged, ip: nat.ip }, 'ip', /bridge/],
    ['nat without an IP', { ip: undefined }, 'ip', /required/],
    ['nat on IPv6', { ip: { address: 'fd00::1', prefix: 64 } }, 'ip.address', /IPv4/],
    ['forwardDev on an isolated network', { mode: 'isolated', forwardDev: 'eth0' }, 'forwardDev', null],
    ['bad address', { ip: { address: '192.168.1.300', prefix: 24 } }, 'ip.address', null],
    [
      'prefix and netmask',
      { ip: { address: '10.0.0.1', prefix: 24, netmask: '255.255.255.0' } },
      'ip.netmask',
      /not both/,
    ],
    ['neither prefix nor netmask', { ip: { address: '10.0.0.1' } }, 'ip.prefix', /required/],
    [
      'non-contiguous netmask',
      { ip: { address: '10.0.0.1', netmask: '255.0.255.0' } },
      'ip.netmask',
      /contiguous/,
    ],
    ['prefix 31', { ip: { address: '10.0.0.1', prefix: 31 } }, 'ip.prefix', null],
    ['prefix 33', { ip: { address: '10.0.0.1', prefix: 33 } }, 'ip.prefix', null],
    [
      'network address as gateway',
      { ip: { address: '10.0.0.0', prefix: 24 } },
      'ip.address',
      /network or broadcast/,
    ],
    [
      'broadcast address as gateway',
      { ip: { address: '10.0.0.255', prefix: 24 } },
      'ip.address',
      /network or broadcast/,
    ],
    [
      'DHCP range outside the subnet',
      withDhcp({ start: '192.168.2.10', end: '192.168.2.20' }),
      'ip.dhcp.start',
      /outside/,
    ],
    ['DHCP range end outside the subnet', withDhcp({ end: '192.168.2.20' }), 'ip.dhcp.end', /outside/],
    [
      'reversed DHCP range',
      withDhcp({ start: '192.168.1.200', end: '192.168.1.100' }),
      'ip.dhcp.end',
      /reversed/,
    ],
    [
      'DHCP range with the gateway',
      withDhcp({ start: '192.168.1.1', end: '192.168.1.50' }),
      'ip.dhcp',
      /gateway/,
    ],
    [
      'DHCP range spanning the gateway',
      withDhcp({ start: '192.168.1.0', end: '192.168.1.50' }),
      'ip.dhcp.start',
      /network address/,
    ],
    ['DHCP range up to broadcast', withDhcp({ end: '192.168.1.255' }), 'ip.dhcp.end', /broadcast/],
    ['DHCP range mixing families', withDhcp({ end: 'fd00::1' }), 'ip.dhcp.end', /family/],
    [
      'DHCP host outside the subnet',
      withDhcp({ hosts: [{ mac: '52:54:00:00:00:01', ip: '10.9.9.9' }] }),
      'ip.dhcp.hosts[0].ip',
      /outside/,
    ],
    [
      'DHCP host on the gateway',
      withDhcp({ hosts: [{ mac: '52:54:00:00:00:01', ip: '192.168.1.1' }] }),
      'ip.dhcp.hosts[0].ip',
      /gateway/,
    ],
    [
      'DHCP host without mac or name',
      withDhcp({ hosts: [{ ip: '192.168.1.9' }] }),
      'ip.dhcp.hosts[0]',
      /mac or a name/,
    ],
    [
      'DHCP host with a bad MAC',
      withDhcp({ hosts: [{ mac: 'xx', ip: '192.168.1.9' }] }),
      'ip.dhcp.hosts[0].mac',
      null,
    ],
    [
      'DHCP host name injecting dnsmasq options',
      withDhcp({ hosts: [{ name: 'a,set:evil', ip: '192.168.1.9' }] }),
      'ip.dhcp.hosts[0].name',
      /DNS host name/,
    ],
    [
      'DHCP host name with markup',
      withDhcp({ hosts: [{ name: '<b>&"\'', ip: '192.168.1.9' }] }),
      'ip.dhcp.hosts[0].name',
      null,
    ],
    [
      'DHCP host name with a newline',
      withDhcp({ hosts: [{ name: 'a\ndhcp-script=/x', ip: '192.168.1.9' }] }),
      'ip.dhcp.hosts[0].name',
      null,
    ],
    [
      'duplicate DHCP host IP',
      withDhcp({
        hosts: [
          { name: 'a', ip: '192.168.1.9' },
          { name: 'b', ip: '192.168.1.9' },
        ],
      }),
      'ip.dhcp.hosts[1].ip',
      /hosts\[0\]/,
    ],
    [
      'duplicate DHCP host MAC (any case)',
      withDhcp({
        hosts: [
          { mac: '52:54:00:00:00:0a', ip: '192.168.1.9' },
          { mac: '52:54:00:00:00:0A', ip: '192.168.1.8' },
        ],
      }),
      'ip.dhcp.hosts[1].mac',
      null,
    ],
    [
      'IPv6 DHCP host by MAC',
      {
        mode: 'route',
        ip: {
          address: 'fd00::1',
          prefix: 64,
          dhcp: { start: 'fd00::10', end: 'fd00::20', hosts: [{ mac: '52:54:00:00:00:01', ip: 'fd00::5' }] },
        },
      },
      'ip.dhcp.hosts[0].mac',
      /DUID/,
    ],
    ['VLAN 0', { ...bridged, virtualPort: 'openvswitch', vlanTag: 0 }, 'vlanTag', null],
    ['VLAN 4095', { ...bridged, virtualPort: 'openvswitch', vlanTag: 4095 }, 'vlanTag', null],
    ['VLAN on a NAT network', { vlanTag: 10 }, 'vlanTag', /Open vSwitch/],
    ['VLAN on a plain bridge', { ...bridged, vlanTag: 10 }, 'vlanTag', /Open vSwitch/],
    ['virtualport on NAT', { virtualPort: 'openvswitch' }, 'virtualPort', null],
    [
      'bandwidth floor on a network',
      { bandwidth: { inbound: { average: 10, floor: 1 } } },
      'bandwidth.inbound.floor',
      null,
    ],
    [
      'bandwidth with a negative rate',
      { bandwidth: { inbound: { average: -1 } } },
      'bandwidth.inbound.average',
      null,
    ],
    [
      'bandwidth with a fractional burst',
      { bandwidth: { inbound: { average: 10, burst: 1.5 } } },
      'bandwidth.inbound.burst',
      null,
    ],
    [
      'bandwidth with a typo',
      { bandwidth: { inbound: { average: 10, peek: 20 } as never } },
      'bandwidth.inbound.peek',
      null,
    ],
    ['domain name with a space', { domainName: 'lab example' }, 'domainName', null],
    ['domain name in bridge mode', { ...bridged, domainName: 'lab' }, 'domainName', null],
    ['MTU 0', { mtu: 0 }, 'mtu', null],
    ['MTU 65536', { mtu: 65536 }, 'mtu', null],
  ];

  it.each(cases)('%s', (_, change, field, pattern) => {
    expectSpecError(() => buildNetworkXml({ ...nat, ...change }), field, pattern ?? undefined);
  });
});

describe('DHCP fragments for virNetworkUpdate', () => {
  it('builds a host element, checked against the subnet when given', () => {
    expect(
      buildDhcpHostXml({ mac: '52:54:00:00:00:AA', ip: '192.168.100.20', name: 'h1' }, '192.168.100.1/24'),
    ).toBe('<host mac="52:54:00:00:00:aa" name="h1" ip="192.168.100.20"/>\n');
    expect(buildDhcpHostXml({ name: 'v6', ip: 'fd00::20' })).toBe('<host name="v6" ip="fd00::20"/>\n');
    expectSpecError(
      () => buildDhcpHostXml({ mac: '52:54:00:00:00:aa', ip: '10.0.0.5' }, '192.168.100.1/24'),
      'ip',
      /outside/,
    );
    expectSpecError(
      () => buildDhcpHostXml({ mac: '52:54:00:00:00:aa', ip: '192.168.100.1' }, '192.168.100.1/24'),
      'ip',
      /gateway/,
    );
    expectSpecError(() => buildDhcpHostXml({ ip: '192.168.100.5' }), 'host', /mac or a name/);
    expectSpecError(
      () => buildDhcpHostXml({ mac: '52:54:00:00:00:aa', ip: '192.168.100.5' }, '192.168.100.1/40'),
      'within',
    );
  });

  it('builds a range element, ordered and inside the subnet', () => {
    expect(buildDhcpRangeXml({ start: '10.0.0.10', end: '10.0.0.20' }, '10.0.0.1/24')).toBe(
      '<range start="10.0.0.10" end="10.0.0.20"/>\n',
    );
    expectSpecError(() => buildDhcpRangeXml({ start: '10.0.0.20', end: '10.0.0.10' }), 'end', /reversed/);
    expectSpecError(
      () => buildDhcpRangeXml({ start: '10.0.0.1', end: '10.0.0.10' }, '10.0.0.1/24'),
      'range',
      /gateway/,
    );
    expectSpecError(
      () => buildDhcpRangeXml({ start: '10.0.1.1', end: '10.0.1.10' }, '10.0.0.1/24'),
      'start',
      /outside/,
    );
  });

  it('fragments are valid inside a network document', () => {
    const host = buildDhcpHostXml({ mac: '52:54:00:00:00:bb', ip: '192.168.100.30', name: 'extra' });
    const range = buildDhcpRangeXml({ start: '192.168.100.40', end: '192.168.100.50' });
    const doc = buildNetworkXml(nat).replace('<dhcp>', `<dhcp>\n${range}${host}`);
    expectSchemaValid(doc, 'network');
  });
});
