/**
 * Validation of firewall input that needs no database: user rules (wrapping the nwfilter rule checker of
 * src/libvirt/xml and narrowing it to what a user may write) and whole {@link FirewallChange}s. Pure: the API
 * runs it before starting anything, and the workflow's first step runs it again.
 */
import { checkFilterRule, type FilterRule } from '../libvirt/xml';
import { FIREWALL_PRESETS, SERVICE_ACTIONS, type FirewallChange } from '../workflows/shared';
import { findService } from './services';

/** One problem of an input, with the field it concerns (relative: `rule.dstPortEnd`, `policy`, …). */
export interface FirewallProblem {
  field: string;
  message: string;
}

/** Protocols a user rule may use (the list; the L2 `mac`/`arp` and raw `ip`/`ipv6` stay internal). */
export const USER_RULE_PROTOCOLS = [
  'tcp',
  'udp',
  'icmp',
  'all',
  'tcp-ipv6',
  'udp-ipv6',
  'icmpv6',
  'all-ipv6',
] as const;
/** Actions a user rule may use (`return`/`continue` only make sense inside libvirt's own chains). */
export const USER_RULE_ACTIONS = ['accept', 'drop', 'reject'] as const;

/**
 * Priorities a user rule may have. libvirt allows −1000…1000; the two ends are the presets' (established
 * and related traffic accepted first at −1000, the preset's default drop last at 1000), so a user rule
 * always sits between them (docs/networks-and-firewall.md).
 */
export const USER_RULE_PRIORITY = { min: -999, max: 999, default: 500 } as const;

/** Most custom filters one filter may include. */
export const MAX_INCLUDES = 16;

/** Filter variables a user rule may name: the ones libvirt fills in for every guest interface. */
const ALLOWED_VARIABLES: Record<string, 'ip' | 'mac'> = { $IP: 'ip', $MAC: 'mac' };
const VARIABLE = /^\$[A-Za-z0-9_]+(\[@?[0-9]+\])?$/;
const IP_FIELDS = ['srcIpAddr', 'dstIpAddr', 'srcIpFrom', 'srcIpTo', 'dstIpFrom', 'dstIpTo'] as const;
const MAC_FIELDS = ['srcMacAddr', 'dstMacAddr'] as const;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  return String(value);
}

const join = (prefix: string, field: string) => (field ? (prefix ? `${prefix}.${field}` : field) : prefix);

/**
 * Every problem of a user rule, fields prefixed with `prefix` (default `rule`). Empty = valid. On top of
 * libvirt's own rules (reversed port or address ranges, ports on icmp/all, an address of the wrong family…):
 * only the protocols and actions above, priorities inside the user band, and no filter variable but `$IP`
 * (IPv4 rules) and `$MAC`.
 */
export function checkUserRule(rule: unknown, prefix = 'rule'): FirewallProblem[] {
  const problems: FirewallProblem[] = [];
  const add = (field: string, message: string) => problems.push({ field: join(prefix, field), message });
  if (typeof rule !== 'object' || rule === null || Array.isArray(rule)) {
    add('', `a rule must be an object, got ${describe(rule)}`);
    return problems;
  }
  const r = rule as Record<string, unknown>;
  for (const p of checkFilterRule(r)) {
    // The narrower messages below replace libvirt's wider ones for these two fields.
    if (p.field === 'protocol' && !USER_RULE_PROTOCOLS.includes(r.protocol as never)) continue;
    if (p.field === 'action' && !USER_RULE_ACTIONS.includes(r.action as never)) continue;
    add(p.field, p.reason);
  }
  if (!USER_RULE_PROTOCOLS.includes(r.protocol as never)) {
    add('protocol', `must be one of ${USER_RULE_PROTOCOLS.join(', ')}, got ${describe(r.protocol)}`);
  }
  if (!USER_RULE_ACTIONS.includes(r.action as never)) {
    add('action', `must be one of ${USER_RULE_ACTIONS.join(', ')}, got ${describe(r.action)}`);
  }
  if (
    typeof r.priority === 'number' &&
    Number.isInteger(r.priority) &&
    r.priority >= -1000 &&
    r.priority <= 1000 &&
    (r.priority < USER_RULE_PRIORITY.min || r.priority > USER_RULE_PRIORITY.max)
  ) {
    add(
      'priority',
      `must be from ${USER_RULE_PRIORITY.min} to ${USER_RULE_PRIORITY.max}: −1000 and 1000 are kept for the department preset (established traffic first, the default drop last)`,
    );
  }
  const v6 = typeof r.protocol === 'string' && (r.protocol.endsWith('-ipv6') || r.protocol === 'icmpv6');
  for (const key of [...IP_FIELDS, ...MAC_FIELDS]) {
    const value = r[key];
    if (typeof value !== 'string' || !VARIABLE.test(value)) continue;
    const kind = ALLOWED_VARIABLES[value];
    const wanted = (MAC_FIELDS as readonly string[]).includes(key) ? 'mac' : 'ip';
    if (kind !== wanted) {
      add(
        key,
        wanted === 'ip'
          ? `${value} is not a variable vmflow fills in; use an address, or $IP (the guest's IPv4 address)`
          : `${value} is not a variable vmflow fills in; use a MAC address, or $MAC (the guest's MAC)`,
      );
    } else if (kind === 'ip' && v6) {
      add(
        key,
        `$IP is the guest's IPv4 address; an IPv6 rule ('${String(r.protocol)}') needs an IPv6 address`,
      );
    }
  }
  return problems;
}

/** The rule as stored: validated, with its priority made explicit (libvirt's default, 500, otherwise). */
export function normalizeUserRule(rule: Record<string, unknown>): FilterRule {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(rule)) if (v !== undefined) out[k] = v;
  if (out.priority === undefined) out.priority = USER_RULE_PRIORITY.default;
  return out as unknown as FilterRule;
}

function checkId(problems: FirewallProblem[], value: unknown, field: string): void {
  if (typeof value !== 'string' || !UUID.test(value)) {
    problems.push({ field, message: `must be a UUID, got ${describe(value)}` });
  }
}

/** The change types of {@link FirewallChange}. */
export const FIREWALL_CHANGE_TYPES = [
  'addRule',
  'updateRule',
  'deleteRule',
  'setIncludes',
  'setPolicy',
  'toggleService',
] as const;

/**
 * Every problem of a {@link FirewallChange} that can be seen without the database: ids well formed, the rule
 * (see {@link checkUserRule}), the service in the catalogue (src/firewall/services.ts), the action USE or
 * PROVIDE, the preset name, includes a list of at most 16 distinct filter ids. Fields are relative to the
 * change (`rule.dstPortEnd`, `includes[2]`, `policy`).
 */
export function checkChange(change: unknown): FirewallProblem[] {
  const problems: FirewallProblem[] = [];
  if (typeof change !== 'object' || change === null || Array.isArray(change)) {
    return [{ field: '', message: `a change must be an object, got ${describe(change)}` }];
  }
  const c = change as Record<string, unknown>;
  if (!FIREWALL_CHANGE_TYPES.includes(c.type as never)) {
    return [
      {
        field: 'type',
        message: `must be one of ${FIREWALL_CHANGE_TYPES.join(', ')}, got ${describe(c.type)}`,
      },
    ];
  }
  const t = c.type as FirewallChange['type'];
  switch (t) {
    case 'addRule':
    case 'updateRule':
      checkId(problems, c.filterId, 'filterId');
      checkId(problems, c.ruleId, 'ruleId');
      problems.push(...checkUserRule(c.rule, 'rule'));
      break;
    case 'deleteRule':
      checkId(problems, c.filterId, 'filterId');
      checkId(problems, c.ruleId, 'ruleId');
      break;
    case 'setIncludes': {
      checkId(problems, c.filterId, 'filterId');
      if (!Array.isArray(c.includes)) {
        problems.push({
          field: 'includes',
          message: `must be a list of filter ids, got ${describe(c.includes)}`,
        });
        break;
      }
      if (c.includes.length > MAX_INCLUDES) {
        problems.push({
          field: 'includes',
          message: `lists ${c.includes.length} filters; a filter includes at most ${MAX_INCLUDES}`,
        });
      }
      const seen = new Set<string>();
      c.includes.forEach((id, i) => {
        checkId(problems, id, `includes[${i}]`);
        if (typeof id === 'string') {
          const key = id.toLowerCase();
          if (seen.has(key)) problems.push({ field: `includes[${i}]`, message: `${id} is listed twice` });
          seen.add(key);
          if (key === String(c.filterId).toLowerCase())
            problems.push({ field: `includes[${i}]`, message: 'a filter cannot include itself' });
        }
      });
      break;
    }
    case 'setPolicy':
      checkId(problems, c.departmentId, 'departmentId');
      if (!FIREWALL_PRESETS.includes(c.policy as never)) {
        problems.push({
          field: 'policy',
          message: `must be one of ${FIREWALL_PRESETS.join(', ')}, got ${describe(c.policy)}`,
        });
      }
      break;
    case 'toggleService':
      if (c.scope !== 'vm' && c.scope !== 'department') {
        problems.push({ field: 'scope', message: `must be 'vm' or 'department', got ${describe(c.scope)}` });
      }
      checkId(problems, c.scopeId, 'scopeId');
      if (typeof c.serviceId !== 'string' || !findService(c.serviceId)) {
        problems.push({
          field: 'serviceId',
          message: `is not a known service, got ${describe(c.serviceId)}`,
        });
      }
      if (!SERVICE_ACTIONS.includes(c.action as never)) {
        problems.push({ field: 'action', message: `must be USE or PROVIDE, got ${describe(c.action)}` });
      }
      if (c.enabled !== null && typeof c.enabled !== 'boolean') {
        problems.push({
          field: 'enabled',
          message: `must be true, false, or null (follow the department), got ${describe(c.enabled)}`,
        });
      }
      break;
  }
  return problems;
}
