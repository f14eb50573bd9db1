/**
 * Shared validators for every libvirt XML builder (domain, network, nwfilter, storage).
 *
 * Each `assertX(value, field, …)` returns the value when it is valid and otherwise throws an
 * {@link XmlSpecError} naming `field`. Builders call these and nothing else, so one rule (what a MAC
 * address is, which characters a title may hold) is written once and enforced everywhere.
 *
 * The address helpers ({@link parseCidr}, {@link cidrContains}, {@link cidrOverlaps}) are also meant
 * for the network service, which needs overlap checks between networks.
 */
import { XmlSpecError } from './errors';

/** Throws an {@link XmlSpecError} for `field`. A helper so validators read as one-liners. */
export function fail(field: string, message: string): never {
  throw new XmlSpecError(field, message);
}

/** Human-readable rendering of a rejected value, cut short so error messages stay small. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value;
    return JSON.stringify(shown);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || value === null || value === undefined) {
    return String(value);
  }
  return typeof value;
}

// ---------------------------------------------------------------------------------------------
// Primitive types
// ---------------------------------------------------------------------------------------------

/** Options of {@link assertInteger}. */
export interface IntegerRange {
  /** Smallest allowed value (inclusive). */
  min?: number;
  /** Largest allowed value (inclusive). */
  max?: number;
}

/**
 * Asserts that `value` is a safe integer within `[min, max]`. Rejects NaN, fractions and strings so
 * that a number typed as `"2"` by an API client never turns into `<vcpu>2</vcpu>` by accident.
 */
export function assertInteger(value: unknown, field: string, range: IntegerRange = {}): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) {
    fail(field, `must be an integer, got ${describeValue(value)}`);
  }
  const { min, max } = range;
  if (min !== undefined && max !== undefined && (value < min || value > max)) {
    fail(field, `must be between ${min} and ${max}, got ${value}`);
  }
  if (min !== undefined && value < min) fail(field, `must be at least ${min}, got ${value}`);
  if (max !== undefined && value > max) fail(field, `must be at most ${max}, got ${value}`);
  return value;
}

/** Asserts that `value` is a strictly positive safe integer (sizes, counts, rates). */
export function assertPositiveInteger(value: unknown, field: string, max?: number): number {
  return assertInteger(value, field, { min: 1, max });
}

/** Asserts that `value` is a boolean (not a truthy string such as `"false"`). */
export function assertBoolean(value: unknown, field: string): boolean {
  if (typeof value !== 'boolean') fail(field, `must be true or false, got ${describeValue(value)}`);
  return value;
}

/** Asserts that `value` is one of `allowed`, and narrows its type. */
export function assertOneOf<T extends string | number>(
  value: unknown,
  allowed: readonly T[],
  field: string,
): T {
  if (!(allowed as readonly unknown[]).includes(value)) {
    fail(field, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${describeValue(value)}`);
  }
  return value as T;
}

/** Asserts that `value` is a string (any content). */
export function assertString(value: unknown, field: string): string {
  if (typeof value !== 'string') fail(field, `must be a string, got ${describeValue(value)}`);
  return value;
}

/** Asserts that `value` is a plain object (a record), not an array or null. */
export function assertRecord(value: unknown, field: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail(field, `must be an object, got ${Array.isArray(value) ? 'an array' : describeValue(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Asserts that `value` is an array. */
export function assertArray(value: unknown, field: string): unknown[] {
  if (!Array.isArray(value)) fail(field, `must be an array, got ${describeValue(value)}`);
  return value;
}

// ---------------------------------------------------------------------------------------------
// Free text (titles, descriptions, metadata values, comments)
// ---------------------------------------------------------------------------------------------

/**
 * Code points XML 1.0 cannot carry at all (C0 controls other than tab/LF/CR, U+FFFE, U+FFFF, lone
 * surrogates) plus C1 controls and DEL, which are legal XML but never intended in user text.
 * With the `u` flag, `[\uD800-\uDFFF]` only matches *lone* surrogates.
 */
// eslint-disable-next-line no-control-regex -- finding control characters is the point
const FORBIDDEN_TEXT = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\uFFFE\uFFFF\uD800-\uDFFF]/u;
const LINE_BREAKS = /[\n\u2028\u2029]/u;

/** Options of {@link assertText}. */
export interface TextRules {
  /** Maximum length in UTF-16 code units. */
  maxLength: number;
  /** Whether line feeds (and tabs) are allowed. Carriage returns never are. */
  multiLine?: boolean;
}

/**
 * Asserts that `value` is non-empty user text that XML can carry byte-for-byte.
 *
 * Characters XML cannot represent and control characters are refused rather than silently
 * stripped, so what the user sees after a round trip through libvirt is exactly what they sent.
 * Carriage returns are refused because every XML parser (libvirt's included) turns `\r\n` into
 * `\n`: the value would not survive the round trip. `<>&'"`, `]]>`, `<!--` are fine: the serializer
 * escapes them.
 */
export function assertText(value: unknown, field: string, rules: TextRules): string {
  const text = assertString(value, field);
  if (text.length === 0) fail(field, 'must not be empty (omit the field instead)');
  if (text.length > rules.maxLength) {
    fail(field, `must be at most ${rules.maxLength} characters, got ${text.length}`);
  }
  if (text.includes('\r')) {
    fail(field, 'must not contain carriage returns (use \\n line endings)');
  }
  if (!rules.multiLine) {
    if (LINE_BREAKS.test(text)) fail(field, 'must be a single line (no line breaks)');
    if (text.includes('\t')) fail(field, 'must not contain tab characters');
  }
  const bad = FORBIDDEN_TEXT.exec(text);
  if (bad) {
    const code = bad[0].codePointAt(0) ?? 0;
    fail(
      field,
      `must not contain control or non-XML characters (found U+${code.toString(16).toUpperCase().padStart(4, '0')})`,
    );
  }
  return text;
}

// ---------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------

/**
 * libvirt object names as vmflow generates them (`vmflow-<id>`): 1–64 characters from
 * `[A-Za-z0-9_.+-]`, not starting with `-` or `.`. Stricter than libvirt itself (which only bans
 * `/` and newlines) because these names end up in file names, bridge/dnsmasq config and logs.
 */
const LIBVIRT_NAME = /^[A-Za-z0-9_+][A-Za-z0-9_.+-]{0,63}$/;

/** Asserts a libvirt object name (domain, network, storage pool, storage volume). */
export function assertLibvirtName(value: unknown, field: string): string {
  const name = assertString(value, field);
  if (!LIBVIRT_NAME.test(name)) {
    fail(
      field,
      `must be 1-64 characters from A-Z a-z 0-9 _ . + - and not start with '-' or '.', got ${describeValue(name)}`,
    );
  }
  return name;
}

/**
 * nwfilter names must be XML `NCName`s in libvirt's schemas (the `filter` attribute of
 * `<filterref>`): a letter or `_` first, then letters, digits, `_`, `.`, `-`; no `+` or `:`.
 */
const NWFILTER_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

/** Asserts an nwfilter name (for a filter definition or a `<filterref>`). */
export function assertNwfilterName(value: unknown, field: string): string {
  const name = assertString(value, field);
  if (!NWFILTER_NAME.test(name)) {
    fail(
      field,
      `must be 1-64 characters from A-Z a-z 0-9 _ . - starting with a letter or '_', got ${describeValue(name)}`,
    );
  }
  return name;
}

/** Name of an nwfilter parameter (`IP`, `MAC`, `CTRL_IP_LEARNING`), as libvirt's schema allows. */
const FILTER_PARAM_NAME = /^[A-Za-z0-9_]{1,64}$/;
/** Value of an nwfilter parameter: libvirt's schema allows `[a-zA-Z0-9_.:]+` (IPs, MACs, words). */
const FILTER_PARAM_VALUE = /^[A-Za-z0-9_.:]{1,256}$/;

/** Asserts an nwfilter parameter name. */
export function assertFilterParamName(value: unknown, field: string): string {
  const name = assertString(value, field);
  if (!FILTER_PARAM_NAME.test(name)) {
    fail(field, `must be 1-64 characters from A-Z a-z 0-9 _, got ${describeValue(name)}`);
  }
  return name;
}

/** Asserts an nwfilter parameter value. */
export function assertFilterParamValue(value: unknown, field: string): string {
  const text = assertString(value, field);
  if (!FILTER_PARAM_VALUE.test(text)) {
    fail(
      field,
      `must be 1-256 characters from A-Z a-z 0-9 _ . : (libvirt's rule), got ${describeValue(text)}`,
    );
  }
  return text;
}

/**
 * Linux interface names (bridges, taps, uplinks): 1–15 characters (IFNAMSIZ − 1), no `/`, `:`,
 * whitespace, not `.` or `..`. We additionally restrict to `[A-Za-z0-9_.-]` and a non-`-` start
 * because names travel through `ip`/`tc` command lines.
 */
const IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,14}$/;

/** Asserts a Linux network interface name (bridge, tap, physical device). */
export function assertInterfaceName(value: unknown, field: string): string {
  const name = assertString(value, field);
  if (name.length > 15) fail(field, `must be at most 15 characters (kernel limit), got ${name.length}`);
  if (!IFNAME.test(name) || name === '.' || name === '..') {
    fail(
      field,
      `must be 1-15 characters from A-Z a-z 0-9 _ . - not starting with '-', got ${describeValue(name)}`,
    );
  }
  return name;
}

/** One DNS label: letters, digits and inner hyphens, 1–63 characters. */
const DNS_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * Asserts a DNS host name (RFC 1123: dot-separated labels, ≤ 253 characters) that starts with a
 * letter, as libvirt requires for DHCP host names. Host names go into dnsmasq's host files, where a
 * comma or newline would inject options, hence no free text here.
 */
export function assertHostname(value: unknown, field: string): string {
  const name = assertString(value, field);
  if (name.length > 253 || !/^[A-Za-z]/.test(name) || !name.split('.').every((l) => DNS_LABEL.test(l))) {
    fail(
      field,
      `must be a DNS host name (letters, digits, '-' and '.', starting with a letter), got ${describeValue(name)}`,
    );
  }
  return name;
}

/** Asserts a DNS domain name (labels of letters, digits and hyphens; no leading letter rule). */
export function assertDomainName(value: unknown, field: string): string {
  const name = assertString(value, field);
  if (name.length > 253 || !name.split('.').every((l) => DNS_LABEL.test(l))) {
    fail(field, `must be a DNS domain name such as 'lab.example', got ${describeValue(name)}`);
  }
  return name;
}

/**
 * Asserts an absolute, normalised file path: starts with `/`, no `.`/`..` segments, no empty
 * segments, no control characters, at most 4096 characters (PATH_MAX). Paths name images and pool
 * directories on the hypervisor, so traversal-looking paths are refused outright.
 */
export function assertAbsolutePath(value: unknown, field: string): string {
  const path = assertString(value, field);
  if (!path.startsWith('/')) fail(field, `must be an absolute path, got ${describeValue(path)}`);
  if (path.length > 4096) fail(field, 'must be at most 4096 characters');
  // eslint-disable-next-line no-control-regex -- finding control characters is the point
  if (/[\u0000-\u001F\u007F]/.test(path)) fail(field, 'must not contain control characters');
  const segments = path.split('/').slice(1);
  if (
    path !== '/' &&
    segments.some((s, i) => s === '.' || s === '..' || (s === '' && i < segments.length - 1))
  ) {
    fail(field, `must be a normalised path without '.', '..' or empty segments, got ${describeValue(path)}`);
  }
  return path;
}

// ---------------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------------

const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/** True when `value` is a UUID in the canonical 8-4-4-4-12 hex form. */
export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

/** Asserts a UUID in 8-4-4-4-12 hex form (any version; libvirt does not care). */
export function assertUuid(value: unknown, field: string): string {
  if (!isUuid(value))
    fail(field, `must be a UUID like 123e4567-e89b-12d3-a456-426614174000, got ${describeValue(value)}`);
  return value;
}

const MAC = /^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/;

/** True when `value` is a colon-separated 6-byte MAC address (unicast or not). */
export function isMac(value: unknown): value is string {
  return typeof value === 'string' && MAC.test(value);
}

/**
 * Asserts a MAC address `xx:xx:xx:xx:xx:xx`. By default it must be unicast and not all-zero: an
 * address to assign to a NIC (libvirt rejects multicast ones). Firewall matches pass
 * `{ anyKind: true }` to allow broadcast/multicast addresses such as ff:ff:ff:ff:ff:ff.
 */
export function assertMac(value: unknown, field: string, options: { anyKind?: boolean } = {}): string {
  if (!isMac(value)) fail(field, `must be a MAC address like 52:54:00:12:34:56, got ${describeValue(value)}`);
  if (options.anyKind) return value;
  if ((parseInt(value.slice(0, 2), 16) & 1) === 1) {
    fail(field, `must be a unicast MAC address (first byte even), got ${describeValue(value)}`);
  }
  if (/^(00:){5}00$/.test(value)) fail(field, 'must not be the all-zero MAC address');
  return value;
}

// ---------------------------------------------------------------------------------------------
// IP addresses and CIDR
// ---------------------------------------------------------------------------------------------

/** IP address family: 4 or 6. */
export type IpFamily = 4 | 6;

/** An IP address parsed to an integer, with its family. */
export interface IpAddress {
  /** 4 or 6. */
  family: IpFamily;
  /** The address as an unsigned integer (32 or 128 bits). */
  value: bigint;
}

const IPV4_OCTET = /^(0|[1-9][0-9]{0,2})$/;

/**
 * Parses a dotted-quad IPv4 address. Leading zeros are refused (`010.0.0.1` means octal to some
 * tools and decimal to others). Returns `null` when invalid.
 */
export function parseIPv4(text: string): bigint | null {
  const parts = text.split('.');
  if (parts.length !== 4) return null;
  let value = 0n;
  for (const part of parts) {
    if (!IPV4_OCTET.test(part)) return null;
    const octet = Number(part);
    if (octet > 255) return null;
    value = (value << 8n) | BigInt(octet);
  }
  return value;
}

/**
 * Parses an IPv6 address (RFC 4291 text forms: full, `::`-compressed, trailing dotted IPv4).
 * Zone ids (`%eth0`) are refused. Returns `null` when invalid.
 */
export function parseIPv6(text: string): bigint | null {
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || text.length > 45) return null;
  let head = text;
  const groups: number[] = [];
  const lastColon = head.lastIndexOf(':');
  if (lastColon < 0) return null;
  if (head.slice(lastColon + 1).includes('.')) {
    // A trailing dotted quad stands for the last two groups.
    const v4 = parseIPv4(head.slice(lastColon + 1));
    if (v4 === null) return null;
    head = `${head.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const doubleColon = head.indexOf('::');
  if (doubleColon !== head.lastIndexOf('::')) return null;
  const parseGroups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return null;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  if (doubleColon === -1) {
    const all = parseGroups(head);
    if (!all || all.length !== 8) return null;
    groups.push(...all);
  } else {
    const left = parseGroups(head.slice(0, doubleColon));
    const right = parseGroups(head.slice(doubleColon + 2));
    if (!left || !right || left.length + right.length > 7) return null;
    groups.push(...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right);
  }
  let value = 0n;
  for (const g of groups) value = (value << 16n) | BigInt(g);
  return value;
}

/** Parses an IPv4 or IPv6 address; `null` when it is neither. */
export function parseIp(text: string): IpAddress | null {
  if (typeof text !== 'string') return null;
  const v4 = parseIPv4(text);
  if (v4 !== null) return { family: 4, value: v4 };
  const v6 = parseIPv6(text);
  if (v6 !== null) return { family: 6, value: v6 };
  return null;
}

/** The family (4 or 6) of an IP address literal, or `null` when it is not one. */
export function ipFamily(text: string): IpFamily | null {
  return parseIp(text)?.family ?? null;
}

/**
 * Asserts an IP address literal, of the given family when `family` is set, and returns it parsed.
 */
export function assertIp(value: unknown, field: string, family?: IpFamily): IpAddress {
  const text = assertString(value, field);
  const ip = parseIp(text);
  if (!ip) fail(field, `must be an IP address, got ${describeValue(text)}`);
  if (family !== undefined && ip.family !== family) {
    fail(field, `must be an IPv${family} address, got ${describeValue(text)}`);
  }
  return ip;
}

/** Bit width of a family's addresses. */
export function familyBits(family: IpFamily): number {
  return family === 4 ? 32 : 128;
}

/** Formats an integer address back to text (dotted quad, or uncompressed-zero-run IPv6). */
export function formatIp(ip: IpAddress): string {
  if (ip.family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((ip.value >> s) & 0xffn)).join('.');
  }
  const groups: string[] = [];
  for (let i = 7n; i >= 0n; i--) groups.push(((ip.value >> (i * 16n)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups (length ≥ 2), as RFC 5952 recommends.
  let best = { start: -1, len: 0 };
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > best.len) best = { start: i, len: j - i };
    i = j;
  }
  if (best.len < 2) return groups.join(':');
  return `${groups.slice(0, best.start).join(':')}::${groups.slice(best.start + best.len).join(':')}`;
}

/** Converts a prefix length to an IPv4 netmask (`24` → `255.255.255.0`). */
export function prefixToNetmask(prefix: number): string {
  const value = prefix === 0 ? 0n : ((1n << 32n) - 1n) ^ ((1n << BigInt(32 - prefix)) - 1n);
  return formatIp({ family: 4, value });
}

/** Converts an IPv4 netmask to a prefix length; `null` when the mask is not contiguous. */
export function netmaskToPrefix(netmask: string): number | null {
  const value = parseIPv4(netmask);
  if (value === null) return null;
  for (let prefix = 0; prefix <= 32; prefix++) {
    if (parseIPv4(prefixToNetmask(prefix)) === value) return prefix;
  }
  return null;
}

/** A parsed CIDR block such as `192.168.10.1/24`. */
export interface Cidr {
  /** 4 or 6. */
  family: IpFamily;
  /** The address as written (host bits may be set: `192.168.10.1/24` is the gateway's form). */
  address: bigint;
  /** Prefix length. */
  prefix: number;
  /** First address of the block (host bits cleared). */
  network: bigint;
  /** Last address of the block (host bits set; the IPv4 broadcast address). */
  last: bigint;
}

/** Builds a {@link Cidr} from an address and prefix length. */
export function makeCidr(ip: IpAddress, prefix: number): Cidr {
  const bits = BigInt(familyBits(ip.family));
  const hostMask = (1n << (bits - BigInt(prefix))) - 1n;
  const network = ip.value & ~hostMask & ((1n << bits) - 1n);
  return { family: ip.family, address: ip.value, prefix, network, last: network | hostMask };
}

/**
 * Parses `address/prefix` (IPv4 or IPv6). Host bits may be set (`10.0.0.1/24`). Throws an
 * {@link XmlSpecError} naming `field` when invalid.
 */
export function parseCidr(text: string, field = 'cidr'): Cidr {
  const raw = assertString(text, field);
  const slash = raw.indexOf('/');
  if (slash < 0) fail(field, `must be in CIDR form address/prefix, got ${describeValue(raw)}`);
  const ip = parseIp(raw.slice(0, slash));
  const prefixText = raw.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(prefixText)) {
    fail(field, `must be in CIDR form address/prefix, got ${describeValue(raw)}`);
  }
  const prefix = Number(prefixText);
  if (prefix > familyBits(ip.family)) {
    fail(field, `prefix must be at most ${familyBits(ip.family)} for IPv${ip.family}, got ${prefix}`);
  }
  return makeCidr(ip, prefix);
}

function toCidr(value: string | Cidr, field: string): Cidr {
  return typeof value === 'string' ? parseCidr(value, field) : value;
}

/** True when `ip` (a literal) lies inside `cidr`. Addresses of another family are never inside. */
export function cidrContains(cidr: string | Cidr, ip: string): boolean {
  const block = toCidr(cidr, 'cidr');
  const addr = parseIp(ip);
  if (!addr || addr.family !== block.family) return false;
  return addr.value >= block.network && addr.value <= block.last;
}

/** True when two CIDR blocks share at least one address (blocks of different families never do). */
export function cidrOverlaps(a: string | Cidr, b: string | Cidr): boolean {
  const x = toCidr(a, 'a');
  const y = toCidr(b, 'b');
  if (x.family !== y.family) return false;
  return x.network <= y.last && y.network <= x.last;
}

/** Formats a {@link Cidr} as `network/prefix` (host bits cleared). */
export function formatCidr(cidr: Cidr): string {
  return `${formatIp({ family: cidr.family, value: cidr.network })}/${cidr.prefix}`;
}

// ---------------------------------------------------------------------------------------------
// Ports and network numbers
// ---------------------------------------------------------------------------------------------

/** Asserts a TCP/UDP port, 1–65535 (port 0 is not a real destination). */
export function assertPort(value: unknown, field: string): number {
  return assertInteger(value, field, { min: 1, max: 65535 });
}

/** Asserts an 802.1Q VLAN id, 1–4094 (0 and 4095 are reserved). */
export function assertVlanTag(value: unknown, field: string): number {
  return assertInteger(value, field, { min: 1, max: 4094 });
}
