/**
 * XML fragments shared by several libvirt document kinds: `<bandwidth>` (domain interfaces and
 * networks) and `<filterref>` (domain interfaces, nwfilters, nwfilter bindings). Each has one type,
 * one validator, one builder and one parser, used by every document that embeds it.
 */
import { type Element } from '@xmldom/xmldom';
import { addElement, attr, child, children, intAttr, required } from './dom';
import {
  assertArray,
  assertFilterParamName,
  assertFilterParamValue,
  assertInteger,
  assertNwfilterName,
  assertRecord,
  fail,
} from './validate';

/** A string type that still suggests the known values in editors: parsers may meet others. */
export type Known<T extends string> = T | (string & Record<never, never>);

// ---------------------------------------------------------------------------------------------
// <bandwidth>
// ---------------------------------------------------------------------------------------------

/**
 * Largest rate libvirt's schema accepts (`speed`/`BurstSize` are XML Schema `unsignedInt`).
 * Rates are KiB/s, bursts KiB.
 */
export const MAX_BANDWIDTH_VALUE = 4_294_967_295;

/** Inbound (host → guest) traffic shaping, libvirt `<inbound>`. */
export interface BandwidthInbound {
  /** Average rate, KiB/s. */
  average: number;
  /** Peak rate, KiB/s (≥ average). */
  peak?: number;
  /** Burst size at peak rate, KiB. */
  burst?: number;
  /** Guaranteed minimum, KiB/s (only on interfaces attached to a libvirt network). */
  floor?: number;
}

/** Outbound (guest → host) traffic shaping, libvirt `<outbound>`. */
export interface BandwidthOutbound {
  /** Average rate, KiB/s. */
  average: number;
  /** Peak rate, KiB/s (≥ average). */
  peak?: number;
  /** Burst size at peak rate, KiB. */
  burst?: number;
}

/** Quality-of-service limits for an interface or a whole network, libvirt `<bandwidth>`. */
export interface Bandwidth {
  /** Traffic towards the guest / network. */
  inbound?: BandwidthInbound;
  /** Traffic from the guest / network. */
  outbound?: BandwidthOutbound;
}

/**
 * Validates a {@link Bandwidth}: positive integers up to {@link MAX_BANDWIDTH_VALUE}, peak ≥ average,
 * `floor` only inbound and only where `allowFloor` (libvirt rejects it elsewhere), at least one
 * direction given.
 */
export function validateBandwidth(value: unknown, field: string, allowFloor: boolean): Bandwidth {
  const bw = assertRecord(value, field);
  if (bw.inbound === undefined && bw.outbound === undefined) {
    fail(field, 'must set inbound and/or outbound (omit bandwidth for no limits)');
  }
  for (const dir of ['inbound', 'outbound'] as const) {
    if (bw[dir] === undefined) continue;
    const f = `${field}.${dir}`;
    const rate = assertRecord(bw[dir], f);
    for (const key of Object.keys(rate)) {
      if (!['average', 'peak', 'burst', 'floor'].includes(key))
        fail(`${f}.${key}`, 'is not a bandwidth setting');
    }
    assertInteger(rate.average, `${f}.average`, { min: 1, max: MAX_BANDWIDTH_VALUE });
    for (const key of ['peak', 'burst', 'floor'] as const) {
      if (rate[key] !== undefined)
        assertInteger(rate[key], `${f}.${key}`, { min: 1, max: MAX_BANDWIDTH_VALUE });
    }
    if (rate.peak !== undefined && (rate.peak as number) < (rate.average as number)) {
      fail(`${f}.peak`, `must be at least the average rate (${String(rate.average)} KiB/s)`);
    }
    if (rate.floor !== undefined) {
      if (dir === 'outbound') fail(`${f}.floor`, 'is only supported for inbound traffic (libvirt rule)');
      if (!allowFloor) {
        fail(`${f}.floor`, 'is only supported on interfaces of type network (libvirt rule)');
      }
      if ((rate.floor as number) > (rate.average as number)) {
        fail(`${f}.floor`, `must not exceed the average rate (${String(rate.average)} KiB/s)`);
      }
    }
  }
  return bw as Bandwidth;
}

/** Appends `<bandwidth>` for a validated {@link Bandwidth}. */
export function addBandwidth(parent: Element, bw: Bandwidth): void {
  const el = addElement(parent, 'bandwidth');
  if (bw.inbound) {
    const { average, peak, burst, floor } = bw.inbound;
    addElement(el, 'inbound', { average, peak, burst, floor });
  }
  if (bw.outbound) {
    const { average, peak, burst } = bw.outbound;
    addElement(el, 'outbound', { average, peak, burst });
  }
}

/** Reads a `<bandwidth>` element (absent → `undefined`). */
export function parseBandwidth(el: Element | undefined): Bandwidth | undefined {
  if (!el) return undefined;
  const out: Bandwidth = {};
  const rate = (e: Element, what: string): BandwidthInbound => {
    const r: BandwidthInbound = { average: intAttr(e, 'average', `${what} average`) ?? 0 };
    const peak = intAttr(e, 'peak', `${what} peak`);
    const burst = intAttr(e, 'burst', `${what} burst`);
    const floor = intAttr(e, 'floor', `${what} floor`);
    if (peak !== undefined) r.peak = peak;
    if (burst !== undefined) r.burst = burst;
    if (floor !== undefined) r.floor = floor;
    return r;
  };
  const inbound = child(el, 'inbound');
  const outbound = child(el, 'outbound');
  if (inbound) out.inbound = rate(inbound, 'bandwidth inbound');
  if (outbound) out.outbound = rate(outbound, 'bandwidth outbound');
  return out;
}

// ---------------------------------------------------------------------------------------------
// <filterref>
// ---------------------------------------------------------------------------------------------

/**
 * nwfilter parameters: name → value, or name → several values (libvirt then instantiates the
 * filter's rules once per value, e.g. several `IP`s). Values are referenced as `$NAME` in rules.
 */
export type FilterParameters = Record<string, string | string[]>;

/** A reference to an nwfilter with its parameters, libvirt `<filterref>`. */
export interface FilterRef {
  /** Name of the referenced nwfilter (e.g. `clean-traffic`). */
  filter: string;
  /** Parameters passed to it. */
  parameters?: FilterParameters;
}

/** Validates filter parameters (names and values as libvirt's schema allows; arrays non-empty). */
export function validateFilterParameters(value: unknown, field: string): FilterParameters {
  const params = assertRecord(value, field);
  for (const [name, val] of Object.entries(params)) {
    const f = `${field}.${name}`;
    assertFilterParamName(name, f);
    if (Array.isArray(val)) {
      assertArray(val, f);
      if (val.length === 0) fail(f, 'must hold at least one value (omit the parameter instead)');
      val.forEach((v, i) => assertFilterParamValue(v, `${f}[${i}]`));
    } else {
      assertFilterParamValue(val, f);
    }
  }
  return params as FilterParameters;
}

/** Validates a {@link FilterRef}. */
export function validateFilterRef(value: unknown, field: string): FilterRef {
  const ref = assertRecord(value, field);
  assertNwfilterName(ref.filter, `${field}.filter`);
  if (ref.parameters !== undefined) validateFilterParameters(ref.parameters, `${field}.parameters`);
  return ref as unknown as FilterRef;
}

/** Appends `<parameter name value/>` children for `params` (one per value). */
export function addFilterParameters(parent: Element, params: FilterParameters | undefined): void {
  for (const [name, val] of Object.entries(params ?? {})) {
    for (const v of Array.isArray(val) ? val : [val]) addElement(parent, 'parameter', { name, value: v });
  }
}

/** Appends `<filterref filter=…>` with its parameters. */
export function addFilterRef(parent: Element, ref: FilterRef): void {
  addFilterParameters(addElement(parent, 'filterref', { filter: ref.filter }), ref.parameters);
}

/**
 * Reads `<parameter>` children back into {@link FilterParameters}. A name that appears once is a
 * string, several times a string array: a one-element array therefore reads back as a string.
 */
export function parseFilterParameters(el: Element): FilterParameters | undefined {
  // A Map, then fromEntries: a parameter named `__proto__` stays an own property.
  const params = new Map<string, string[]>();
  for (const p of children(el, 'parameter')) {
    const name = required(attr(p, 'name'), 'filterref parameter name');
    const value = required(attr(p, 'value'), `value of filterref parameter ${name}`);
    params.set(name, [...(params.get(name) ?? []), value]);
  }
  if (params.size === 0) return undefined;
  return Object.fromEntries([...params].map(([k, v]) => [k, v.length === 1 ? v[0] : v]));
}

/** Reads a `<filterref>` element. */
export function parseFilterRef(el: Element): FilterRef {
  const ref: FilterRef = { filter: required(attr(el, 'filter'), 'filterref filter name') };
  const params = parseFilterParameters(el);
  if (params) ref.parameters = params;
  return ref;
}
