/**
 * The compiler of the firewall model (src/firewall/compile.ts): presets, service precedence, and compiled
 * specs that the nwfilter builder and libvirt's own RelaxNG schema accept.
 */
import { randomUUID } from 'node:crypto';
import {
  PRESET_ALLOW_PRIORITY,
  PRIORITY,
  customFilterSpec,
  departmentFilterSpec,
  effectiveServices,
  presetRules,
  serviceRules,
  vmFilterSpec,
} from '../../../src/firewall/compile';
import { SERVICES } from '../../../src/firewall/services';
import { checkUserRule } from '../../../src/firewall/validate';
import { buildNWFilterXml, checkFilterRule, type FilterRule } from '../../../src/libvirt/xml';
import { FIREWALL_PRESETS, libvirtNames } from '../../../src/workflows/shared';
import { expectSchemaValid } from '../xml/xml-oracle';

const established = (r: FilterRule) =>
  r.priority === PRIORITY.established && r.state?.includes('ESTABLISHED');
const drops = (rules: FilterRule[]) => rules.filter((r) => r.action === 'drop');

describe('presetRules', () => {
  it.each(FIREWALL_PRESETS)('%s: established/related accepted first, DHCP kept, every rule valid', (p) => {
    const rules = presetRules(p);
    expect(rules[0]).toMatchObject({ action: 'accept', direction: 'inout', protocol: 'all' });
    expect(established(rules[0])).toBe(true);
    expect(rules.some((r) => r.action === 'accept' && r.direction === 'out' && r.dstPortStart === 67)).toBe(
      true,
    );
    expect(rules.some((r) => r.action === 'accept' && r.direction === 'in' && r.dstPortStart === 68)).toBe(
      true,
    );
    for (const r of rules) expect(checkFilterRule(r)).toEqual([]);
    // Every preset rule sits outside the user band, so user rules always come between.
    for (const r of rules) expect(r.priority! <= -1000 || r.priority! >= PRESET_ALLOW_PRIORITY).toBe(true);
  });

  it('ALLOW_ALL drops nothing', () => {
    expect(drops(presetRules('ALLOW_ALL'))).toEqual([]);
  });

  it('BLOCK_ALL drops everything else in and out, IPv4 and IPv6, at the preset priority', () => {
    expect(drops(presetRules('BLOCK_ALL')).map((r) => [r.direction, r.protocol, r.priority])).toEqual([
      ['inout', 'all', 1000],
      ['inout', 'all-ipv6', 1000],
    ]);
  });

  it('ALLOW_OUTBOUND drops new inbound and accepts any outbound', () => {
    const rules = presetRules('ALLOW_OUTBOUND');
    expect(drops(rules).map((r) => [r.direction, r.protocol])).toEqual([
      ['in', 'all'],
      ['in', 'all-ipv6'],
    ]);
    expect(
      rules.filter((r) => r.priority === PRESET_ALLOW_PRIORITY).map((r) => [r.direction, r.protocol]),
    ).toEqual([
      ['out', 'all'],
      ['out', 'all-ipv6'],
    ]);
  });

  it('ALLOW_INTERNET lets out only web and DNS, and drops the rest both ways', () => {
    const rules = presetRules('ALLOW_INTERNET');
    expect(drops(rules).map((r) => [r.direction, r.protocol])).toEqual([
      ['inout', 'all'],
      ['inout', 'all-ipv6'],
    ]);
    const allowed = rules
      .filter((r) => r.priority === PRESET_ALLOW_PRIORITY)
      .map((r) => `${r.protocol}/${r.dstPortStart}:${r.direction}`);
    expect(allowed.sort()).toEqual(
      [
        'tcp/80',
        'tcp/443',
        'udp/443',
        'udp/53',
        'tcp/53',
        'tcp-ipv6/80',
        'tcp-ipv6/443',
        'udp-ipv6/443',
        'udp-ipv6/53',
        'tcp-ipv6/53',
      ]
        .map((s) => `${s}:out`)
        .sort(),
    );
  });

  it('returns fresh copies (callers may not corrupt the presets)', () => {
    const a = presetRules('BLOCK_ALL');
    a[0].state!.push('NEW');
    a[1].priority = 1;
    expect(presetRules('BLOCK_ALL')[0].state).toEqual(['ESTABLISHED', 'RELATED']);
    expect(presetRules('BLOCK_ALL')[1].priority).toBe(PRIORITY.established);
  });
});

describe('effectiveServices', () => {
  const find = (list: ReturnType<typeof effectiveServices>, id: string, action: 'USE' | 'PROVIDE') =>
    list.find((s) => s.serviceId === id && s.action === action)!;

  it('covers the whole catalogue, both actions, off by default', () => {
    const all = effectiveServices([], []);
    expect(all).toHaveLength(SERVICES.length * 2);
    expect(all.every((s) => !s.enabled && s.source === 'default')).toBe(true);
  });

  it('VM setting, else department setting, else off', () => {
    const list = effectiveServices(
      [
        { serviceId: 'ssh', action: 'PROVIDE', enabled: false },
        { serviceId: 'http', action: 'USE', enabled: true },
      ],
      [
        { serviceId: 'ssh', action: 'PROVIDE', enabled: true },
        { serviceId: 'dns', action: 'USE', enabled: true },
      ],
    );
    expect(find(list, 'ssh', 'PROVIDE')).toEqual({
      serviceId: 'ssh',
      action: 'PROVIDE',
      enabled: false,
      source: 'vm',
    });
    expect(find(list, 'http', 'USE')).toMatchObject({ enabled: true, source: 'vm' });
    expect(find(list, 'dns', 'USE')).toMatchObject({ enabled: true, source: 'department' });
    expect(find(list, 'dns', 'PROVIDE')).toMatchObject({ enabled: false, source: 'default' });
    expect(find(list, 'ssh', 'USE')).toMatchObject({ enabled: false, source: 'default' });
  });
});

describe('serviceRules', () => {
  it('USE opens outbound, PROVIDE inbound, to the service ports, IPv4 and IPv6, at the service priority', () => {
    const rules = serviceRules([{ serviceId: 'ssh', action: 'PROVIDE' }]);
    expect(rules.map((r) => [r.action, r.direction, r.protocol, r.dstPortStart, r.priority])).toEqual([
      ['accept', 'in', 'tcp', 22, 300],
      ['accept', 'in', 'tcp-ipv6', 22, 300],
    ]);
    const use = serviceRules([{ serviceId: 'dns', action: 'USE' }]);
    expect(use.every((r) => r.direction === 'out')).toBe(true);
    expect(use.map((r) => `${r.protocol}/${r.dstPortStart}`)).toEqual([
      'udp/53',
      'udp-ipv6/53',
      'tcp/53',
      'tcp-ipv6/53',
    ]);
  });

  it('keeps port ranges, ignores unknown ids and duplicates, and is order-independent', () => {
    expect(serviceRules([{ serviceId: 'vnc', action: 'PROVIDE' }])[0]).toMatchObject({
      dstPortStart: 5900,
      dstPortEnd: 5909,
    });
    expect(serviceRules([{ serviceId: 'gone', action: 'USE' }])).toEqual([]);
    const a = serviceRules([
      { serviceId: 'https', action: 'PROVIDE' },
      { serviceId: 'ssh', action: 'USE' },
      { serviceId: 'ssh', action: 'USE' },
    ]);
    const b = serviceRules([
      { serviceId: 'ssh', action: 'USE' },
      { serviceId: 'https', action: 'PROVIDE' },
    ]);
    expect(a).toEqual(b);
    expect(a).toHaveLength(2 + 4);
  });

  it('every service rule is valid', () => {
    const all = serviceRules(
      SERVICES.flatMap((s) => [
        { serviceId: s.id, action: 'USE' as const },
        { serviceId: s.id, action: 'PROVIDE' as const },
      ]),
    );
    for (const r of all) expect(checkFilterRule(r)).toEqual([]);
  });
});

describe('filter specs', () => {
  const deptId = randomUUID();
  const machineId = randomUUID();
  const customId = randomUUID();
  const userRule: FilterRule = {
    action: 'drop',
    direction: 'out',
    protocol: 'tcp',
    dstPortStart: 25,
    priority: 500,
  };

  it('a department filter references clean-traffic, allow-dhcp and its includes; preset rules before its own', () => {
    const spec = departmentFilterSpec({
      departmentId: deptId,
      policy: 'BLOCK_ALL',
      rules: [userRule],
      includes: [libvirtNames.customFilter(customId)],
    });
    expect(spec.name).toBe(libvirtNames.departmentFilter(deptId));
    expect(spec.filterrefs!.map((r) => r.filter)).toEqual([
      'clean-traffic',
      'allow-dhcp',
      libvirtNames.customFilter(customId),
    ]);
    expect(spec.rules).toEqual([...presetRules('BLOCK_ALL'), userRule]);
  });

  it('a VM filter references its department filter first, then its includes; services before its rules', () => {
    const spec = vmFilterSpec({
      machineId,
      departmentId: deptId,
      rules: [userRule],
      services: [{ serviceId: 'ssh', action: 'PROVIDE' }],
      includes: [libvirtNames.customFilter(customId)],
    });
    expect(spec.name).toBe(libvirtNames.vmFilter(machineId));
    expect(spec.filterrefs!.map((r) => r.filter)).toEqual([
      libvirtNames.departmentFilter(deptId),
      libvirtNames.customFilter(customId),
    ]);
    expect(spec.rules).toEqual([...serviceRules([{ serviceId: 'ssh', action: 'PROVIDE' }]), userRule]);
  });

  it('every compiled filter builds and validates against libvirt’s nwfilter schema', () => {
    const user: FilterRule[] = [
      userRule,
      {
        action: 'reject',
        direction: 'in',
        protocol: 'icmp',
        icmpType: 8,
        priority: -5,
        comment: 'no <ping> & "such"',
      },
      {
        action: 'accept',
        direction: 'in',
        protocol: 'udp-ipv6',
        srcIpAddr: 'fd00::',
        srcIpMask: 8,
        dstPortStart: 9,
        priority: 10,
      },
    ];
    for (const r of user) expect(checkUserRule(r)).toEqual([]);
    const specs = [
      ...FIREWALL_PRESETS.map((policy) =>
        departmentFilterSpec({
          departmentId: deptId,
          policy,
          rules: user,
          includes: [libvirtNames.customFilter(customId)],
        }),
      ),
      vmFilterSpec({
        machineId,
        departmentId: deptId,
        rules: user,
        services: SERVICES.map((s) => ({ serviceId: s.id, action: 'USE' as const })),
        includes: [],
      }),
      customFilterSpec({
        filterId: customId,
        rules: user,
        includes: [libvirtNames.customFilter(randomUUID())],
      }),
      customFilterSpec({ filterId: customId, rules: [], includes: [] }),
    ];
    for (const spec of specs) expectSchemaValid(buildNWFilterXml(spec), 'nwfilter');
  });
});
