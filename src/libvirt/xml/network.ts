/**
 * libvirt network XML: {@link buildNetworkXml} / {@link parseNetworkXml}, plus the DHCP fragments
 * that `virNetworkUpdate` takes ({@link buildDhcpHostXml}, {@link buildDhcpRangeXml}).
 *
 * Validation covers what libvirt would otherwise only report at define/start time: addresses inside
 * the subnet, DHCP range ordered and clear of the gateway, DHCP host names safe for dnsmasq, VLAN
 * only where libvirt supports it.
 */
import { type Element } from '@xmldom/xmldom';
import { addBandwidth, parseBandwidth, validateBandwidth, type Bandwidth, type Known } from './common';
import {
  addElement,
  assignDefined,
  attr,
  child,
  childText,
  children,
  createRoot,
  descend,
  intAttr,
  parseRoot,
  required,
  serialize,
} from './dom';
import {
  assertArray,
  assertDomainName,
  assertHostname,
  assertInteger,
  assertInterfaceName,
  assertIp,
  assertLibvirtName,
  assertMac,
  assertOneOf,
  assertRecord,
  assertString,
  assertUuid,
  assertVlanTag,
  describeValue,
  fail,
  formatCidr,
  makeCidr,
  netmaskToPrefix,
  parseCidr,
  type Cidr,
  type IpAddress,
} from './validate';

/**
 * How the network reaches the outside: `nat` (masquerade through the host), `route` (routed, no
 * NAT), `bridge` (an existing host bridge, libvirt manages no addresses), `isolated` (guests and
 * host only).
 */
export type NetworkMode = 'nat' | 'route' | 'bridge' | 'isolated';

/** A static DHCP lease. */
export interface DhcpHostSpec {
  /** Guest MAC (IPv4 only; libvirt matches IPv6 hosts by name or DUID). */
  mac?: string;
  /** Address handed out; inside the subnet, not the gateway. */
  ip: string;
  /** Host name (DNS syntax, starting with a letter); also published in the network's DNS. */
  name?: string;
}

/** A dynamic DHCP range. */
export interface DhcpRangeSpec {
  /** First address. */
  start: string;
  /** Last address (≥ start). */
  end: string;
}

/** DHCP service of a network's IP block. */
export interface DhcpSpec extends DhcpRangeSpec {
  /** Static leases. */
  hosts?: DhcpHostSpec[];
}

/** The host's address on the network and the subnet it implies. */
export interface NetworkIpSpec {
  /** The host (gateway) address, e.g. `192.168.100.1`. */
  address: string;
  /** Prefix length (give this or `netmask`). */
  prefix?: number;
  /** IPv4 netmask such as `255.255.255.0` (alternative to `prefix`). */
  netmask?: string;
  /** DHCP service. */
  dhcp?: DhcpSpec;
}

/** Everything vmflow needs to define a virtual network. */
export interface NetworkSpec {
  /** libvirt name. */
  name: string;
  /** UUID; omitted: libvirt generates one. */
  uuid?: string;
  /** Forwarding mode. */
  mode: NetworkMode;
  /** Host bridge name (≤ 15 characters); required for `bridge`, otherwise libvirt picks `virbrN`. */
  bridgeName?: string;
  /** Uplink device for `nat`/`route`; omitted: any. */
  forwardDev?: string;
  /** Host address and DHCP; required for `nat`/`route`, forbidden for `bridge`. */
  ip?: NetworkIpSpec;
  /** 802.1Q tag, 1–4094; only for `bridge` mode on an Open vSwitch bridge (libvirt rule). */
  vlanTag?: number;
  /** `openvswitch` when the `bridge`-mode bridge is an OVS bridge. */
  virtualPort?: 'openvswitch';
  /** Network-wide QoS (no `floor` here). */
  bandwidth?: Bandwidth;
  /** DNS domain served by the network's dnsmasq. */
  domainName?: string;
  /** MTU, 68–65535. */
  mtu?: number;
}

/** A network's IP block as read back. */
export interface ParsedNetworkIp {
  /** Host address. */
  address: string;
  /** Prefix length (computed from the netmask when libvirt stores one). */
  prefix: number;
  /** Netmask, when the XML uses one. */
  netmask?: string;
  /** DHCP (first range and all static hosts). */
  dhcp?: { start?: string; end?: string; hosts: DhcpHostSpec[] };
}

/** A network as read back from libvirt. */
export interface ParsedNetwork {
  /** Name. */
  name: string;
  /** UUID. */
  uuid?: string;
  /** Forwarding mode (`isolated` when there is no `<forward>`). */
  mode: Known<NetworkMode>;
  /** Bridge name (libvirt fills in `virbrN`). */
  bridgeName?: string;
  /** Uplink device. */
  forwardDev?: string;
  /** First IP block. */
  ip?: ParsedNetworkIp;
  /** All IP blocks (IPv4 and IPv6). */
  ips: ParsedNetworkIp[];
  /** VLAN tag. */
  vlanTag?: number;
  /** Virtual port type. */
  virtualPort?: string;
  /** QoS. */
  bandwidth?: Bandwidth;
  /** DNS domain. */
  domainName?: string;
  /** MTU. */
  mtu?: number;
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

/** The subnet of a network with its gateway, used to check DHCP addresses. */
interface Subnet {
  cidr: Cidr;
  gateway?: bigint;
}

/** Checks that `ip` is a usable host address of `subnet` (inside, not network/broadcast/gateway). */
function checkHostAddress(ip: IpAddress, subnet: Subnet | undefined, field: string, text: string): void {
  if (!subnet) return;
  const { cidr, gateway } = subnet;
  if (ip.family !== cidr.family || ip.value < cidr.network || ip.value > cidr.last) {
    fail(field, `${text} is outside the network's subnet ${formatCidr(cidr)}`);
  }
  if (cidr.family === 4 && cidr.prefix <= 30 && (ip.value === cidr.network || ip.value === cidr.last)) {
    fail(
      field,
      `${text} is the ${ip.value === cidr.network ? 'network' : 'broadcast'} address of ${formatCidr(cidr)}`,
    );
  }
  if (gateway !== undefined && ip.value === gateway)
    fail(field, `${text} is the network's own (gateway) address`);
}

function toSubnet(within: string | Cidr | undefined, field: string): Subnet | undefined {
  if (within === undefined) return undefined;
  const cidr = typeof within === 'string' ? parseCidr(within, field) : within;
  // Written with host bits (`192.168.100.1/24`), the address is the network's own gateway.
  return { cidr, gateway: cidr.address };
}

/** Validates a DHCP host; `f` prefixes field names (`''` for a standalone host). */
function validateDhcpHost(
  value: unknown,
  f: string,
  subnet: Subnet | undefined,
): DhcpHostSpec & { parsed: IpAddress } {
  const p = (n: string): string => (f ? `${f}.${n}` : n);
  const host = assertRecord(value, f || 'host');
  const ip = assertIp(host.ip, p('ip'));
  checkHostAddress(ip, subnet, p('ip'), String(host.ip));
  if (host.mac !== undefined) {
    assertMac(host.mac, p('mac'));
    if (ip.family === 6)
      fail(p('mac'), 'libvirt matches IPv6 DHCP hosts by name or DUID, not by MAC address');
  }
  if (host.name !== undefined) assertHostname(host.name, p('name'));
  if (host.mac === undefined && host.name === undefined) fail(f || 'host', 'needs a mac or a name');
  return { ...(host as unknown as DhcpHostSpec), parsed: ip };
}

/** Validates a DHCP range: same family, ordered, usable addresses of the subnet, clear of the gateway. */
function validateDhcpRange(
  value: unknown,
  f: string,
  subnet: Subnet | undefined,
): { start: IpAddress; end: IpAddress } {
  const p = (n: string): string => (f ? `${f}.${n}` : n);
  const range = assertRecord(value, f || 'range');
  const start = assertIp(range.start, p('start'));
  const end = assertIp(range.end, p('end'));
  if (start.family !== end.family) fail(p('end'), 'must be of the same address family as start');
  if (end.value < start.value)
    fail(p('end'), `must not come before start (${String(range.start)}): the range is reversed`);
  if (subnet) {
    const noGateway: Subnet = { cidr: subnet.cidr };
    checkHostAddress(start, noGateway, p('start'), String(range.start));
    checkHostAddress(end, noGateway, p('end'), String(range.end));
    if (subnet.gateway !== undefined && subnet.gateway >= start.value && subnet.gateway <= end.value) {
      fail(f || 'range', "must not include the network's own (gateway) address");
    }
  }
  return { start, end };
}

/** Validates the IP block of a network and returns its subnet. */
function validateNetworkIp(value: unknown, f: string): Subnet {
  const ipSpec = assertRecord(value, f);
  const address = assertIp(ipSpec.address, `${f}.address`);
  if (ipSpec.prefix !== undefined && ipSpec.netmask !== undefined)
    fail(`${f}.netmask`, 'give either prefix or netmask, not both');
  let prefix: number;
  if (ipSpec.netmask !== undefined) {
    const mask = assertString(ipSpec.netmask, `${f}.netmask`);
    if (address.family !== 4) fail(`${f}.netmask`, 'netmask is only for IPv4; use prefix for IPv6');
    const p = netmaskToPrefix(mask);
    if (p === null)
      fail(
        `${f}.netmask`,
        `must be a contiguous IPv4 netmask like 255.255.255.0, got ${describeValue(mask)}`,
      );
    prefix = p;
  } else if (ipSpec.prefix !== undefined) {
    prefix = assertInteger(ipSpec.prefix, `${f}.prefix`);
  } else {
    fail(`${f}.prefix`, 'is required (or give netmask)');
  }
  const maxPrefix = address.family === 4 ? 30 : 126;
  const field = ipSpec.netmask !== undefined ? `${f}.netmask` : `${f}.prefix`;
  if (prefix < 1 || prefix > maxPrefix) {
    fail(
      field,
      `must leave room for hosts: a prefix between 1 and ${maxPrefix} for IPv${address.family}, got ${prefix}`,
    );
  }
  const cidr = makeCidr(address, prefix);
  const subnet: Subnet = { cidr, gateway: address.value };
  if (address.family === 4 && (address.value === cidr.network || address.value === cidr.last)) {
    fail(
      `${f}.address`,
      `must be a host address of ${formatCidr(cidr)}, not its network or broadcast address`,
    );
  }
  if (address.family === 6 && address.value === cidr.network) {
    fail(
      `${f}.address`,
      `must be a host address of ${formatCidr(cidr)}, not its subnet-router anycast address`,
    );
  }
  if (ipSpec.dhcp !== undefined) {
    const dhcp = assertRecord(ipSpec.dhcp, `${f}.dhcp`);
    validateDhcpRange(dhcp, `${f}.dhcp`, subnet);
    if (dhcp.hosts !== undefined) {
      const macs = new Map<string, number>();
      const ips = new Map<string, number>();
      const names = new Map<string, number>();
      assertArray(dhcp.hosts, `${f}.dhcp.hosts`).forEach((h, i) => {
        const hf = `${f}.dhcp.hosts[${i}]`;
        const host = validateDhcpHost(h, hf, subnet);
        const claims: Array<[Map<string, number>, string | undefined, string]> = [
          [macs, host.mac?.toLowerCase(), 'mac'],
          [ips, String(host.parsed.value), 'ip'],
          [names, host.name?.toLowerCase(), 'name'],
        ];
        for (const [seen, key, name] of claims) {
          if (key === undefined) continue;
          const prev = seen.get(key);
          if (prev !== undefined) fail(`${hf}.${name}`, `is already used by ${f}.dhcp.hosts[${prev}]`);
          seen.set(key, i);
        }
      });
    }
  }
  return subnet;
}

/** Validates a whole {@link NetworkSpec}, throwing {@link XmlSpecError} on the first problem. */
export function validateNetworkSpec(value: unknown): NetworkSpec {
  const spec = assertRecord(value, 'spec');
  assertLibvirtName(spec.name, 'name');
  if (spec.uuid !== undefined) assertUuid(spec.uuid, 'uuid');
  const mode = assertOneOf(spec.mode, ['nat', 'route', 'bridge', 'isolated'] as const, 'mode');
  if (spec.bridgeName !== undefined) assertInterfaceName(spec.bridgeName, 'bridgeName');
  if (mode === 'bridge' && spec.bridgeName === undefined) {
    fail('bridgeName', "is required in 'bridge' mode: the name of the existing host bridge");
  }
  if (spec.forwardDev !== undefined) {
    assertInterfaceName(spec.forwardDev, 'forwardDev');
    if (mode !== 'nat' && mode !== 'route')
      fail('forwardDev', `is only used in 'nat' and 'route' modes, not '${mode}'`);
  }
  if (spec.ip !== undefined) {
    if (mode === 'bridge') {
      fail(
        'ip',
        "must be omitted in 'bridge' mode: addresses come from the existing bridge's network, not libvirt",
      );
    }
    const subnet = validateNetworkIp(spec.ip, 'ip');
    if (mode === 'nat' && subnet.cidr.family !== 4) fail('ip.address', "'nat' mode needs an IPv4 address");
  } else if (mode === 'nat' || mode === 'route') {
    fail('ip', `is required in '${mode}' mode: the host routes the network through this address`);
  }
  if (spec.virtualPort !== undefined) {
    assertOneOf(spec.virtualPort, ['openvswitch'] as const, 'virtualPort');
    if (mode !== 'bridge') fail('virtualPort', "is only used in 'bridge' mode");
  }
  if (spec.vlanTag !== undefined) {
    assertVlanTag(spec.vlanTag, 'vlanTag');
    if (mode !== 'bridge' || spec.virtualPort !== 'openvswitch') {
      fail(
        'vlanTag',
        "libvirt only applies a network-wide VLAN tag in 'bridge' mode on an Open vSwitch bridge (virtualPort 'openvswitch')",
      );
    }
  }
  if (spec.bandwidth !== undefined) validateBandwidth(spec.bandwidth, 'bandwidth', false);
  if (spec.domainName !== undefined) {
    assertDomainName(spec.domainName, 'domainName');
    if (mode === 'bridge') fail('domainName', "must be omitted in 'bridge' mode: libvirt runs no DNS there");
  }
  if (spec.mtu !== undefined) assertInteger(spec.mtu, 'mtu', { min: 68, max: 65535 });
  return spec as unknown as NetworkSpec;
}

// ---------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------

function fillDhcpHost(el: Element, host: DhcpHostSpec): void {
  if (host.mac !== undefined) el.setAttribute('mac', host.mac.toLowerCase());
  if (host.name !== undefined) el.setAttribute('name', host.name);
  el.setAttribute('ip', host.ip);
}

/**
 * Builds libvirt network XML for `virNetworkDefineXML`. Throws {@link XmlSpecError} (naming the
 * field) for any invalid value.
 */
export function buildNetworkXml(spec: NetworkSpec): string {
  validateNetworkSpec(spec);
  const root = createRoot('network');
  addElement(root, 'name', {}, spec.name);
  if (spec.uuid !== undefined) addElement(root, 'uuid', {}, spec.uuid.toLowerCase());
  if (spec.mode !== 'isolated') addElement(root, 'forward', { mode: spec.mode, dev: spec.forwardDev });
  if (spec.bridgeName !== undefined || spec.mode !== 'bridge') {
    // stp/delay only for bridges libvirt creates; an existing bridge keeps its own settings.
    addElement(
      root,
      'bridge',
      spec.mode === 'bridge' ? { name: spec.bridgeName } : { name: spec.bridgeName, stp: 'on', delay: 0 },
    );
  }
  if (spec.mtu !== undefined) addElement(root, 'mtu', { size: spec.mtu });
  if (spec.domainName !== undefined) addElement(root, 'domain', { name: spec.domainName });
  if (spec.bandwidth) addBandwidth(root, spec.bandwidth);
  if (spec.virtualPort) addElement(root, 'virtualport', { type: spec.virtualPort });
  if (spec.vlanTag !== undefined) addElement(addElement(root, 'vlan'), 'tag', { id: spec.vlanTag });
  if (spec.ip) {
    const { address, prefix, netmask, dhcp } = spec.ip;
    // libvirt's parser (not its schema) insists on family='ipv6' for IPv6 blocks.
    const family = address.includes(':') ? 'ipv6' : undefined;
    const ipEl = addElement(root, 'ip', { family, address, prefix, netmask });
    if (dhcp) {
      const dhcpEl = addElement(ipEl, 'dhcp');
      addElement(dhcpEl, 'range', { start: dhcp.start, end: dhcp.end });
      for (const host of dhcp.hosts ?? []) fillDhcpHost(addElement(dhcpEl, 'host'), host);
    }
  }
  return serialize(root);
}

/**
 * Builds a `<host>` element for `virNetworkUpdate` (section `ip-dhcp-host`). When `within` (the
 * network's CIDR, e.g. `192.168.100.1/24`) is given, the address must be a host address in it.
 * Fields are named `mac`, `ip`, `name`.
 */
export function buildDhcpHostXml(host: DhcpHostSpec, within?: string | Cidr): string {
  validateDhcpHost(host, '', toSubnet(within, 'within'));
  const root = createRoot('host');
  fillDhcpHost(root, host);
  return serialize(root);
}

/**
 * Builds a `<range>` element for `virNetworkUpdate` (section `ip-dhcp-range`). When `within` is
 * given, both ends must lie in it and the range must not include its address (the gateway).
 */
export function buildDhcpRangeXml(range: DhcpRangeSpec, within?: string | Cidr): string {
  validateDhcpRange(range, '', toSubnet(within, 'within'));
  const root = createRoot('range');
  root.setAttribute('start', range.start);
  root.setAttribute('end', range.end);
  return serialize(root);
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

function parseDhcpHost(el: Element): DhcpHostSpec {
  const host: DhcpHostSpec = { ip: required(attr(el, 'ip'), 'dhcp host ip') };
  const mac = attr(el, 'mac');
  const name = attr(el, 'name');
  if (mac !== undefined) host.mac = mac;
  if (name !== undefined) host.name = name;
  return host;
}

function parseIpBlock(el: Element): ParsedNetworkIp {
  const address = required(attr(el, 'address'), 'network ip address');
  const netmask = attr(el, 'netmask');
  let prefix = intAttr(el, 'prefix', 'network ip prefix');
  if (prefix === undefined && netmask !== undefined) prefix = netmaskToPrefix(netmask) ?? undefined;
  const ip: ParsedNetworkIp = { address, prefix: required(prefix, `prefix of network address ${address}`) };
  if (netmask !== undefined) ip.netmask = netmask;
  const dhcp = child(el, 'dhcp');
  if (dhcp) {
    const range = child(dhcp, 'range');
    const hosts = children(dhcp, 'host').map(parseDhcpHost);
    ip.dhcp = range ? { start: attr(range, 'start'), end: attr(range, 'end'), hosts } : { hosts };
  }
  return ip;
}

/**
 * Parses network XML as returned by libvirt into a {@link ParsedNetwork}. Extra DHCP ranges beyond
 * the first, DNS records and port groups (never generated by vmflow) are ignored.
 */
export function parseNetworkXml(xml: string): ParsedNetwork {
  const root = parseRoot(xml, 'network');
  const forward = child(root, 'forward');
  const ips = children(root, 'ip').map(parseIpBlock);
  const net: ParsedNetwork = {
    name: required(childText(root, 'name'), 'network <name>'),
    mode: forward ? (attr(forward, 'mode') ?? 'nat') : 'isolated',
    ips,
  };
  const bandwidth = parseBandwidth(child(root, 'bandwidth'));
  const optional: Partial<ParsedNetwork> = {
    uuid: childText(root, 'uuid'),
    bridgeName: attr(child(root, 'bridge'), 'name'),
    forwardDev: attr(forward, 'dev'),
    ip: ips[0],
    vlanTag: intAttr(descend(root, 'vlan', 'tag'), 'id', 'network vlan tag'),
    virtualPort: attr(child(root, 'virtualport'), 'type'),
    bandwidth,
    domainName: attr(child(root, 'domain'), 'name'),
    mtu: intAttr(child(root, 'mtu'), 'size', 'network mtu'),
  };
  assignDefined(net, optional);
  return net;
}
