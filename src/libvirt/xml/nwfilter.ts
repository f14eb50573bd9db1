/**
 * libvirt nwfilter XML (firewall rules applied to guest NICs) and nwfilter-binding XML (a filter
 * bound to one tap device): {@link buildNWFilterXml} / {@link parseNWFilterXml},
 * {@link buildNWFilterBindingXml} / {@link parseNWFilterBindingXml}, and {@link validateFilterRule},
 * which explains every problem of a rule in plain words for the firewall API.
 *
 * Element and attribute names follow libvirt's formatnwfilter documentation and its RelaxNG schema
 * (`nwfilter.rng`), which is stricter than libvirt's C parser in places (see `FILTER_PROTOCOLS`).
 */
import { type Element } from '@xmldom/xmldom';
import {
  addFilterParameters,
  addFilterRef,
  parseFilterParameters,
  parseFilterRef,
  validateFilterParameters,
  validateFilterRef,
  type FilterParameters,
  type FilterRef,
  type Known,
} from './common';
import {
  addElement,
  attr,
  child,
  childText,
  children,
  createRoot,
  intAttr,
  parseRoot,
  required,
  serialize,
} from './dom';
import { XmlSpecError } from './errors';
import {
  assertArray,
  assertBoolean,
  assertInteger,
  assertInterfaceName,
  assertLibvirtName,
  assertMac,
  assertNwfilterName,
  assertOneOf,
  assertRecord,
  assertString,
  assertText,
  assertUuid,
  describeValue,
  fail,
  netmaskToPrefix,
  parseIp,
  type IpFamily,
} from './validate';

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/** What a rule does with matching traffic. */
export type FilterAction = 'accept' | 'drop' | 'reject' | 'return' | 'continue';
/** Traffic direction seen from the guest: `in` towards it, `out` from it. */
export type FilterDirection = 'in' | 'out' | 'inout';
/** The protocol element of a rule (libvirt's element name). */
export type FilterProtocol =
  | 'tcp'
  | 'udp'
  | 'icmp'
  | 'all'
  | 'tcp-ipv6'
  | 'udp-ipv6'
  | 'icmpv6'
  | 'all-ipv6'
  | 'mac'
  | 'arp'
  | 'ip'
  | 'ipv6';
/** Connection-tracking states. */
export type FilterState = 'NEW' | 'ESTABLISHED' | 'RELATED' | 'INVALID' | 'NONE';
/** Protocols an `ip`/`ipv6` rule can match with its `protocol` attribute. */
export type IpProtocol = 'tcp' | 'udp' | 'udplite' | 'esp' | 'ah' | 'icmp' | 'igmp' | 'sctp' | 'icmpv6';
/** Base chains, and `<base>-<suffix>` user chains (at most 12 characters in all, libvirt's schema). */
export type FilterChain =
  'root' | 'mac' | 'ipv4' | 'ipv6' | 'arp' | 'rarp' | `${'mac' | 'ipv4' | 'ipv6' | 'arp' | 'rarp'}-${string}`;

/**
 * One firewall rule. Address fields take an IP literal of the protocol's family or a filter
 * variable such as `$IP` (filled from the filterref's parameters).
 */
export interface FilterRule {
  /** What to do with matching traffic. */
  action: FilterAction;
  /** Which direction the rule applies to. */
  direction: FilterDirection;
  /** Order within the chain, −1000..1000 (lower first; default 500). */
  priority?: number;
  /** `false` turns off libvirt's automatic connection-state matching for this rule. */
  statematch?: boolean;
  /** Protocol element. */
  protocol: FilterProtocol;
  /** Source MAC (literal or `$VAR`). */
  srcMacAddr?: string;
  /** Destination MAC (`mac`, `arp`, `ip`, `ipv6` rules only). */
  dstMacAddr?: string;
  /** Source address. */
  srcIpAddr?: string;
  /** Source prefix length (0–32 / 0–128); needs srcIpAddr. */
  srcIpMask?: number;
  /** Source range start (not for `ip`/`ipv6`). */
  srcIpFrom?: string;
  /** Source range end. */
  srcIpTo?: string;
  /** Destination address. */
  dstIpAddr?: string;
  /** Destination prefix length. */
  dstIpMask?: number;
  /** Destination range start. */
  dstIpFrom?: string;
  /** Destination range end. */
  dstIpTo?: string;
  /** Source port range start (tcp/udp). */
  srcPortStart?: number;
  /** Source port range end (≥ start). */
  srcPortEnd?: number;
  /** Destination port range start. */
  dstPortStart?: number;
  /** Destination port range end (≥ start). */
  dstPortEnd?: number;
  /** Protocol inside an `ip`/`ipv6` rule (needed for ports there: tcp, udp or sctp). */
  ipProtocol?: IpProtocol;
  /** Connection states to match (IPv4 tcp/udp/icmp/all only; see `FILTER_PROTOCOLS`). */
  state?: FilterState[];
  /** ICMP type (icmp/icmpv6), 0–255. */
  icmpType?: number;
  /** ICMP code, 0–255; needs icmpType. */
  icmpCode?: number;
  /** Free text shown in iptables listings; single line, ≤ 256 characters. */
  comment?: string;
}

/** An nwfilter definition. */
export interface FilterSpec {
  /** Filter name (XML NCName: starts with a letter or `_`). */
  name: string;
  /** UUID; give the existing one when redefining a filter. */
  uuid?: string;
  /** Chain the rules go to; default `root`. */
  chain?: FilterChain;
  /** Chain priority, −1000..1000. */
  priority?: number;
  /** Filters this one includes. */
  filterrefs?: FilterRef[];
  /** Own rules. */
  rules?: FilterRule[];
}

/** A rule as read back; attributes vmflow does not model (or variables in numeric fields) land in `extra`. */
export interface ParsedFilterRule extends Omit<FilterRule, 'protocol' | 'action' | 'direction' | 'state'> {
  /** Action. */
  action: Known<FilterAction>;
  /** Direction. */
  direction: Known<FilterDirection>;
  /** Protocol element name; absent for a rule without one. */
  protocol?: Known<FilterProtocol>;
  /** States. */
  state?: Array<Known<FilterState>>;
  /** Raw attributes not mapped to a field above. */
  extra?: Record<string, string>;
}

/** An nwfilter as read back from libvirt. */
export interface ParsedFilter {
  /** Name. */
  name: string;
  /** UUID. */
  uuid?: string;
  /** Chain. */
  chain?: string;
  /** Chain priority. */
  priority?: number;
  /** Included filters. */
  filterrefs: FilterRef[];
  /** Own rules. */
  rules: ParsedFilterRule[];
}

/** An nwfilter binding: a filter instantiated on one guest tap device. */
export interface NWFilterBindingSpec {
  /** Host tap device (`vnet3`). */
  portDev: string;
  /** Guest MAC on that port. */
  mac: string;
  /** Owning domain's name. */
  ownerName: string;
  /** Owning domain's UUID. */
  ownerUUID: string;
  /** Filter to bind. */
  filter: string;
  /** Filter parameters (`IP`, …). */
  parameters?: FilterParameters;
  /** Underlying link device (macvtap only). */
  linkDev?: string;
}

// ---------------------------------------------------------------------------------------------
// What each protocol element accepts (libvirt's nwfilter.rng)
// ---------------------------------------------------------------------------------------------

interface ProtocolTraits {
  /** Address family of IP fields, or null when the element has none. */
  family: IpFamily | null;
  /** tcp/udp ports. */
  ports: boolean;
  /** srcipfrom/srcipto/dstipfrom/dstipto. */
  ranges: boolean;
  /** state. */
  state: boolean;
  /** type/code. */
  icmp: boolean;
  /** dstmacaddr. */
  dstMac: boolean;
  /** protocol attribute. */
  ipProtocol: boolean;
}

/** tcp and udp of either family: ports and ranges; the `state` attribute only on IPv4 (libvirt's schema). */
function portProtocol(family: 4 | 6): ProtocolTraits {
  return {
    family,
    ports: true,
    ranges: true,
    state: family === 4,
    icmp: false,
    dstMac: false,
    ipProtocol: false,
  };
}

/** mac and arp: link-layer elements, no IP fields; of the attributes modelled here, only dstmacaddr. */
const LINK_LAYER: ProtocolTraits = {
  family: null,
  ports: false,
  ranges: false,
  state: false,
  icmp: false,
  dstMac: true,
  ipProtocol: false,
};

/**
 * Attributes allowed per protocol element, per libvirt 9's schema. Note the schema accepts `state`
 * only on the IPv4 elements (tcp, udp, icmp, all), although libvirt's C parser also reads it on the
 * IPv6 ones; we follow the schema so `virt-xml-validate` and `VIR_NWFILTER_DEFINE_VALIDATE` pass.
 * libvirt adds connection tracking to tcp/udp rules by itself (statematch), so explicit IPv6 state
 * is rarely needed.
 */
const FILTER_PROTOCOLS: Record<FilterProtocol, ProtocolTraits> = {
  tcp: portProtocol(4),
  udp: portProtocol(4),
  icmp: { family: 4, ports: false, ranges: true, state: true, icmp: true, dstMac: false, ipProtocol: false },
  all: { family: 4, ports: false, ranges: true, state: true, icmp: false, dstMac: false, ipProtocol: false },
  'tcp-ipv6': portProtocol(6),
  'udp-ipv6': portProtocol(6),
  icmpv6: {
    family: 6,
    ports: false,
    ranges: true,
    state: false,
    icmp: true,
    dstMac: false,
    ipProtocol: false,
  },
  'all-ipv6': {
    family: 6,
    ports: false,
    ranges: true,
    state: false,
    icmp: false,
    dstMac: false,
    ipProtocol: false,
  },
  ip: { family: 4, ports: true, ranges: false, state: false, icmp: false, dstMac: true, ipProtocol: true },
  ipv6: { family: 6, ports: true, ranges: false, state: false, icmp: false, dstMac: true, ipProtocol: true },
  mac: LINK_LAYER,
  arp: LINK_LAYER,
};

const PROTOCOLS = Object.keys(FILTER_PROTOCOLS) as FilterProtocol[];
const ACTIONS: readonly FilterAction[] = ['accept', 'drop', 'reject', 'return', 'continue'];
const DIRECTIONS: readonly FilterDirection[] = ['in', 'out', 'inout'];
const STATES: readonly FilterState[] = ['NEW', 'ESTABLISHED', 'RELATED', 'INVALID', 'NONE'];
const IP_PROTOCOLS: readonly IpProtocol[] = [
  'tcp',
  'udp',
  'udplite',
  'esp',
  'ah',
  'icmp',
  'igmp',
  'sctp',
  'icmpv6',
];
/** ip/ipv6 rules can only match ports when their inner protocol has ports. */
const PORTED_IP_PROTOCOLS: readonly IpProtocol[] = ['tcp', 'udp', 'sctp', 'udplite'];

/** A filter variable reference such as `$IP` or `$IP[@1]`. */
const FILTER_VARIABLE = /^\$[A-Za-z0-9_]+(\[@?[0-9]+\])?$/;

/** Rule field → libvirt attribute of the protocol element. */
const RULE_ATTRIBUTES = {
  srcMacAddr: 'srcmacaddr',
  dstMacAddr: 'dstmacaddr',
  srcIpAddr: 'srcipaddr',
  srcIpMask: 'srcipmask',
  dstIpAddr: 'dstipaddr',
  dstIpMask: 'dstipmask',
  srcIpFrom: 'srcipfrom',
  srcIpTo: 'srcipto',
  dstIpFrom: 'dstipfrom',
  dstIpTo: 'dstipto',
  srcPortStart: 'srcportstart',
  srcPortEnd: 'srcportend',
  dstPortStart: 'dstportstart',
  dstPortEnd: 'dstportend',
  ipProtocol: 'protocol',
  state: 'state',
  icmpType: 'type',
  icmpCode: 'code',
  comment: 'comment',
} as const satisfies Partial<Record<keyof FilterRule, string>>;

type MappedField = keyof typeof RULE_ATTRIBUTES;
const NUMERIC_FIELDS: readonly MappedField[] = [
  'srcIpMask',
  'dstIpMask',
  'srcPortStart',
  'srcPortEnd',
  'dstPortStart',
  'dstPortEnd',
  'icmpType',
  'icmpCode',
];
const RULE_KEYS = new Set<string>([
  'action',
  'direction',
  'priority',
  'statematch',
  'protocol',
  ...Object.keys(RULE_ATTRIBUTES),
]);

/** Longest comment libvirt stores (MAX_COMMENT_LENGTH). */
export const FILTER_COMMENT_MAX_LENGTH = 256;

// ---------------------------------------------------------------------------------------------
// Rule validation
// ---------------------------------------------------------------------------------------------

/** One problem of a rule: the field (relative to the rule) and what is wrong. */
export interface FilterRuleProblem {
  /** Rule field, e.g. `dstPortEnd`. */
  field: string;
  /** Plain-words explanation. */
  reason: string;
}

/**
 * Lists every problem of a rule, with the field it concerns. The shared validators throw; they are
 * run one by one here and their errors collected, so the wording is the same as elsewhere.
 */
export function checkFilterRule(value: unknown): FilterRuleProblem[] {
  const problems: FilterRuleProblem[] = [];
  const check = (fn: () => void): boolean => {
    try {
      fn();
      return true;
    } catch (e) {
      if (!(e instanceof XmlSpecError)) throw e;
      problems.push({ field: e.field, reason: e.reason });
      return false;
    }
  };
  const problem = (field: string, reason: string): void => void problems.push({ field, reason });

  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return [{ field: '', reason: `a rule must be an object, got ${describeValue(value)}` }];
  }
  const rule = value as Record<string, unknown>;
  for (const key of Object.keys(rule)) {
    if (!RULE_KEYS.has(key) && rule[key] !== undefined) problem(key, 'is not a rule setting');
  }
  check(() => assertOneOf(rule.action, ACTIONS, 'action'));
  check(() => assertOneOf(rule.direction, DIRECTIONS, 'direction'));
  if (rule.priority !== undefined)
    check(() => assertInteger(rule.priority, 'priority', { min: -1000, max: 1000 }));
  if (rule.statematch !== undefined) check(() => assertBoolean(rule.statematch, 'statematch'));
  if (rule.comment !== undefined) {
    check(() => assertText(rule.comment, 'comment', { maxLength: FILTER_COMMENT_MAX_LENGTH }));
  }
  if (!check(() => assertOneOf(rule.protocol, PROTOCOLS, 'protocol'))) return problems;
  const protocol = rule.protocol as FilterProtocol;
  const traits = FILTER_PROTOCOLS[protocol];
  const has = (k: string): boolean => rule[k] !== undefined;

  // MAC addresses.
  for (const key of ['srcMacAddr', 'dstMacAddr'] as const) {
    if (!has(key)) continue;
    if (key === 'dstMacAddr' && !traits.dstMac) {
      problem(
        key,
        `is not supported for protocol '${protocol}' (only mac, arp, ip and ipv6 rules match a destination MAC)`,
      );
      continue;
    }
    const v = rule[key];
    if (!(typeof v === 'string' && FILTER_VARIABLE.test(v)))
      check(() => assertMac(v, key, { anyKind: true }));
  }

  // IP addresses, masks and ranges.
  /** An IP field on a protocol without IP fields (mac, arp): a problem; true when so. */
  const refuseIpField = (key: string): boolean => {
    if (traits.family !== null) return false;
    problem(
      key,
      `protocol '${protocol}' does not match on IP addresses; use an ip/ipv6 or tcp/udp/icmp/all rule`,
    );
    return true;
  };
  const addrKeys = ['srcIpAddr', 'dstIpAddr', 'srcIpFrom', 'srcIpTo', 'dstIpFrom', 'dstIpTo'] as const;
  const literals: Partial<Record<(typeof addrKeys)[number], bigint>> = {};
  for (const key of addrKeys) {
    if (!has(key)) continue;
    if (refuseIpField(key)) continue;
    if (key.endsWith('From') || key.endsWith('To')) {
      if (!traits.ranges) {
        problem(
          key,
          `address ranges are not supported for protocol '${protocol}'; use tcp, udp, icmp or all (or their -ipv6 forms)`,
        );
        continue;
      }
    }
    const v = rule[key];
    if (typeof v === 'string' && FILTER_VARIABLE.test(v)) continue;
    if (typeof v !== 'string') {
      problem(key, `must be an IP address or a filter variable like $IP, got ${describeValue(v)}`);
      continue;
    }
    const ip = parseIp(v);
    if (!ip) {
      problem(key, `must be an IP address or a filter variable like $IP, got ${describeValue(v)}`);
    } else if (ip.family !== traits.family) {
      problem(
        key,
        `${v} is an IPv${ip.family} address but protocol '${protocol}' matches IPv${traits.family} traffic` +
          (traits.family === 4 ? " (use the '-ipv6' protocols or 'ipv6' for IPv6)" : ''),
      );
    } else {
      literals[key] = ip.value;
    }
  }
  for (const [mask, addr] of [
    ['srcIpMask', 'srcIpAddr'],
    ['dstIpMask', 'dstIpAddr'],
  ] as const) {
    if (!has(mask)) continue;
    if (refuseIpField(mask)) continue;
    if (!has(addr)) problem(mask, `needs ${addr}: a mask applies to an address`);
    check(() => assertInteger(rule[mask], mask, { min: 0, max: traits.family === 4 ? 32 : 128 }));
  }
  for (const [from, to] of [
    ['srcIpFrom', 'srcIpTo'],
    ['dstIpFrom', 'dstIpTo'],
  ] as const) {
    if (!traits.ranges) continue;
    if (has(from) !== has(to))
      problem(has(from) ? to : from, `an address range needs both ${from} and ${to}`);
    const a = literals[from];
    const b = literals[to];
    if (a !== undefined && b !== undefined && b < a) {
      problem(
        to,
        `${String(rule[to])} comes before ${from} (${String(rule[from])}): the address range is reversed`,
      );
    }
  }

  // Inner protocol of ip/ipv6 rules.
  if (has('ipProtocol')) {
    if (!traits.ipProtocol)
      problem('ipProtocol', `is only used with protocol 'ip' or 'ipv6', not '${protocol}'`);
    else check(() => assertOneOf(rule.ipProtocol, IP_PROTOCOLS, 'ipProtocol'));
  }

  // Ports.
  const portKeys = ['srcPortStart', 'srcPortEnd', 'dstPortStart', 'dstPortEnd'] as const;
  if (portKeys.some(has)) {
    const innerOk = !traits.ipProtocol || PORTED_IP_PROTOCOLS.includes(rule.ipProtocol as IpProtocol);
    if (!traits.ports) {
      problem(
        portKeys.find(has) ?? 'dstPortStart',
        `protocol '${protocol}' has no ports; ports apply to tcp, udp, tcp-ipv6 and udp-ipv6 rules`,
      );
    } else if (!innerOk) {
      problem(
        portKeys.find(has) ?? 'dstPortStart',
        `ports on an '${protocol}' rule need ipProtocol 'tcp', 'udp', 'sctp' or 'udplite'`,
      );
    } else {
      for (const [start, end] of [
        ['srcPortStart', 'srcPortEnd'],
        ['dstPortStart', 'dstPortEnd'],
      ] as const) {
        const okStart = has(start) && check(() => assertInteger(rule[start], start, { min: 1, max: 65535 }));
        const okEnd = has(end) && check(() => assertInteger(rule[end], end, { min: 1, max: 65535 }));
        if (has(end) && !has(start)) problem(end, `needs ${start}: a port range starts somewhere`);
        if (okStart && okEnd && (rule[end] as number) < (rule[start] as number)) {
          problem(
            end,
            `${String(rule[end])} is lower than ${start} (${String(rule[start])}): the port range is reversed`,
          );
        }
      }
    }
  }

  // ICMP.
  for (const key of ['icmpType', 'icmpCode'] as const) {
    if (!has(key)) continue;
    if (!traits.icmp) problem(key, `is only used with protocol 'icmp' or 'icmpv6', not '${protocol}'`);
    else check(() => assertInteger(rule[key], key, { min: 0, max: 255 }));
  }
  if (traits.icmp && has('icmpCode') && !has('icmpType'))
    problem('icmpCode', 'needs icmpType: a code refines a type');

  // Connection state.
  if (has('state')) {
    if (!traits.state) {
      problem(
        'state',
        traits.family === 6
          ? `is not accepted on '${protocol}' rules by libvirt's schema; libvirt already tracks connection state for IPv6 tcp/udp rules (statematch)`
          : `is only used with tcp, udp, icmp and all rules, not '${protocol}'`,
      );
    } else if (check(() => assertArray(rule.state, 'state'))) {
      const states = rule.state as unknown[];
      if (states.length === 0) problem('state', 'must list at least one state (omit it to match any state)');
      states.forEach((s, i) => check(() => assertOneOf(s, STATES, `state[${i}]`)));
      if (new Set(states).size !== states.length) problem('state', 'lists a state twice');
      if (states.includes('NONE') && states.length > 1)
        problem('state', "'NONE' cannot be combined with other states");
      if (rule.statematch === false) {
        problem(
          'state',
          'is set while statematch is false: statematch false turns connection-state matching off, so the two contradict each other',
        );
      }
    }
  }
  return problems;
}

/**
 * Explains each problem of a firewall rule in plain words (empty when the rule is valid):
 * reversed port or address ranges, ports on icmp/all, an IPv4 address in an IPv6 rule, priority out
 * of range, state with statematch false, unknown settings… Used by the firewall API to report all
 * problems at once; the builder throws on the first one.
 */
export function validateFilterRule(rule: FilterRule): string[] {
  return checkFilterRule(rule).map((p) => (p.field ? `${p.field}: ${p.reason}` : p.reason));
}

// ---------------------------------------------------------------------------------------------
// Filter validation and building
// ---------------------------------------------------------------------------------------------

const CHAIN_BASES = ['mac', 'ipv4', 'ipv6', 'arp', 'rarp'];

function validateChain(value: unknown, field: string): string {
  const chain = assertString(value, field);
  if (chain === 'root' || CHAIN_BASES.includes(chain)) return chain;
  const dash = chain.indexOf('-');
  const base = dash > 0 ? chain.slice(0, dash) : '';
  if (!CHAIN_BASES.includes(base) || !/^[A-Za-z0-9_.:-]+$/.test(chain.slice(dash + 1)) || chain.length > 12) {
    fail(
      field,
      `must be 'root', 'mac', 'ipv4', 'ipv6', 'arp', 'rarp' or one of those followed by '-' and a suffix (12 characters in all), got ${describeValue(chain)}`,
    );
  }
  return chain;
}

/** Validates a whole {@link FilterSpec}, throwing {@link XmlSpecError} on the first problem. */
export function validateFilterSpec(value: unknown): FilterSpec {
  const spec = assertRecord(value, 'spec');
  assertNwfilterName(spec.name, 'name');
  if (spec.uuid !== undefined) assertUuid(spec.uuid, 'uuid');
  if (spec.chain !== undefined) validateChain(spec.chain, 'chain');
  if (spec.priority !== undefined) assertInteger(spec.priority, 'priority', { min: -1000, max: 1000 });
  if (spec.filterrefs !== undefined) {
    assertArray(spec.filterrefs, 'filterrefs').forEach((r, i) => {
      const ref = validateFilterRef(r, `filterrefs[${i}]`);
      if (ref.filter === spec.name) fail(`filterrefs[${i}].filter`, 'a filter cannot reference itself');
    });
  }
  if (spec.rules !== undefined) {
    assertArray(spec.rules, 'rules').forEach((r, i) => {
      const first = checkFilterRule(r)[0];
      if (first)
        throw new XmlSpecError(first.field ? `rules[${i}].${first.field}` : `rules[${i}]`, first.reason);
    });
  }
  return spec as unknown as FilterSpec;
}

function addRule(parent: Element, rule: FilterRule): void {
  const el = addElement(parent, 'rule', {
    action: rule.action,
    direction: rule.direction,
    priority: rule.priority,
    statematch: rule.statematch === false ? 'false' : undefined,
  });
  const proto = addElement(el, rule.protocol);
  for (const [field, name] of Object.entries(RULE_ATTRIBUTES) as Array<[MappedField, string]>) {
    const v = rule[field];
    if (v === undefined) continue;
    proto.setAttribute(name, Array.isArray(v) ? v.join(',') : String(v));
  }
}

/**
 * Builds nwfilter XML for `virNWFilterDefineXML`. Every rule is checked with
 * {@link validateFilterRule}; the first problem is thrown as {@link XmlSpecError} with field
 * `rules[i].<field>`.
 */
export function buildNWFilterXml(spec: FilterSpec): string {
  validateFilterSpec(spec);
  const root = createRoot('filter');
  root.setAttribute('name', spec.name);
  root.setAttribute('chain', spec.chain ?? 'root');
  if (spec.priority !== undefined) root.setAttribute('priority', String(spec.priority));
  if (spec.uuid !== undefined) addElement(root, 'uuid', {}, spec.uuid.toLowerCase());
  for (const ref of spec.filterrefs ?? []) addFilterRef(root, ref);
  for (const rule of spec.rules ?? []) addRule(root, rule);
  return serialize(root);
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/** Reads a number as libvirt writes it (decimal or 0x-hex); `undefined` for variables and others. */
function readNumber(text: string): number | undefined {
  if (/^-?[0-9]+$/.test(text)) return Number(text);
  if (/^0x[0-9a-fA-F]+$/.test(text)) return parseInt(text, 16);
  return undefined;
}

function parseRule(el: Element): ParsedFilterRule {
  const rule: ParsedFilterRule = {
    action: required(attr(el, 'action'), 'rule action'),
    direction: required(attr(el, 'direction'), 'rule direction'),
  };
  const priority = intAttr(el, 'priority', 'rule priority');
  if (priority !== undefined) rule.priority = priority;
  const statematch = attr(el, 'statematch');
  if (statematch !== undefined) rule.statematch = !/^(false|0)$/i.test(statematch);
  const proto = children(el)[0];
  if (!proto) return rule;
  rule.protocol = proto.nodeName;
  const byAttr = new Map<string, MappedField>(
    Object.entries(RULE_ATTRIBUTES).map(([f, a]) => [a, f as MappedField]),
  );
  const extra: Record<string, string> = {};
  const target = rule as unknown as Record<string, unknown>;
  for (const a of Array.from(proto.attributes)) {
    const field = byAttr.get(a.name);
    const value = a.value;
    if (field === undefined) {
      extra[a.name] = value;
    } else if (field === 'state') {
      rule.state = value.split(',').map((s) => s.trim());
    } else if (NUMERIC_FIELDS.includes(field)) {
      const isMask = field === 'srcIpMask' || field === 'dstIpMask';
      const n = readNumber(value) ?? (isMask ? (netmaskToPrefix(value) ?? undefined) : undefined);
      if (n === undefined) extra[a.name] = value;
      else target[field] = n;
    } else {
      target[field] = value;
    }
  }
  if (Object.keys(extra).length > 0) rule.extra = extra;
  return rule;
}

/** Parses nwfilter XML as returned by libvirt into a {@link ParsedFilter}. */
export function parseNWFilterXml(xml: string): ParsedFilter {
  const root = parseRoot(xml, 'filter');
  const filter: ParsedFilter = {
    name: required(attr(root, 'name'), 'filter name'),
    filterrefs: children(root, 'filterref').map(parseFilterRef),
    rules: children(root, 'rule').map(parseRule),
  };
  const uuid = childText(root, 'uuid');
  const chain = attr(root, 'chain');
  const priority = intAttr(root, 'priority', 'filter priority');
  if (uuid !== undefined) filter.uuid = uuid;
  if (chain !== undefined) filter.chain = chain;
  if (priority !== undefined) filter.priority = priority;
  return filter;
}

// ---------------------------------------------------------------------------------------------
// Bindings
// ---------------------------------------------------------------------------------------------

/** Validates an {@link NWFilterBindingSpec}. */
export function validateNWFilterBindingSpec(value: unknown): NWFilterBindingSpec {
  const spec = assertRecord(value, 'spec');
  assertInterfaceName(spec.portDev, 'portDev');
  assertMac(spec.mac, 'mac');
  assertLibvirtName(spec.ownerName, 'ownerName');
  assertUuid(spec.ownerUUID, 'ownerUUID');
  assertNwfilterName(spec.filter, 'filter');
  if (spec.parameters !== undefined) validateFilterParameters(spec.parameters, 'parameters');
  if (spec.linkDev !== undefined) assertInterfaceName(spec.linkDev, 'linkDev');
  return spec as unknown as NWFilterBindingSpec;
}

/**
 * Builds nwfilter-binding XML for `virNWFilterBindingCreateXML`: binds `filter` to the tap
 * `portDev` of domain `ownerName`/`ownerUUID` with guest MAC `mac`.
 */
export function buildNWFilterBindingXml(spec: NWFilterBindingSpec): string {
  validateNWFilterBindingSpec(spec);
  const root = createRoot('filterbinding');
  const owner = addElement(root, 'owner');
  addElement(owner, 'name', {}, spec.ownerName);
  addElement(owner, 'uuid', {}, spec.ownerUUID.toLowerCase());
  addElement(root, 'portdev', { name: spec.portDev });
  if (spec.linkDev !== undefined) addElement(root, 'linkdev', { name: spec.linkDev });
  addElement(root, 'mac', { address: spec.mac.toLowerCase() });
  addFilterParameters(addElement(root, 'filterref', { filter: spec.filter }), spec.parameters);
  return serialize(root);
}

/** Parses nwfilter-binding XML (`virNWFilterBindingGetXMLDesc`). */
export function parseNWFilterBindingXml(xml: string): NWFilterBindingSpec {
  const root = parseRoot(xml, 'filterbinding');
  const owner = child(root, 'owner');
  const filterref = required(child(root, 'filterref'), 'binding <filterref>');
  const mac = required(attr(child(root, 'mac'), 'address'), 'binding mac address');
  const binding: NWFilterBindingSpec = {
    portDev: required(attr(child(root, 'portdev'), 'name'), 'binding portdev name'),
    mac,
    ownerName: required(owner ? childText(owner, 'name') : undefined, 'binding owner name'),
    ownerUUID: required(owner ? childText(owner, 'uuid') : undefined, 'binding owner uuid'),
    filter: required(attr(filterref, 'filter'), 'binding filter name'),
  };
  const params = parseFilterParameters(filterref);
  if (params) binding.parameters = params;
  const linkDev = attr(child(root, 'linkdev'), 'name');
  if (linkDev !== undefined) binding.linkDev = linkDev;
  return binding;
}
