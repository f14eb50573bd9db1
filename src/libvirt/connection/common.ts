/**
 * What the binding's classes share: libvirt constants, option flags, enum names (internal helpers) and
 * the option types of several classes.
 */
import { type NativeConstantName, getNative } from '../native';

/** The value of a libvirt constant, as the addon reports it. */
export function constant(name: NativeConstantName): number {
  return getNative().constants[name];
}

/** ORs the flag of every option set to true. */
export function flagsOf<K extends string>(
  opts: { [P in NoInfer<K>]?: unknown } | undefined,
  map: Record<K, NativeConstantName>,
): number {
  let flags = 0;
  if (!opts) return flags;
  for (const key of Object.keys(map) as K[]) {
    if (opts[key]) flags |= constant(map[key]);
  }
  return flags;
}

/** The name of an enum value (`table[value]`), or `<fallback>-<value>` for a value newer than the binding. */
export function nameOf<T extends string>(table: readonly T[], value: number, fallback: string): T | string {
  return table[value] ?? `${fallback}-${value}`;
}

/** The `live` / `config` flags of domain calls. */
export const affect = { live: 'VIR_DOMAIN_AFFECT_LIVE', config: 'VIR_DOMAIN_AFFECT_CONFIG' } as const;

/** An address type (`virIPAddrType`) by name. */
export function ipType(t: number): 'ipv4' | 'ipv6' {
  return t === constant('VIR_IP_ADDR_TYPE_IPV6') ? 'ipv6' : 'ipv4';
}

/** Options of the `define*` methods. */
export interface DefineOptions {
  /** Validate the XML against libvirt's RelaxNG schema first. */
  validate?: boolean;
}

/** `live`: the running instance; `config`: the persistent definition; neither: whichever is current. */
export interface AffectOptions {
  live?: boolean;
  config?: boolean;
}
