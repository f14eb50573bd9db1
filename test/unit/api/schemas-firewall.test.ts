/**
 * The firewall request schemas (pure): a rule body reports every problem at once with the body's own field
 * names, the other bodies are strict, and the documented rule shape matches what is accepted.
 */
import { zodFieldErrors } from '../../../src/api/errors';
import {
  CreateFilterBody,
  FilterRuleSchema,
  IncludesBody,
  MachineServiceBody,
  PolicyBody,
  RuleBody,
  ruleField,
  UpdateFilterBody,
} from '../../../src/api/schemas-firewall';

const fields = (schema: { safeParse(v: unknown): { success: boolean; error?: unknown } }, v: unknown) => {
  const r = schema.safeParse(v);
  return r.success ? [] : zodFieldErrors(r.error as never).map((e) => e.field);
};

const ssh = { action: 'accept', direction: 'in', protocol: 'tcp', dstPortStart: 22 };

describe('firewall request schemas', () => {
  it.each([
    ['a reversed port range', { ...ssh, dstPortStart: 80, dstPortEnd: 22 }, 'dstPortEnd'],
    [
      'ports on icmp',
      { action: 'accept', direction: 'in', protocol: 'icmp', dstPortStart: 22 },
      'dstPortStart',
    ],
    ['an IPv4 address in an IPv6 rule', { ...ssh, protocol: 'tcp-ipv6', srcIpAddr: '10.0.0.1' }, 'srcIpAddr'],
    ['a priority out of range', { ...ssh, priority: 5000 }, 'priority'],
    ["a priority in the preset's band", { ...ssh, priority: 1000 }, 'priority'],
    ['an unknown protocol', { ...ssh, protocol: 'gre' }, 'protocol'],
    ['an unknown action', { ...ssh, action: 'allow' }, 'action'],
    ['an unknown direction', { ...ssh, direction: 'both' }, 'direction'],
    ['an unknown state', { ...ssh, state: ['NEW', 'OPEN'] }, 'state[1]'],
    ['a mask without an address', { ...ssh, srcIpMask: 24 }, 'srcIpMask'],
    ['an unknown setting', { ...ssh, port: 22 }, 'port'],
  ])('refuses %s, naming the field', (_what, rule, field) => {
    expect(fields(RuleBody, rule)).toContain(field);
  });

  it('reports every problem of a rule at once', () => {
    const got = fields(RuleBody, {
      action: 'allow',
      direction: 'in',
      protocol: 'tcp',
      dstPortStart: 80,
      dstPortEnd: 22,
      priority: 5000,
      srcIpMask: 24,
    });
    expect(got).toEqual(expect.arrayContaining(['action', 'dstPortEnd', 'priority', 'srcIpMask']));
  });

  it('refuses a body that is not a rule object', () => {
    expect(fields(RuleBody, [])).toEqual(['(body)']);
    expect(fields(RuleBody, 'tcp')).toEqual(['(body)']);
  });

  it.each([
    ssh,
    { action: 'drop', direction: 'out', protocol: 'all', priority: -999 },
    { action: 'reject', direction: 'inout', protocol: 'udp-ipv6', dstIpAddr: 'fd00::1', dstIpMask: 64 },
    { action: 'accept', direction: 'in', protocol: 'icmp', icmpType: 8, state: ['NEW'] },
    { ...ssh, srcIpAddr: '$IP', comment: 'ssh from anywhere' },
  ])('accepts the valid rule %j, which the documented shape accepts too', (rule) => {
    expect(fields(RuleBody, rule)).toEqual([]);
    expect(FilterRuleSchema.safeParse(rule).success).toBe(true);
  });

  it("normalizes checkUserRule's fields to the body's own names", () => {
    expect(ruleField('rule.dstPortEnd')).toBe('dstPortEnd');
    expect(ruleField('dstPortEnd')).toBe('dstPortEnd');
    expect(ruleField('rule')).toBe('(body)');
    expect(ruleField('')).toBe('(body)');
  });

  it('the other bodies are strict', () => {
    expect(fields(CreateFilterBody, { name: 'web', kind: 'vm' })).toEqual(['kind']);
    expect(fields(CreateFilterBody, { name: ' ' })).toEqual(['name']);
    expect(fields(UpdateFilterBody, {})).toEqual(['(body)']);
    expect(fields(PolicyBody, { policy: 'ALLOW_SOME' })).toEqual(['policy']);
    expect(fields(MachineServiceBody, { action: 'USE', enabled: null })).toEqual([]);
    expect(fields(MachineServiceBody, { action: 'SERVE', enabled: true })).toEqual(['action']);
    const id = '0b7b1c36-4a0c-4f7e-9a55-6a4d3c1f0e11';
    expect(fields(IncludesBody, { includes: [id, id] })).toEqual(['includes']);
    expect(fields(IncludesBody, { includes: ['nope'] })).toEqual(['includes.0']);
  });
});
