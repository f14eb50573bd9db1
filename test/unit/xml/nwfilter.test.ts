import {
  XmlParseError,
  buildNWFilterBindingXml,
  buildNWFilterXml,
  checkFilterRule,
  parseNWFilterBindingXml,
  parseNWFilterXml,
  validateFilterRule,
  type FilterRule,
  type FilterSpec,
  type NWFilterBindingSpec,
  type ParsedFilter,
} from '../../../src/libvirt/xml';
import { expectSchemaValid, expectSpecError, schemaValidate } from './xml-oracle';

const UUID = '123e4567-e89b-12d3-a456-426614174000';

const rules: FilterRule[] = [
  {
    action: 'accept',
    direction: 'in',
    protocol: 'tcp',
    priority: 100,
    srcIpAddr: '10.0.0.0',
    srcIpMask: 8,
    dstPortStart: 22,
    dstPortEnd: 23,
    state: ['NEW', 'ESTABLISHED'],
    comment: 'ssh from <lab> & "ops" \'team\' ]]>',
  },
  {
    action: 'accept',
    direction: 'out',
    protocol: 'udp',
    dstIpAddr: '$DNS',
    dstPortStart: 53,
    srcPortStart: 1024,
    srcPortEnd: 65535,
  },
  {
    action: 'drop',
    direction: 'inout',
    protocol: 'all',
    statematch: false,
    srcIpFrom: '10.0.0.10',
    srcIpTo: '10.0.0.20',
    priority: -1000,
  },
  {
    action: 'accept',
    direction: 'in',
    protocol: 'icmp',
    icmpType: 8,
    icmpCode: 0,
    dstIpFrom: '192.168.0.1',
    dstIpTo: '192.168.0.1',
  },
  {
    action: 'accept',
    direction: 'in',
    protocol: 'tcp-ipv6',
    dstIpAddr: 'fd00::1',
    dstIpMask: 64,
    dstPortStart: 443,
    priority: 1000,
  },
  {
    action: 'accept',
    direction: 'out',
    protocol: 'udp-ipv6',
    srcIpFrom: 'fd00::1',
    srcIpTo: 'fd00::ff',
    srcPortStart: 546,
    srcPortEnd: 547,
  },
  { action: 'accept', direction: 'in', protocol: 'icmpv6', icmpType: 128 },
  { action: 'reject', direction: 'in', protocol: 'all-ipv6', srcIpAddr: '$IPV6[@1]' },
  {
    action: 'return',
    direction: 'out',
    protocol: 'mac',
    srcMacAddr: '$MAC',
    dstMacAddr: 'ff:ff:ff:ff:ff:ff',
  },
  { action: 'continue', direction: 'out', protocol: 'arp', srcMacAddr: '52:54:00:00:00:01' },
  {
    action: 'accept',
    direction: 'out',
    protocol: 'ip',
    srcIpAddr: '$IP',
    ipProtocol: 'udp',
    dstPortStart: 67,
    dstPortEnd: 68,
  },
  {
    action: 'drop',
    direction: 'in',
    protocol: 'ipv6',
    dstMacAddr: '33:33:00:00:00:01',
    ipProtocol: 'icmpv6',
  },
  { action: 'drop', direction: 'in', protocol: 'udp', state: ['NONE'], comment: 'no state' },
];

const variants: Array<[string, FilterSpec]> = [
  [
    'a VM filter referencing its department',
    { name: 'vmflow-vm-1', chain: 'root', filterrefs: [{ filter: 'vmflow-dept-1' }] },
  ],
  [
    'a department filter with every rule kind',
    {
      name: 'vmflow-dept-1',
      uuid: UUID,
      chain: 'root',
      priority: -500,
      filterrefs: [
        { filter: 'clean-traffic', parameters: { IP: ['10.0.0.1', '10.0.0.2'], CTRL_IP_LEARNING: 'none' } },
        { filter: 'no-other-l2-traffic' },
      ],
      rules,
    },
  ],
  ['a user ipv4 chain', { name: '_web', chain: 'ipv4-web', rules: [rules[0]] }],
  ['a mac chain without rules', { name: 'm', chain: 'mac' }],
  ['no chain (defaults to root)', { name: 'plain', rules: [rules[1]] }],
];

/** parseNWFilterXml's view of a built spec: chain defaulted, statematch true left implicit. */
function expected(spec: FilterSpec): ParsedFilter {
  const out: ParsedFilter = {
    name: spec.name,
    chain: spec.chain ?? 'root',
    filterrefs: spec.filterrefs ?? [],
    rules: (spec.rules ?? []).map((r) => {
      const { statematch, ...rest } = r;
      return statematch === false ? { ...rest, statematch } : rest;
    }),
  };
  if (spec.uuid) out.uuid = spec.uuid;
  if (spec.priority !== undefined) out.priority = spec.priority;
  return out;
}

describe('buildNWFilterXml / parseNWFilterXml', () => {
  it.each(variants)('round-trips %s', (_, spec) => {
    expect(parseNWFilterXml(buildNWFilterXml(spec))).toEqual(expected(spec));
  });

  it.each(variants)('%s validates against libvirt nwfilter.rng', (_, spec) => {
    expectSchemaValid(buildNWFilterXml(spec), 'nwfilter');
  });

  it.each(rules.map((r, i) => [`${i}: ${r.protocol} ${r.action}`, r] as const))(
    'rule %s validates on its own',
    (_, rule) => expectSchemaValid(buildNWFilterXml({ name: 'one', rules: [rule] }), 'nwfilter'),
  );

  it('uses libvirt attribute names', () => {
    const xml = buildNWFilterXml(variants[1][1]);
    expect(xml).toContain('<filter name="vmflow-dept-1" chain="root" priority="-500">');
    expect(xml).toContain(
      '<tcp srcipaddr="10.0.0.0" srcipmask="8" dstportstart="22" dstportend="23" state="NEW,ESTABLISHED" comment="ssh from &lt;lab&gt; &amp; &quot;ops&quot; \'team\' ]]&gt;"/>',
    );
    expect(xml).toContain('<rule action="drop" direction="inout" priority="-1000" statematch="false">');
    expect(xml).toContain('<icmp dstipfrom="192.168.0.1" dstipto="192.168.0.1" type="8" code="0"/>');
    expect(xml).toContain('<ip srcipaddr="$IP" dstportstart="67" dstportend="68" protocol="udp"/>');
    expect(xml).toContain('<parameter name="IP" value="10.0.0.2"/>');
  });

  it('the schema really rejects what the builder refuses (oracle sanity check)', () => {
    const bad = buildNWFilterXml({ name: 'x', rules: [rules[0]] });
    expect(schemaValidate(bad.replace('dstportend="23"', 'dstportend="65536"'), 'nwfilter').status).not.toBe(
      0,
    );
    expect(schemaValidate(bad.replace('direction="in"', 'direction="sideways"'), 'nwfilter').status).not.toBe(
      0,
    );
    expect(
      schemaValidate(
        buildNWFilterXml({ name: 'y', rules: [rules[4]] }).replace(
          'dstportstart',
          'state="NEW" dstportstart',
        ),
        'nwfilter',
      ).status,
    ).not.toBe(0);
  });

  it('reads libvirt-written filters with variables, hex numbers, dotted masks and unknown attributes', () => {
    const xml = `<filter name='clean-traffic' chain='root'>
      <uuid>${UUID}</uuid>
      <filterref filter='no-mac-spoofing'/>
      <rule action='accept' direction='out' priority='-650' statematch='FALSE'>
        <ip srcipaddr='$IP' srcipmask='255.255.255.0' dstportstart='0x35' match='no' protocol='udp'/>
      </rule>
      <rule action='drop' direction='inout' priority='1000'/>
      <rule action='accept' direction='in'><tcp dstportstart='$PORT'/></rule>
    </filter>`;
    expect(parseNWFilterXml(xml)).toEqual({
      name: 'clean-traffic',
      uuid: UUID,
      chain: 'root',
      filterrefs: [{ filter: 'no-mac-spoofing' }],
      rules: [
        {
          action: 'accept',
          direction: 'out',
          priority: -650,
          statematch: false,
          protocol: 'ip',
          srcIpAddr: '$IP',
          srcIpMask: 24,
          dstPortStart: 53,
          ipProtocol: 'udp',
          extra: { match: 'no' },
        },
        { action: 'drop', direction: 'inout', priority: 1000 },
        { action: 'accept', direction: 'in', protocol: 'tcp', extra: { dstportstart: '$PORT' } },
      ],
    });
  });

  it.each([
    ['malformed', '<filter name="x"><rule></filter>'],
    ['wrong root', '<network/>'],
    ['no name', '<filter/>'],
    ['rule without action', '<filter name="x"><rule direction="in"/></filter>'],
  ])('throws XmlParseError for %s XML', (_, xml) =>
    expect(() => parseNWFilterXml(xml)).toThrow(XmlParseError),
  );
});

describe('validateFilterRule explains problems in plain words', () => {
  const base: FilterRule = { action: 'accept', direction: 'in', protocol: 'tcp' };
  const cases: Array<[string, Partial<FilterRule> | Record<string, unknown>, string, RegExp]> = [
    ['reversed port range', { dstPortStart: 443, dstPortEnd: 80 }, 'dstPortEnd', /port range is reversed/],
    ['reversed source ports', { srcPortStart: 2000, srcPortEnd: 1000 }, 'srcPortEnd', /reversed/],
    ['port 0', { dstPortStart: 0 }, 'dstPortStart', /between 1 and 65535/],
    ['port 65536', { dstPortStart: 65536 }, 'dstPortStart', /between 1 and 65535/],
    ['port end without start', { dstPortEnd: 80 }, 'dstPortEnd', /needs dstPortStart/],
    ['ports on icmp', { protocol: 'icmp', dstPortStart: 80 }, 'dstPortStart', /'icmp' has no ports/],
    ['ports on all', { protocol: 'all', srcPortStart: 80 }, 'srcPortStart', /'all' has no ports/],
    [
      'ports on an ip rule without inner protocol',
      { protocol: 'ip', dstPortStart: 80 },
      'dstPortStart',
      /ipProtocol/,
    ],
    [
      'ports on an ip rule carrying icmp',
      { protocol: 'ip', ipProtocol: 'icmp', dstPortStart: 80 },
      'dstPortStart',
      /ipProtocol/,
    ],
    [
      'IPv4 address with an IPv6 protocol',
      { protocol: 'tcp-ipv6', srcIpAddr: '10.0.0.1' },
      'srcIpAddr',
      /IPv4 address but protocol 'tcp-ipv6'/,
    ],
    [
      'IPv6 address with an IPv4 protocol',
      { dstIpAddr: 'fd00::1' },
      'dstIpAddr',
      /IPv6 address but protocol 'tcp'.*-ipv6/,
    ],
    ['not an address', { srcIpAddr: 'example.com' }, 'srcIpAddr', /IP address or a filter variable/],
    [
      'IP address on a mac rule',
      { protocol: 'mac', srcIpAddr: '10.0.0.1' },
      'srcIpAddr',
      /does not match on IP addresses/,
    ],
    ['mask without address', { srcIpMask: 24 }, 'srcIpMask', /needs srcIpAddr/],
    [
      'mask on an arp rule',
      { protocol: 'arp', dstIpMask: 24 },
      'dstIpMask',
      /does not match on IP addresses/,
    ],
    ['IPv4 mask 33', { srcIpAddr: '10.0.0.0', srcIpMask: 33 }, 'srcIpMask', /between 0 and 32/],
    [
      'IPv6 mask 129',
      { protocol: 'all-ipv6', srcIpAddr: 'fd00::', srcIpMask: 129 },
      'srcIpMask',
      /between 0 and 128/,
    ],
    ['half an address range', { srcIpFrom: '10.0.0.1' }, 'srcIpTo', /needs both srcIpFrom and srcIpTo/],
    [
      'reversed address range',
      { dstIpFrom: '10.0.0.9', dstIpTo: '10.0.0.1' },
      'dstIpTo',
      /address range is reversed/,
    ],
    [
      'address range on an ip rule',
      { protocol: 'ip', srcIpFrom: '10.0.0.1', srcIpTo: '10.0.0.2' },
      'srcIpFrom',
      /ranges are not supported/,
    ],
    ['priority 1001', { priority: 1001 }, 'priority', /between -1000 and 1000/],
    ['priority -1001', { priority: -1001 }, 'priority', /between -1000 and 1000/],
    ['state with statematch false', { state: ['NEW'], statematch: false }, 'state', /statematch is false/],
    ['unknown state', { state: ['OPEN' as 'NEW'] }, 'state[0]', /'NEW'/],
    ['empty state list', { state: [] }, 'state', /at least one/],
    ['NONE with other states', { state: ['NONE', 'NEW'] }, 'state', /'NONE' cannot be combined/],
    ['state twice', { state: ['NEW', 'NEW'] }, 'state', /twice/],
    ['state on an IPv6 rule (schema)', { protocol: 'tcp-ipv6', state: ['NEW'] }, 'state', /schema/],
    [
      'state on a mac rule',
      { protocol: 'mac', state: ['NEW'] },
      'state',
      /only used with tcp, udp, icmp and all/,
    ],
    ['icmp type on tcp', { icmpType: 8 }, 'icmpType', /only used with protocol 'icmp'/],
    ['icmp type 256', { protocol: 'icmp', icmpType: 256 }, 'icmpType', /between 0 and 255/],
    ['icmp code without type', { protocol: 'icmpv6', icmpCode: 1 }, 'icmpCode', /needs icmpType/],
    ['destination MAC on tcp', { dstMacAddr: 'ff:ff:ff:ff:ff:ff' }, 'dstMacAddr', /destination MAC/],
    ['bad source MAC', { srcMacAddr: 'zz:00:00:00:00:00' }, 'srcMacAddr', /MAC address/],
    ['ipProtocol on tcp', { ipProtocol: 'udp' }, 'ipProtocol', /only used with protocol 'ip'/],
    ['comment with a newline', { comment: 'a\nb' }, 'comment', /single line/],
    ['comment of 257 characters', { comment: 'c'.repeat(257) }, 'comment', /256/],
    ['unknown action', { action: 'allow' as 'accept' }, 'action', /'accept'/],
    ['unknown direction', { direction: 'both' as 'in' }, 'direction', /'inout'/],
    ['unknown protocol', { protocol: 'sctp' as 'tcp' }, 'protocol', /'tcp'/],
    ['a typo in a setting', { dstport: 22 }, 'dstport', /not a rule setting/],
    ['statematch as a string', { statematch: 'false' as unknown as boolean }, 'statematch', /true or false/],
  ];

  it.each(cases)('%s', (_, change, field, reason) => {
    const rule = { ...base, ...change } as FilterRule;
    const problems = checkFilterRule(rule);
    expect(problems.map((p) => p.field)).toContain(field);
    const messages = validateFilterRule(rule);
    expect(messages.some((m) => m.startsWith(`${field}: `) && reason.test(m))).toBe(true);
    // The builder throws the first problem, with the rule's index in the field path.
    const first = problems[0];
    expectSpecError(() => buildNWFilterXml({ name: 'f', rules: [base, rule] }), `rules[1].${first.field}`);
  });

  it('lists every problem of a rule, not just the first', () => {
    const messages = validateFilterRule({
      action: 'accept',
      direction: 'in',
      protocol: 'icmp',
      priority: 5000,
      dstPortStart: 80,
      srcIpAddr: 'fd00::1',
      comment: 'bad\u0000',
    });
    expect(messages).toHaveLength(4);
    expect(messages.join('\n')).toMatch(/priority.*\n.*comment.*\n.*srcIpAddr.*\n.*dstPortStart/s);
  });

  it('accepts every rule of the reference filter', () => {
    for (const rule of rules) expect(validateFilterRule(rule)).toEqual([]);
  });

  it('explains a non-object rule', () => {
    expect(validateFilterRule(null as unknown as FilterRule)).toEqual(['a rule must be an object, got null']);
  });
});

describe('buildNWFilterXml rejects invalid filters', () => {
  const cases: Array<[string, Partial<FilterSpec>, string]> = [
    ['name starting with a digit (NCName)', { name: '1filter' }, 'name'],
    ['name with markup', { name: 'f<x>' }, 'name'],
    ['bad UUID', { uuid: 'x' }, 'uuid'],
    ['unknown chain', { chain: 'forward' as 'root' }, 'chain'],
    ['chain suffix too long', { chain: 'ipv4-abcdefgh' as 'root' }, 'chain'],
    ['chain suffix with a space', { chain: 'mac-a b' as 'root' }, 'chain'],
    ['chain priority 1001', { priority: 1001 }, 'priority'],
    ['filterref to itself', { filterrefs: [{ filter: 'f' }] }, 'filterrefs[0].filter'],
    ['filterref with a bad name', { filterrefs: [{ filter: 'a:b' }] }, 'filterrefs[0].filter'],
    [
      'filterref parameter with a slash',
      { filterrefs: [{ filter: 'g', parameters: { IP: '10.0.0.0/8' } }] },
      'filterrefs[0].parameters.IP',
    ],
    [
      'filterref parameter name with a dash',
      { filterrefs: [{ filter: 'g', parameters: { 'MY-IP': '1' } }] },
      'filterrefs[0].parameters.MY-IP',
    ],
    ['rules not an array', { rules: {} as FilterRule[] }, 'rules'],
    ['a null rule', { rules: [null as unknown as FilterRule] }, 'rules[0]'],
  ];
  it.each(cases)('%s', (_, change, field) =>
    expectSpecError(() => buildNWFilterXml({ name: 'f', ...change }), field),
  );
});

describe('nwfilter bindings', () => {
  const binding: NWFilterBindingSpec = {
    portDev: 'vnet3',
    mac: '52:54:00:aa:bb:cc',
    ownerName: 'vmflow-1',
    ownerUUID: UUID,
    filter: 'vmflow-vm-1',
    parameters: { IP: ['10.0.0.5', '10.0.0.6'], MAC: '52:54:00:aa:bb:cc' },
  };

  it.each([
    ['with parameters', binding],
    ['without parameters', { ...binding, parameters: undefined }],
    ['with a link device', { ...binding, linkDev: 'eth0' }],
  ])('%s: round-trips and validates against nwfilterbinding.rng', (_, spec) => {
    const xml = buildNWFilterBindingXml(spec);
    expectSchemaValid(xml, 'nwfilterbinding');
    const parsed = parseNWFilterBindingXml(xml);
    const want = Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined));
    expect(parsed).toEqual(want);
  });

  it.each([
    ['portDev', { portDev: 'vnet 3' }],
    ['mac', { mac: '01:00:5e:00:00:01' }],
    ['ownerName', { ownerName: 'a/b' }],
    ['ownerUUID', { ownerUUID: 'nope' }],
    ['filter', { filter: '9x' }],
    ['parameters.IP', { parameters: { IP: 'a b' } }],
    ['linkDev', { linkDev: 'x'.repeat(16) }],
  ])('rejects a bad %s', (field, change) =>
    expectSpecError(() => buildNWFilterBindingXml({ ...binding, ...change } as NWFilterBindingSpec), field),
  );

  it('throws XmlParseError for incomplete binding XML', () => {
    expect(() => parseNWFilterBindingXml('<filterbinding><portdev name="v"/></filterbinding>')).toThrow(
      XmlParseError,
    );
  });
});
