/** Validation of user rules and firewall changes (src/firewall/validate.ts): each kind of bad input → field + message. */
import { randomUUID } from 'node:crypto';
import { checkChange, checkUserRule, normalizeUserRule } from '../../../src/firewall/validate';

const ok = { action: 'accept', direction: 'in', protocol: 'tcp', dstPortStart: 22 };
const fields = (rule: unknown, prefix?: string) => checkUserRule(rule, prefix).map((p) => p.field);

describe('checkUserRule', () => {
  it('accepts good rules of every user protocol', () => {
    const rules: unknown[] = [
      ok,
      { action: 'drop', direction: 'out', protocol: 'udp', dstPortStart: 53, dstPortEnd: 54, priority: -999 },
      { action: 'reject', direction: 'inout', protocol: 'icmp', icmpType: 8, icmpCode: 0 },
      {
        action: 'accept',
        direction: 'in',
        protocol: 'all',
        srcIpAddr: '10.0.0.0',
        srcIpMask: 8,
        state: ['NEW'],
      },
      { action: 'accept', direction: 'in', protocol: 'tcp-ipv6', srcIpAddr: 'fd00::1', dstPortStart: 443 },
      { action: 'accept', direction: 'out', protocol: 'udp-ipv6', dstPortStart: 123 },
      { action: 'drop', direction: 'in', protocol: 'icmpv6', icmpType: 128 },
      { action: 'drop', direction: 'in', protocol: 'all-ipv6', priority: 999 },
      { action: 'accept', direction: 'out', protocol: 'tcp', srcIpAddr: '$IP', srcMacAddr: '$MAC' },
      { action: 'accept', direction: 'in', protocol: 'tcp', srcIpFrom: '10.0.0.1', srcIpTo: '10.0.0.9' },
    ];
    for (const r of rules) expect(checkUserRule(r)).toEqual([]);
  });

  it.each<[string, Record<string, unknown>, string, RegExp]>([
    ['a reversed port range', { ...ok, dstPortStart: 90, dstPortEnd: 80 }, 'rule.dstPortEnd', /reversed/],
    [
      'ports on icmp',
      { action: 'accept', direction: 'in', protocol: 'icmp', dstPortStart: 22 },
      'rule.dstPortStart',
      /no ports/,
    ],
    [
      'ports on all',
      { action: 'accept', direction: 'in', protocol: 'all', srcPortStart: 1 },
      'rule.srcPortStart',
      /no ports/,
    ],
    ['a port out of range', { ...ok, dstPortStart: 70000 }, 'rule.dstPortStart', /65535/],
    [
      'an end port without a start',
      { action: 'accept', direction: 'in', protocol: 'tcp', dstPortEnd: 80 },
      'rule.dstPortEnd',
      /starts somewhere/,
    ],
    ['an unknown action', { ...ok, action: 'return' }, 'rule.action', /accept, drop, reject/],
    ['an unknown direction', { ...ok, direction: 'up' }, 'rule.direction', /in/],
    [
      'an internal protocol',
      { action: 'accept', direction: 'in', protocol: 'arp' },
      'rule.protocol',
      /tcp, udp, icmp/,
    ],
    [
      'a made-up protocol',
      { action: 'accept', direction: 'in', protocol: 'gopher' },
      'rule.protocol',
      /tcp, udp/,
    ],
    ['a priority beyond libvirt', { ...ok, priority: 5000 }, 'rule.priority', /1000/],
    ['a preset priority', { ...ok, priority: 1000 }, 'rule.priority', /kept for the department preset/],
    [
      'the established priority',
      { ...ok, priority: -1000 },
      'rule.priority',
      /kept for the department preset/,
    ],
    ['an IPv6 address in an IPv4 rule', { ...ok, srcIpAddr: 'fd00::1' }, 'rule.srcIpAddr', /IPv6 address/],
    [
      'an IPv4 address in an IPv6 rule',
      { action: 'accept', direction: 'in', protocol: 'tcp-ipv6', dstIpAddr: '10.0.0.1' },
      'rule.dstIpAddr',
      /IPv4/,
    ],
    [
      'a reversed address range',
      { ...ok, srcIpFrom: '10.0.0.9', srcIpTo: '10.0.0.1' },
      'rule.srcIpTo',
      /reversed/,
    ],
    ['half an address range', { ...ok, dstIpFrom: '10.0.0.1' }, 'rule.dstIpTo', /both/],
    ['a mask without an address', { ...ok, srcIpMask: 24 }, 'rule.srcIpMask', /needs srcIpAddr/],
    ['a mask too long', { ...ok, srcIpAddr: '10.0.0.0', srcIpMask: 33 }, 'rule.srcIpMask', /32/],
    ['a bad address', { ...ok, srcIpAddr: '10.0.0.300' }, 'rule.srcIpAddr', /IP address/],
    ['an unknown state', { ...ok, state: ['NEW', 'SLEEPY'] }, 'rule.state[1]', /NEW/],
    [
      'state on an IPv6 rule',
      { action: 'accept', direction: 'in', protocol: 'tcp-ipv6', state: ['NEW'] },
      'rule.state',
      /schema/,
    ],
    ['state with statematch off', { ...ok, state: ['NEW'], statematch: false }, 'rule.state', /contradict/],
    [
      'an icmp code without type',
      { action: 'accept', direction: 'in', protocol: 'icmp', icmpCode: 1 },
      'rule.icmpCode',
      /needs icmpType/,
    ],
    ['icmp fields on tcp', { ...ok, icmpType: 8 }, 'rule.icmpType', /only used with protocol 'icmp'/],
    ['an unknown setting', { ...ok, colour: 'red' }, 'rule.colour', /not a rule setting/],
    ['a multi-line comment', { ...ok, comment: 'a\nb' }, 'rule.comment', /./],
    [
      'an unknown variable',
      { ...ok, srcIpAddr: '$GATEWAY' },
      'rule.srcIpAddr',
      /not a variable vmflow fills in/,
    ],
    [
      '$IP in an IPv6 rule',
      { action: 'accept', direction: 'in', protocol: 'tcp-ipv6', srcIpAddr: '$IP' },
      'rule.srcIpAddr',
      /IPv4 address/,
    ],
    ['$IP as a MAC', { ...ok, srcMacAddr: '$IP' }, 'rule.srcMacAddr', /MAC/],
  ])('rejects %s', (_what, rule, field, message) => {
    const problems = checkUserRule(rule);
    expect(problems.map((p) => p.field)).toContain(field);
    expect(problems.find((p) => p.field === field)!.message).toMatch(message);
  });

  it('reports every problem at once, with the prefix it is given', () => {
    expect(
      fields({ action: 'nope', direction: 'in', protocol: 'icmp', dstPortStart: 1, icmpCode: 1 }, 'r'),
    ).toEqual(expect.arrayContaining(['r.action', 'r.dstPortStart', 'r.icmpCode']));
    expect(fields('not a rule')).toEqual(['rule']);
    expect(fields(null)).toEqual(['rule']);
    expect(fields(['tcp'], '')).toEqual(['']);
  });

  it('normalizes: the default priority made explicit, undefined fields dropped', () => {
    expect(normalizeUserRule({ ...ok, comment: undefined })).toEqual({ ...ok, priority: 500 });
    expect(normalizeUserRule({ ...ok, priority: -3 })).toEqual({ ...ok, priority: -3 });
  });
});

describe('checkChange', () => {
  const id = () => randomUUID();
  const fieldsOf = (c: unknown) => checkChange(c).map((p) => p.field);

  it('accepts every kind of change', () => {
    const changes: unknown[] = [
      { type: 'addRule', filterId: id(), ruleId: id(), rule: ok },
      { type: 'updateRule', filterId: id(), ruleId: id(), rule: ok },
      { type: 'deleteRule', filterId: id(), ruleId: id() },
      { type: 'setIncludes', filterId: id(), includes: [id(), id()] },
      { type: 'setIncludes', filterId: id(), includes: [] },
      { type: 'setPolicy', departmentId: id(), policy: 'BLOCK_ALL' },
      {
        type: 'toggleService',
        scope: 'vm',
        scopeId: id(),
        serviceId: 'ssh',
        action: 'PROVIDE',
        enabled: true,
      },
      {
        type: 'toggleService',
        scope: 'department',
        scopeId: id(),
        serviceId: 'https',
        action: 'USE',
        enabled: false,
      },
      { type: 'toggleService', scope: 'vm', scopeId: id(), serviceId: 'dns', action: 'USE', enabled: null },
    ];
    for (const c of changes) expect(checkChange(c)).toEqual([]);
  });

  it('rejects bad changes, naming the field', () => {
    const f = id();
    expect(fieldsOf(null)).toEqual(['']);
    expect(fieldsOf({ type: 'dance' })).toEqual(['type']);
    expect(fieldsOf({ type: 'addRule', filterId: 'x', ruleId: id(), rule: ok })).toEqual(['filterId']);
    expect(
      fieldsOf({ type: 'addRule', filterId: id(), ruleId: id(), rule: { ...ok, dstPortEnd: 1 } }),
    ).toEqual(['rule.dstPortEnd']);
    expect(fieldsOf({ type: 'deleteRule', filterId: id() })).toEqual(['ruleId']);
    expect(fieldsOf({ type: 'setIncludes', filterId: f, includes: 'all' })).toEqual(['includes']);
    const dup = id();
    expect(
      fieldsOf({ type: 'setIncludes', filterId: f, includes: [dup, 'x', dup.toUpperCase(), f] }),
    ).toEqual(['includes[1]', 'includes[2]', 'includes[3]']);
    expect(fieldsOf({ type: 'setIncludes', filterId: f, includes: Array.from({ length: 17 }, id) })).toEqual([
      'includes',
    ]);
    expect(fieldsOf({ type: 'setPolicy', departmentId: id(), policy: 'ALLOW_SOME' })).toEqual(['policy']);
    expect(
      fieldsOf({
        type: 'toggleService',
        scope: 'host',
        scopeId: 'x',
        serviceId: 'telnet',
        action: 'EAT',
        enabled: 1,
      }),
    ).toEqual(['scope', 'scopeId', 'serviceId', 'action', 'enabled']);
  });
});
