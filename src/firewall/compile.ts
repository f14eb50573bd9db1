/**
 * Compiles vmflow's firewall model (department presets, user rules, service toggles, includes) into libvirt
 * nwfilter specs (FilterSpec of src/libvirt/xml). Pure: the DB activities call it to plan what to push, the
 * API to show a filter's derived rules. The filter tree and the priority bands are in
 * docs/networks-and-firewall.md.
 */
import { type FilterRule, type FilterSpec } from '../libvirt/xml';
import { libvirtNames, type FirewallPreset, type ServiceActionName } from '../workflows/shared';
import { SERVICES, findService } from './services';

/**
 * Priorities: libvirt sorts every rule of a filter tree by priority within its chain (lower first), across
 * the filters it references (checked on libvirt 9: a VM filter's service accept at 300 lands before the
 * department's drop at 1000 in the interface's FO/FI/HI iptables chains).
 */
export const PRIORITY = { established: -1000, service: 300, userDefault: 500, presetDefault: 1000 } as const;

/**
 * Priority of what a preset allows before its default drop (ALLOW_OUTBOUND's outbound accept, ALLOW_INTERNET's
 * web and DNS): after every user rule (so a user drop still closes it), before the drop at 1000.
 */
export const PRESET_ALLOW_PRIORITY = 999;

/** libvirt's built-in filters every department filter references. */
export const BUILTIN_FILTERS = {
  /** No MAC, IP or ARP spoofing (and no other L2 traffic). */
  cleanTraffic: 'clean-traffic',
  /** DHCP at the ebtables level. */
  dhcp: 'allow-dhcp',
} as const;

type Rule = FilterRule;

const ESTABLISHED: Rule = {
  action: 'accept',
  direction: 'inout',
  priority: PRIORITY.established,
  protocol: 'all',
  state: ['ESTABLISHED', 'RELATED'],
  comment: 'vmflow: established',
};

/**
 * DHCP, also in iptables (the ebtables accepts of `allow-dhcp` do not exempt a packet from the iptables
 * chains), so that a guest gets its lease whatever the preset and the user rules say.
 */
const DHCP: Rule[] = [
  {
    action: 'accept',
    direction: 'out',
    priority: PRIORITY.established,
    protocol: 'udp',
    srcPortStart: 68,
    dstPortStart: 67,
    comment: 'vmflow: dhcp',
  },
  {
    action: 'accept',
    direction: 'in',
    priority: PRIORITY.established,
    protocol: 'udp',
    srcPortStart: 67,
    dstPortStart: 68,
    comment: 'vmflow: dhcp',
  },
];

const drop = (direction: 'in' | 'inout', comment: string): Rule[] => [
  { action: 'drop', direction, priority: PRIORITY.presetDefault, protocol: 'all', comment },
  { action: 'drop', direction, priority: PRIORITY.presetDefault, protocol: 'all-ipv6', comment },
];

/** Accepts outbound to `ports` (both address families). */
function allowOut(ports: Array<{ protocol: 'tcp' | 'udp'; port: number }>, comment: string): Rule[] {
  return ports.flatMap(({ protocol, port }) =>
    (protocol === 'tcp' ? (['tcp', 'tcp-ipv6'] as const) : (['udp', 'udp-ipv6'] as const)).map((p): Rule => ({
      action: 'accept',
      direction: 'out',
      priority: PRESET_ALLOW_PRIORITY,
      protocol: p,
      dstPortStart: port,
      comment,
    })),
  );
}

/** Web and DNS: what ALLOW_INTERNET lets out. */
export const INTERNET_PORTS: ReadonlyArray<{ protocol: 'tcp' | 'udp'; port: number }> = [
  { protocol: 'tcp', port: 80 },
  { protocol: 'tcp', port: 443 },
  { protocol: 'udp', port: 443 },
  { protocol: 'udp', port: 53 },
  { protocol: 'tcp', port: 53 },
];

/**
 * The rules of a department preset: established/related accepted first (−1000) and DHCP in every preset;
 * then ALLOW_ALL drops nothing, BLOCK_ALL drops everything else in and out, ALLOW_OUTBOUND drops new inbound
 * and lets anything out, ALLOW_INTERNET drops new inbound and lets out only web and DNS (IPv4 and IPv6).
 * The outbound accepts also carry the replies in (libvirt's connection tracking), which matters for IPv6:
 * libvirt's schema takes no `state` on IPv6 rules.
 */
export function presetRules(policy: FirewallPreset): FilterRule[] {
  const base = [ESTABLISHED, ...DHCP];
  switch (policy) {
    case 'ALLOW_ALL':
      return clone(base);
    case 'BLOCK_ALL':
      return clone([...base, ...drop('inout', 'vmflow: BLOCK_ALL')]);
    case 'ALLOW_OUTBOUND':
      return clone([
        ...base,
        ...(['all', 'all-ipv6'] as const).map((protocol): Rule => ({
          action: 'accept',
          direction: 'out',
          priority: PRESET_ALLOW_PRIORITY,
          protocol,
          comment: 'vmflow: ALLOW_OUTBOUND',
        })),
        ...drop('in', 'vmflow: ALLOW_OUTBOUND'),
      ]);
    case 'ALLOW_INTERNET':
      return clone([
        ...base,
        ...allowOut([...INTERNET_PORTS], 'vmflow: ALLOW_INTERNET'),
        ...drop('inout', 'vmflow: ALLOW_INTERNET'),
      ]);
    default:
      throw new Error(`unknown firewall preset ${String(policy)}`);
  }
}

function clone(rules: Rule[]): Rule[] {
  return rules.map((r) => ({ ...r, ...(r.state ? { state: [...r.state] } : {}) }));
}

/** The effective setting of one (service, action) of the catalogue. */
export interface EffectiveService {
  serviceId: string;
  action: 'USE' | 'PROVIDE';
  enabled: boolean;
  /** Where the setting comes from: the VM's own row, its department's, or the default (off). */
  source: 'vm' | 'department' | 'default';
}

interface Setting {
  serviceId: string;
  action: 'USE' | 'PROVIDE';
  enabled: boolean;
}

const ACTIONS: readonly ServiceActionName[] = ['USE', 'PROVIDE'];

/**
 * The effective setting of every (service, action) of the catalogue, in catalogue order (USE before
 * PROVIDE): the VM's row, else the department's row, else off.
 */
export function effectiveServices(vm: Setting[], department: Setting[]): EffectiveService[] {
  const key = (s: { serviceId: string; action: string }) => `${s.serviceId}\u0000${s.action}`;
  const own = new Map(vm.map((s) => [key(s), s.enabled]));
  const dept = new Map(department.map((s) => [key(s), s.enabled]));
  return SERVICES.flatMap((svc) =>
    ACTIONS.map((action): EffectiveService => {
      const k = key({ serviceId: svc.id, action });
      if (own.has(k)) return { serviceId: svc.id, action, enabled: own.get(k)!, source: 'vm' };
      if (dept.has(k)) return { serviceId: svc.id, action, enabled: dept.get(k)!, source: 'department' };
      return { serviceId: svc.id, action, enabled: false, source: 'default' };
    }),
  );
}

const CATALOGUE_ORDER = new Map(SERVICES.map((s, i) => [s.id, i]));

/**
 * The rules of enabled services, at {@link PRIORITY}.service: USE accepts outbound to the service's ports,
 * PROVIDE inbound to them (libvirt's connection tracking lets the replies through), IPv4 and IPv6. Ordered
 * by catalogue, then USE before PROVIDE, whatever the input order, so the compiled filter is stable. Ids
 * no longer in the catalogue are ignored.
 */
export function serviceRules(enabled: Array<{ serviceId: string; action: 'USE' | 'PROVIDE' }>): FilterRule[] {
  const unique = new Map<string, { serviceId: string; action: 'USE' | 'PROVIDE' }>();
  for (const e of enabled) if (findService(e.serviceId)) unique.set(`${e.serviceId}:${e.action}`, e);
  const sorted = [...unique.values()].sort(
    (a, b) =>
      CATALOGUE_ORDER.get(a.serviceId)! - CATALOGUE_ORDER.get(b.serviceId)! ||
      ACTIONS.indexOf(a.action) - ACTIONS.indexOf(b.action),
  );
  return sorted.flatMap(({ serviceId, action }) =>
    findService(serviceId)!.ports.flatMap(({ protocol, port, endPort }) =>
      (protocol === 'tcp' ? (['tcp', 'tcp-ipv6'] as const) : (['udp', 'udp-ipv6'] as const)).map(
        (p): Rule => ({
          action: 'accept',
          direction: action === 'USE' ? 'out' : 'in',
          priority: PRIORITY.service,
          protocol: p,
          dstPortStart: port,
          ...(endPort !== undefined ? { dstPortEnd: endPort } : {}),
          comment: `vmflow: ${serviceId} ${action}`,
        }),
      ),
    ),
  );
}

const refs = (names: string[]) => names.map((filter) => ({ filter }));

/**
 * A department's filter: libvirt's `clean-traffic` and `allow-dhcp`, the custom filters it includes, the
 * preset's rules and the department's own rules. `includes` are libvirt names.
 */
export function departmentFilterSpec(i: {
  departmentId: string;
  policy: FirewallPreset;
  rules: FilterRule[];
  includes: string[];
}): FilterSpec {
  return {
    name: libvirtNames.departmentFilter(i.departmentId),
    chain: 'root',
    filterrefs: refs([BUILTIN_FILTERS.cleanTraffic, BUILTIN_FILTERS.dhcp, ...i.includes]),
    rules: [...presetRules(i.policy), ...clone(i.rules)],
  };
}

/**
 * A VM's filter (the one filterref of each of its NICs): its department's filter first (the department
 * policy always applies), the custom filters it includes, its service rules and its own rules.
 */
export function vmFilterSpec(i: {
  machineId: string;
  departmentId: string;
  rules: FilterRule[];
  services: Array<{ serviceId: string; action: 'USE' | 'PROVIDE' }>;
  includes: string[];
}): FilterSpec {
  return {
    name: libvirtNames.vmFilter(i.machineId),
    chain: 'root',
    filterrefs: refs([libvirtNames.departmentFilter(i.departmentId), ...i.includes]),
    rules: [...serviceRules(i.services), ...clone(i.rules)],
  };
}

/** A custom (reusable) filter: its rules and the custom filters it includes. */
export function customFilterSpec(i: {
  filterId: string;
  rules: FilterRule[];
  includes: string[];
}): FilterSpec {
  return {
    name: libvirtNames.customFilter(i.filterId),
    chain: 'root',
    filterrefs: refs(i.includes),
    rules: clone(i.rules),
  };
}
