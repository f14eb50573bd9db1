/**
 * Validation of virtual networks, pure: the API runs it before anything starts (400 naming each field,
 * nothing written), and the network workflows run it again in their first step, against the host's real
 * networks. libvirt's own rules (what each mode needs, DHCP inside the subnet and clear of the gateway,
 * VLAN only on Open vSwitch bridges, bandwidth figures) live in `validateNetworkSpec`
 * (src/libvirt/xml/network.ts); this module adds the request-level rules (a network address, the
 * gateway inside the subnet, both ends of a range, no overlap with other networks, unique bridges) and
 * maps libvirt's field names back to the request's.
 */
import {
  XmlSpecError,
  assertInterfaceName,
  assertIp,
  assertText,
  assertVlanTag,
  cidrOverlaps,
  formatCidr,
  formatIp,
  makeCidr,
  parseCidr,
  parseIp,
  validateBandwidth,
  validateNetworkSpec,
  type Bandwidth,
  type Cidr,
  type NetworkSpec,
} from '../libvirt/xml';
import { type HostCapabilities } from '../entities/host';
import {
  LIBVIRT_PREFIXES,
  type NetworkBandwidth,
  type NetworkModeName,
  type StaticHost,
  type NetworkChange,
} from '../workflows/shared';

/** Longest network name (the `network.name` column). */
export const NETWORK_NAME_MAX = 64;
/** Longest description. */
export const NETWORK_DESCRIPTION_MAX = 500;
/** Most static DHCP leases a network may hold. */
export const STATIC_HOSTS_MAX = 1024;
/** The modes, in the order the API documents them. */
export const NETWORK_MODES = ['nat', 'route', 'bridge', 'isolated'] as const;

/**
 * One thing wrong with a network request. `kind` says how callers answer it: `invalid` → 400 (the API) /
 * `ValidationError` (a workflow); `taken` → 409 (a name or bridge another network holds); `unsupported` →
 * 422 (the host cannot do it, e.g. QoS without the kernel's qdiscs).
 */
export interface NetworkProblem {
  /** The request field (`cidr`, `dhcpEnd`, `staticHosts[2].mac`, `bandwidth.inbound.peak`). */
  field: string;
  message: string;
  kind: 'invalid' | 'taken' | 'unsupported';
}

/** What a caller asks for (createNetwork's fields, before defaults). */
export interface NetworkRequest {
  name: string;
  description?: string | null;
  mode: NetworkModeName;
  cidr?: string | null;
  gateway?: string | null;
  dhcpStart?: string | null;
  dhcpEnd?: string | null;
  staticHosts?: StaticHost[] | null;
  /** bridge mode only: the existing host bridge. */
  bridgeName?: string | null;
  forwardDev?: string | null;
  vlanId?: number | null;
  bandwidth?: NetworkBandwidth | null;
}

/** A validated network with its defaults filled in (gateway) and its subnet normalised (`10.1.2.0/24`). */
export interface NetworkDesign {
  mode: NetworkModeName;
  cidr: string | null;
  gateway: string | null;
  dhcpStart: string | null;
  dhcpEnd: string | null;
  staticHosts: StaticHost[] | null;
  /** The host bridge in bridge mode; null otherwise (vmflow generates it from the id). */
  bridgeName: string | null;
  forwardDev: string | null;
  vlanId: number | null;
  bandwidth: Bandwidth | null;
}

/** Another network a new or changed one must not collide with (a vmflow row or a libvirt network). */
export interface ExistingNetwork {
  /** How messages name it: `network "lab"`, `libvirt network vmflow-default`. */
  label: string;
  /** Its subnets (`10.250.0.0/24`). */
  cidrs: string[];
  bridgeName?: string | null;
}

/** The result of {@link designNetwork}: the design when there is no problem. */
export type DesignResult = { ok: true; design: NetworkDesign } | { ok: false; problems: NetworkProblem[] };

const PLACEHOLDER_NAME = 'vmflow-net-validate';
const PLACEHOLDER_BRIDGE = `${LIBVIRT_PREFIXES.bridge}0000000000`;

/** Collects problems; `attempt` runs one check and records its XmlSpecError instead of throwing. */
class Problems {
  readonly list: NetworkProblem[] = [];
  has(field: string): boolean {
    return this.list.some((p) => p.field === field || p.field.startsWith(`${field}.`));
  }
  add(field: string, message: string, kind: NetworkProblem['kind'] = 'invalid'): void {
    if (!this.list.some((p) => p.field === field)) this.list.push({ field, message, kind });
  }
  attempt<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      if (!(e instanceof XmlSpecError)) throw e;
      this.add(e.field, e.reason);
      return undefined;
    }
  }
}

const given = <T>(v: T | null | undefined): v is T => v !== undefined && v !== null;

/** The first usable host address of an IPv4 subnet (the default gateway). */
export function firstHost(cidr: Cidr): string {
  return formatIp({ family: cidr.family, value: cidr.network + 1n });
}

/**
 * Validates a request and fills in its defaults. Every field that is wrong is reported (not just the
 * first), with the request's field names. Conflicts with other networks are {@link findConflicts}'
 * business; this looks at the request alone.
 */
export function designNetwork(req: NetworkRequest): DesignResult {
  const p = new Problems();
  p.attempt(() => {
    const name = assertText(req.name, 'name', { maxLength: NETWORK_NAME_MAX });
    if (!name.trim()) throw new XmlSpecError('name', 'must not be blank');
  });
  if (given(req.description))
    p.attempt(() => assertText(req.description, 'description', { maxLength: NETWORK_DESCRIPTION_MAX }));
  const mode = (NETWORK_MODES as readonly string[]).includes(req.mode) ? req.mode : null;
  if (!mode) p.add('mode', `must be one of ${NETWORK_MODES.map((m) => `'${m}'`).join(', ')}`);

  // The subnet: well formed, IPv4, written as its network address.
  let cidr: Cidr | undefined;
  if (given(req.cidr)) {
    cidr = p.attempt(() => parseCidr(req.cidr as string, 'cidr'));
    if (cidr && cidr.family !== 4) {
      p.add('cidr', 'must be an IPv4 subnet (vmflow networks are IPv4)');
      cidr = undefined;
    } else if (cidr && cidr.address !== cidr.network) {
      p.add('cidr', `must be the subnet's network address: did you mean ${formatCidr(cidr)}?`);
      cidr = undefined;
    }
  }
  const needsCidr = (field: string, what: string) => {
    if (!given(req.cidr)) p.add(field, `${what} needs a subnet: give cidr too`);
  };

  let gateway: string | undefined;
  if (given(req.gateway)) {
    needsCidr('gateway', 'a gateway');
    const ip = p.attempt(() => assertIp(req.gateway, 'gateway', 4));
    if (ip && cidr && (ip.value < cidr.network || ip.value > cidr.last))
      p.add('gateway', `${String(req.gateway)} is outside the subnet ${formatCidr(cidr)}`);
    if (ip) gateway = req.gateway as string;
  } else if (cidr) {
    gateway = firstHost(cidr);
  }

  const hasRange = given(req.dhcpStart) || given(req.dhcpEnd);
  if (hasRange) {
    needsCidr(given(req.dhcpStart) ? 'dhcpStart' : 'dhcpEnd', 'a DHCP range');
    if (!given(req.dhcpStart)) p.add('dhcpStart', 'is required with dhcpEnd (a range has two ends)');
    if (!given(req.dhcpEnd)) p.add('dhcpEnd', 'is required with dhcpStart (a range has two ends)');
    if (given(req.dhcpStart)) p.attempt(() => assertIp(req.dhcpStart, 'dhcpStart', 4));
    if (given(req.dhcpEnd)) p.attempt(() => assertIp(req.dhcpEnd, 'dhcpEnd', 4));
  }
  const hosts = given(req.staticHosts) ? req.staticHosts : null;
  if (hosts) {
    if (!Array.isArray(hosts)) p.add('staticHosts', 'must be an array');
    else if (hosts.length > STATIC_HOSTS_MAX)
      p.add('staticHosts', `must hold at most ${STATIC_HOSTS_MAX} leases, got ${hosts.length}`);
    else if (hosts.length && !hasRange)
      p.add('staticHosts', 'static leases are served by DHCP: give dhcpStart and dhcpEnd too');
    else
      hosts.forEach((h, i) => {
        if (typeof h === 'object' && h !== null && (h as Partial<StaticHost>).mac === undefined)
          p.add(`staticHosts[${i}].mac`, 'is required: a static lease binds a MAC address to an IP address');
      });
  }

  if (given(req.bridgeName)) {
    if (mode && mode !== 'bridge') {
      p.add('bridgeName', `is chosen by vmflow in '${mode}' mode; give it only in 'bridge' mode`);
    } else {
      const br = p.attempt(() => assertInterfaceName(req.bridgeName, 'bridgeName'));
      if (br?.startsWith(LIBVIRT_PREFIXES.bridge))
        p.add('bridgeName', `names starting with '${LIBVIRT_PREFIXES.bridge}' are vmflow's own bridges`);
    }
  }
  if (given(req.forwardDev)) p.attempt(() => assertInterfaceName(req.forwardDev, 'forwardDev'));
  if (given(req.vlanId)) p.attempt(() => assertVlanTag(req.vlanId, 'vlanId'));
  if (given(req.bandwidth)) p.attempt(() => validateBandwidth(req.bandwidth, 'bandwidth', false));

  if (mode) checkWithLibvirtRules(p, req, mode, cidr, gateway);
  if (p.list.length || !mode) return { ok: false, problems: p.list };
  return {
    ok: true,
    design: {
      mode,
      cidr: cidr ? formatCidr(cidr) : null,
      gateway: gateway ?? null,
      dhcpStart: hasRange ? (req.dhcpStart as string) : null,
      dhcpEnd: hasRange ? (req.dhcpEnd as string) : null,
      staticHosts: hosts && hosts.length ? hosts.map(normaliseHost) : null,
      bridgeName: mode === 'bridge' ? (req.bridgeName as string) : null,
      forwardDev: req.forwardDev ?? null,
      vlanId: req.vlanId ?? null,
      bandwidth: (req.bandwidth as Bandwidth | null | undefined) ?? null,
    },
  };
}

function normaliseHost(h: StaticHost): StaticHost {
  return {
    mac: h.mac.toLowerCase(),
    ip: h.ip,
    ...(h.name !== undefined ? { name: h.name } : {}),
  };
}

/**
 * Runs libvirt's rules (`validateNetworkSpec`) over the spec the request implies. It stops at its first
 * problem, so each problem found is recorded under the request's field name, the offending part dropped,
 * and the rest checked again, until the spec passes: every libvirt-level problem is reported.
 */
function checkWithLibvirtRules(
  p: Problems,
  req: NetworkRequest,
  mode: NetworkModeName,
  cidr: Cidr | undefined,
  gateway: string | undefined,
): void {
  const hostIndex: number[] = [];
  const spec: NetworkSpec = { name: PLACEHOLDER_NAME, mode };
  const set = <K extends keyof NetworkSpec>(k: K, v: NetworkSpec[K] | null | undefined, skip: string) => {
    if (given(v) && !p.has(skip)) spec[k] = v;
  };
  if (mode === 'bridge') set('bridgeName', req.bridgeName, 'bridgeName');
  else spec.bridgeName = PLACEHOLDER_BRIDGE;
  set('forwardDev', req.forwardDev, 'forwardDev');
  set('bandwidth', req.bandwidth as Bandwidth | null | undefined, 'bandwidth');
  if (given(req.vlanId) && !p.has('vlanId')) {
    spec.vlanTag = req.vlanId;
    // A network-wide VLAN tag means the named bridge is an Open vSwitch bridge (libvirt's only case).
    if (mode === 'bridge') spec.virtualPort = 'openvswitch';
  }
  if (given(req.cidr) && mode === 'bridge') {
    spec.ip = { address: '192.0.2.1', prefix: 24 }; // only so libvirt's rule names the mode's ban
  } else if (cidr) {
    // A gateway already refused is replaced by the default, so the rest of the block is still checked.
    spec.ip = { address: gateway && !p.has('gateway') ? gateway : firstHost(cidr), prefix: cidr.prefix };
    if (given(req.dhcpStart) && given(req.dhcpEnd) && !p.has('dhcpStart') && !p.has('dhcpEnd')) {
      const hosts: StaticHost[] = [];
      const all = Array.isArray(req.staticHosts) && !p.has('staticHosts') ? req.staticHosts : [];
      all.forEach((h, i) => {
        if (p.has(`staticHosts[${i}]`)) return;
        hosts.push(h);
        hostIndex.push(i);
      });
      spec.ip.dhcp = { start: req.dhcpStart, end: req.dhcpEnd, ...(hosts.length ? { hosts } : {}) };
    }
  }
  // Without a subnet in 'nat'/'route' mode, libvirt's rule itself says why the mode needs one.
  for (let round = 0; round < 64; round++) {
    try {
      validateNetworkSpec(spec);
      return;
    } catch (e) {
      if (!(e instanceof XmlSpecError)) throw e;
      const dropped = drop(spec, e.field, hostIndex);
      const field = requestField(e.field, req, dropped.hostIndex);
      p.add(field, e.reason.replace(/ip\.dhcp\.hosts/g, 'staticHosts'));
      if (!dropped.progress) return;
    }
  }
}

/** DHCP blocks whose range is a stand-in put there by {@link drop}. */
const PLACEHOLDER_RANGES = new WeakSet<object>();

/** A usable host address of the subnet that is not `gateway` (null when there is none). */
function spareAddress(gateway: string, prefix: number): string | null {
  const gw = parseIp(gateway);
  if (!gw || gw.family !== 4 || prefix > 30) return null;
  const cidr = makeCidr(gw, prefix);
  const pick = cidr.network + 1n === gw.value ? cidr.network + 2n : cidr.network + 1n;
  return pick < cidr.last ? formatIp({ family: 4, value: pick }) : null;
}

/** Removes the part of `spec` a libvirt rule refused, so the next round checks the rest. */
function drop(
  spec: NetworkSpec,
  field: string,
  hostIndex: number[],
): { progress: boolean; hostIndex?: number } {
  const host = /^ip\.dhcp\.hosts\[(\d+)\]/.exec(field);
  if (host && spec.ip?.dhcp?.hosts) {
    const i = Number(host[1]);
    const original = hostIndex[i];
    spec.ip.dhcp.hosts.splice(i, 1);
    hostIndex.splice(i, 1);
    if (!spec.ip.dhcp.hosts.length) delete spec.ip.dhcp.hosts;
    return { progress: true, hostIndex: original };
  }
  if (field.startsWith('ip.dhcp') && spec.ip?.dhcp) {
    // A refused range is swapped for one known to pass, so the leases are still checked; if even that
    // fails (a subnet with no room for it), the DHCP block goes.
    const spare = spareAddress(spec.ip.address, spec.ip.prefix ?? 32);
    if (spare && !PLACEHOLDER_RANGES.has(spec.ip.dhcp)) {
      spec.ip.dhcp = { ...spec.ip.dhcp, start: spare, end: spare };
      PLACEHOLDER_RANGES.add(spec.ip.dhcp);
    } else delete spec.ip.dhcp;
    return { progress: true };
  }
  if ((field === 'ip' || field.startsWith('ip.')) && spec.ip) {
    delete spec.ip;
    return { progress: spec.mode !== 'nat' && spec.mode !== 'route' };
  }
  if (field === 'vlanTag' || field === 'virtualPort') {
    const had = spec.vlanTag !== undefined || spec.virtualPort !== undefined;
    delete spec.vlanTag;
    delete spec.virtualPort;
    return { progress: had };
  }
  if (field.startsWith('bandwidth') && spec.bandwidth) {
    delete spec.bandwidth;
    return { progress: true };
  }
  if (field === 'forwardDev' && spec.forwardDev) {
    delete spec.forwardDev;
    return { progress: true };
  }
  if (field === 'bridgeName') {
    const had = spec.bridgeName;
    spec.bridgeName = PLACEHOLDER_BRIDGE;
    return { progress: had !== PLACEHOLDER_BRIDGE };
  }
  return { progress: false };
}

/** The request field a `NetworkSpec` field stands for. */
function requestField(field: string, req: NetworkRequest, originalHost: number | undefined): string {
  const host = /^ip\.dhcp\.hosts\[\d+\](.*)$/.exec(field);
  if (host) return `staticHosts[${originalHost ?? 0}]${host[1]}`;
  if (field === 'ip.dhcp.start' || field === 'ip.dhcp') return 'dhcpStart';
  if (field === 'ip.dhcp.end') return 'dhcpEnd';
  if (field.startsWith('ip.dhcp.hosts')) return 'staticHosts';
  if (field === 'ip.address') return given(req.gateway) ? 'gateway' : 'cidr';
  if (field === 'ip' || field.startsWith('ip.')) return 'cidr';
  if (field === 'vlanTag' || field === 'virtualPort') return 'vlanId';
  return field;
}

/**
 * Problems of a design against other networks on the same host: a subnet that overlaps another
 * network's (`invalid`, field cidr), a bridge another network uses (`taken`, field bridgeName).
 */
export function findConflicts(
  design: Pick<NetworkDesign, 'cidr'> & { bridgeName: string | null },
  others: ExistingNetwork[],
): NetworkProblem[] {
  const out: NetworkProblem[] = [];
  for (const o of others) {
    const hit = design.cidr ? o.cidrs.find((c) => cidrOverlaps(design.cidr!, c)) : undefined;
    if (hit && !out.some((p) => p.field === 'cidr'))
      out.push({ field: 'cidr', message: `${design.cidr} overlaps ${o.label} (${hit})`, kind: 'invalid' });
    if (design.bridgeName && o.bridgeName === design.bridgeName && !out.some((p) => p.field === 'bridgeName'))
      out.push({
        field: 'bridgeName',
        message: `bridge ${design.bridgeName} is already used by ${o.label}`,
        kind: 'taken',
      });
  }
  return out;
}

/** The problem of asking for bandwidth on a host whose kernel cannot shape traffic (null: fine). */
export function qosProblem(
  bandwidth: Bandwidth | NetworkBandwidth | null | undefined,
  capabilities: HostCapabilities | null | undefined,
): NetworkProblem | null {
  if (!given(bandwidth)) return null;
  if (capabilities?.qos) return null;
  const why = capabilities
    ? (capabilities.qosReason ?? 'the host cannot apply bandwidth limits')
    : "the host's QoS support has not been probed yet (its worker has not registered it)";
  return {
    field: 'bandwidth',
    message: `bandwidth limits cannot be applied on this host: ${why}`,
    kind: 'unsupported',
  };
}

/** The subnets of a libvirt network's IP blocks, normalised (`10.250.0.0/24`). */
export function subnetsOf(ips: Array<{ address: string; prefix: number }>): string[] {
  const out: string[] = [];
  for (const ip of ips) {
    try {
      out.push(formatCidr(makeCidr(assertIp(ip.address, 'address'), ip.prefix)));
    } catch {
      // An address libvirt accepted but we cannot read is no subnet to compare with.
    }
  }
  return out;
}

/** What an update asks to change (`null` removes DHCP range / bandwidth): one definition, in shared.ts. */
export type { NetworkChange } from '../workflows/shared';

/** The fields an update may change, in the order requests, inputs and plans carry them. */
export const NETWORK_CHANGE_FIELDS = [
  'dhcpStart',
  'dhcpEnd',
  'staticHosts',
  'bandwidth',
  'cidr',
  'gateway',
] as const;

/** The optional fields a create request may give, in the order the workflow input carries them. */
export const NETWORK_CREATE_FIELDS = [
  'description',
  'cidr',
  'gateway',
  'dhcpStart',
  'dhcpEnd',
  'staticHosts',
  'bridgeName',
  'forwardDev',
  'vlanId',
  'bandwidth',
] as const;

/**
 * The `fields` of `source` that are given (not `undefined`), in the order of `fields`: an absent field
 * keeps its value, `null` clears it.
 */
export function givenFields<T extends object, K extends keyof T>(
  source: T,
  fields: readonly K[],
): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const f of fields) if (source[f] !== undefined) out[f] = source[f];
  return out;
}

/** How an update is applied: the live `virNetworkUpdate` edits, or a redefine (and why). */
export interface UpdatePlan {
  next: NetworkDesign;
  /** Non-empty: the network must be redefined (and restarted if running) for these reasons. */
  redefine: string[];
  /** The DHCP range before and after (live edits), when it changes. */
  range: { from: { start: string; end: string } | null; to: { start: string; end: string } | null } | null;
  /** Static leases to delete (exactly as they are now) and to add, live. */
  removeHosts: StaticHost[];
  addHosts: StaticHost[];
}

/** The design of an existing network (its row's fields). */
export type CurrentNetwork = NetworkDesign & { name: string; description?: string | null };

const sameHost = (a: StaticHost, b: StaticHost) =>
  a.mac.toLowerCase() === b.mac.toLowerCase() && a.ip === b.ip && (a.name ?? '') === (b.name ?? '');

/**
 * Validates an update against the network it changes: the merged network must be valid as a whole (a
 * new subnet needs a DHCP range and leases inside it). Returns what to apply live and what needs a
 * redefine, or the problems. A changed subnet without a gateway gets the new subnet's first host.
 */
export function planNetworkUpdate(
  current: CurrentNetwork,
  change: NetworkChange,
): { ok: true; plan: UpdatePlan } | { ok: false; problems: NetworkProblem[] } {
  const p = new Problems();
  const touchesRange = change.dhcpStart !== undefined || change.dhcpEnd !== undefined;
  if (touchesRange && (change.dhcpStart === null) !== (change.dhcpEnd === null))
    p.add(change.dhcpStart === null ? 'dhcpEnd' : 'dhcpStart', 'set both ends of the range, or both to null');
  if (touchesRange && (change.dhcpStart === undefined || change.dhcpEnd === undefined))
    p.add(change.dhcpStart === undefined ? 'dhcpStart' : 'dhcpEnd', 'give both ends of the range');
  if (current.mode === 'bridge' && (change.cidr !== undefined || change.gateway !== undefined))
    p.add(change.cidr !== undefined ? 'cidr' : 'gateway', "a 'bridge' mode network has no subnet of its own");
  if (p.list.length) return { ok: false, problems: p.list };
  const cidrChanged = change.cidr !== undefined && change.cidr !== current.cidr;
  const merged: NetworkRequest = {
    name: current.name,
    mode: current.mode,
    cidr: change.cidr ?? current.cidr,
    gateway: change.gateway ?? (cidrChanged ? null : current.gateway),
    dhcpStart: touchesRange ? change.dhcpStart : current.dhcpStart,
    dhcpEnd: touchesRange ? change.dhcpEnd : current.dhcpEnd,
    staticHosts: change.staticHosts ?? current.staticHosts,
    bridgeName: current.mode === 'bridge' ? current.bridgeName : null,
    forwardDev: current.forwardDev,
    vlanId: current.vlanId,
    bandwidth: change.bandwidth === undefined ? current.bandwidth : change.bandwidth,
  };
  const designed = designNetwork(merged);
  if (!designed.ok) return designed;
  const next = designed.design;
  const redefine: string[] = [];
  if (next.cidr !== current.cidr) redefine.push('subnet');
  if (next.gateway !== current.gateway) redefine.push('gateway');
  if (JSON.stringify(next.bandwidth ?? null) !== JSON.stringify(current.bandwidth ?? null))
    redefine.push('bandwidth');
  const was =
    current.dhcpStart && current.dhcpEnd ? { start: current.dhcpStart, end: current.dhcpEnd } : null;
  const now = next.dhcpStart && next.dhcpEnd ? { start: next.dhcpStart, end: next.dhcpEnd } : null;
  const rangeChanged = JSON.stringify(was) !== JSON.stringify(now);
  const before = current.staticHosts ?? [];
  const after = next.staticHosts ?? [];
  return {
    ok: true,
    plan: {
      next,
      redefine,
      range: rangeChanged ? { from: was, to: now } : null,
      removeHosts: before.filter((h) => !after.some((n) => sameHost(h, n))),
      addHosts: after.filter((n) => !before.some((h) => sameHost(h, n))),
    },
  };
}

/** The libvirt spec of a designed network (its XML comes from `buildNetworkXml`). */
export function networkSpecOf(
  design: NetworkDesign,
  ids: { networkId: string; internalName: string; bridgeName: string },
): NetworkSpec {
  const spec: NetworkSpec = {
    name: ids.internalName,
    // The network id is the libvirt UUID: a network with our name but another UUID is not ours.
    uuid: ids.networkId,
    mode: design.mode,
    bridgeName: ids.bridgeName,
  };
  if (design.forwardDev) spec.forwardDev = design.forwardDev;
  if (design.cidr && design.gateway) {
    const prefix = Number(design.cidr.split('/')[1]);
    spec.ip = { address: design.gateway, prefix };
    if (design.dhcpStart && design.dhcpEnd) {
      spec.ip.dhcp = {
        start: design.dhcpStart,
        end: design.dhcpEnd,
        ...(design.staticHosts?.length ? { hosts: design.staticHosts } : {}),
      };
    }
  }
  if (design.vlanId !== null) {
    spec.vlanTag = design.vlanId;
    spec.virtualPort = 'openvswitch';
  }
  if (design.bandwidth) spec.bandwidth = design.bandwidth;
  return validateNetworkSpec(spec);
}
