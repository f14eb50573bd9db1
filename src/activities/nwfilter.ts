import { type Connection, type NWFilter } from '../libvirt/connection';
import { isLibvirtError, LibvirtErrorCode } from '../libvirt/errors';
import { type LibvirtProvider } from '../libvirt/provider';
import { buildNWFilterXml, parseNWFilterXml, type FilterSpec, type ParsedFilter } from '../libvirt/xml';
import { child, parseRoot, serialize } from '../libvirt/xml/dom';
import { LIBVIRT_PREFIXES } from '../workflows/shared';
import { nullIfMissing } from './missing';

/** Dependencies of the nwfilter activities. */
export interface NwfilterActivityDeps {
  libvirt: LibvirtProvider;
}

/**
 * How a push treats one filter: `upsert` defines it or redefines it when its content differs; `ifAbsent`
 * only defines a missing one (a filter another scope owns, needed to exist); `ifPresent` only updates an
 * existing one (a VM filter is created by its machine's provisioning, never by a push).
 */
export type PushMode = 'upsert' | 'ifAbsent' | 'ifPresent';

/** One filter to push, compiled from the database. */
export interface FilterPush {
  spec: FilterSpec;
  mode: PushMode;
}

/** A filter as libvirt had it: its XML, or null when it did not exist. */
export interface FilterSnapshot {
  name: string;
  xml: string | null;
}

/** What a push did. */
export interface PushOutcome {
  /** Filters (re)defined because they were missing or their content differed, in push order. */
  pushed: string[];
  /** Filters left alone: equal to the database, or skipped by their mode. */
  unchanged: string[];
}

/** Names of filters prune may remove: department and custom filters vmflow made, never VM or libvirt's own. */
const PRUNABLE = LIBVIRT_PREFIXES.filter.filter((p) => p !== 'vmflow-vm-');
const prunable = (name: string) => PRUNABLE.some((p) => name.startsWith(p));

/** The comparable content of a filter: everything but its uuid, state lists in a fixed order. */
function canonical(f: ParsedFilter): string {
  return JSON.stringify({
    name: f.name,
    chain: f.chain ?? 'root',
    priority: f.priority ?? null,
    filterrefs: f.filterrefs,
    rules: f.rules.map((r) => {
      const sorted = Object.fromEntries(Object.entries(r).sort(([a], [b]) => a.localeCompare(b)));
      if (Array.isArray(sorted.state)) sorted.state = [...(sorted.state as string[])].sort();
      return sorted;
    }),
  });
}

/** True when libvirt's filter XML has the content of `spec`. */
export function sameFilterContent(xml: string, spec: FilterSpec): boolean {
  return canonical(parseNWFilterXml(xml)) === canonical(parseNWFilterXml(buildNWFilterXml(spec)));
}

/** `xml` with its uuid set to `uuid` (a filter redefined under the same name keeps the uuid libvirt has). */
function withUuid(xml: string, uuid: string): string {
  const root = parseRoot(xml, 'filter');
  const doc = root.ownerDocument!;
  const el = child(root, 'uuid');
  if (el) {
    while (el.firstChild) el.removeChild(el.firstChild);
    el.appendChild(doc.createTextNode(uuid));
  } else {
    const u = doc.createElement('uuid');
    u.appendChild(doc.createTextNode(uuid));
    root.insertBefore(u, root.firstChild);
  }
  return serialize(root);
}

/**
 * Network-filter activities. A VM's interface carries one filterref, to its VM filter, which references
 * its department's filter, which references libvirt's `clean-traffic` (no MAC/IP spoofing) and `allow-dhcp`;
 * department and VM filters may include custom filters. The content comes compiled from the database
 * (src/firewall/compile.ts). Run on the host's task queue. Each one is idempotent.
 */
export function createNwfilterActivities({ libvirt }: NwfilterActivityDeps) {
  async function find(name: string): Promise<NWFilter | null> {
    const conn = await libvirt.get();
    return nullIfMissing(LibvirtErrorCode.NO_NWFILTER, () => conn.lookupNWFilterByName(name));
  }

  async function xmlOf(name: string): Promise<string | null> {
    const f = await find(name);
    if (!f) return null;
    return nullIfMissing(LibvirtErrorCode.NO_NWFILTER, () => f.getXML());
  }

  /** Defines `spec` unless libvirt already has exactly it (keeping the existing uuid). True if defined. */
  async function define(conn: Connection, spec: FilterSpec, mode: PushMode): Promise<boolean> {
    const existing = await find(spec.name);
    if (!existing && mode === 'ifPresent') return false;
    if (existing && mode === 'ifAbsent') return false;
    if (existing && sameFilterContent(await existing.getXML(), spec)) return false;
    const uuid = existing ? await existing.getUUID() : undefined;
    await conn.defineNWFilter(buildNWFilterXml({ ...spec, uuid }));
    return true;
  }

  async function undefine(name: string): Promise<void> {
    const f = await find(name);
    if (!f) return;
    try {
      await f.undefine();
    } catch (e) {
      if (!isLibvirtError(e, LibvirtErrorCode.NO_NWFILTER)) throw e;
    }
  }

  /** Every filter on the host that references each name (filterrefs), and the names bound to a port. */
  async function usage(conn: Connection): Promise<{ refs: Map<string, Set<string>>; bound: Set<string> }> {
    const refs = new Map<string, Set<string>>();
    for (const f of await conn.listAllNWFilters()) {
      let parsed: ParsedFilter;
      try {
        parsed = parseNWFilterXml(await f.getXML());
      } catch (e) {
        if (isLibvirtError(e, LibvirtErrorCode.NO_NWFILTER)) continue; // removed meanwhile
        throw e;
      }
      for (const r of parsed.filterrefs) {
        if (!refs.has(r.filter)) refs.set(r.filter, new Set());
        refs.get(r.filter)!.add(parsed.name);
      }
    }
    const bound = new Set<string>();
    for (const b of await conn.listAllNWFilterBindings()) bound.add(await b.getFilterName());
    return { refs, bound };
  }

  /**
   * The candidates (department and custom filters only) that nothing on the host uses any more, with what
   * they reference in turn when `cascade`; in removal order (a filter before the filters it references).
   */
  async function unused(candidates: string[], cascade: boolean): Promise<FilterSnapshot[]> {
    const conn = await libvirt.get();
    const { refs, bound } = await usage(conn);
    const removed = new Set<string>();
    const out: FilterSnapshot[] = [];
    const queue = [...new Set(candidates.filter(prunable))];
    // Repeat until nothing more frees up: removing a department filter may free the custom filters it includes.
    for (let progress = true; progress;) {
      progress = false;
      for (const name of [...queue]) {
        if (removed.has(name)) continue;
        const users = [...(refs.get(name) ?? [])].filter((u) => !removed.has(u));
        if (users.length > 0 || bound.has(name)) continue;
        const xml = await xmlOf(name);
        removed.add(name);
        progress = true;
        if (xml === null) continue;
        out.push({ name, xml });
        if (cascade) {
          for (const r of parseNWFilterXml(xml).filterrefs)
            if (prunable(r.filter) && !queue.includes(r.filter)) queue.push(r.filter);
        }
      }
    }
    return out;
  }

  return {
    /**
     * Makes sure the filters a new machine's filter references exist on the host: its department's filter
     * and the custom filters they include, `specs` in dependency order (compiled from the database by
     * planCreate). Existing ones are left as they are: their content is owned by the firewall workflows.
     * Without `specs` (runs started before the firewall was compiled), a department filter that references
     * `clean-traffic` only.
     */
    async ensureDepartmentFilter(input: { name: string; specs?: FilterSpec[] }): Promise<void> {
      const conn = await libvirt.get();
      const specs = input.specs ?? [
        { name: input.name, chain: 'root' as const, filterrefs: [{ filter: 'clean-traffic' }] },
      ];
      for (const spec of specs) await define(conn, spec, 'ifAbsent');
    },

    /**
     * Defines (or redefines to the compiled content) the VM's own filter, referencing its department's.
     * Without `spec` (runs started before the firewall was compiled), one that references the department's only.
     */
    async ensureVmFilter(input: {
      name: string;
      departmentFilter: string;
      spec?: FilterSpec;
      /** Filters it references, made sure to exist first (a concurrent prune may just have removed one). */
      requires?: FilterSpec[];
    }): Promise<void> {
      const conn = await libvirt.get();
      for (const r of input.requires ?? []) await define(conn, r, 'ifAbsent');
      const spec = input.spec ?? {
        name: input.name,
        chain: 'root' as const,
        filterrefs: [{ filter: input.departmentFilter }],
      };
      await define(conn, spec, 'upsert');
    },

    /**
     * Removes a VM's filter and any binding still using it (a binding outlives its domain only when
     * libvirt was interrupted). No-op when already gone.
     */
    async removeVmFilter(input: { name: string }): Promise<void> {
      const conn = await libvirt.get();
      for (const b of await conn.listAllNWFilterBindings()) {
        if ((await b.getFilterName()) === input.name) {
          await b.delete().catch((e: unknown) => {
            if (!isLibvirtError(e, LibvirtErrorCode.NO_NWFILTER_BINDING)) throw e;
          });
        }
      }
      await undefine(input.name);
    },

    /** The current XML of each filter (null: absent): what an undo restores exactly. Read-only. */
    async readFilters(input: { names: string[] }): Promise<FilterSnapshot[]> {
      const out: FilterSnapshot[] = [];
      for (const name of [...new Set(input.names)]) out.push({ name, xml: await xmlOf(name) });
      return out;
    },

    /**
     * Pushes compiled filters, in the given (dependency) order, each according to its mode and only when
     * libvirt's content differs. Each define is atomic in libvirt (a refused define keeps the old filter),
     * and redefining a filter makes libvirt rebuild the rules of every running interface that uses it.
     */
    async pushFilters(input: { filters: FilterPush[] }): Promise<PushOutcome> {
      const conn = await libvirt.get();
      const outcome: PushOutcome = { pushed: [], unchanged: [] };
      for (const { spec, mode } of input.filters) {
        if (await define(conn, spec, mode)) outcome.pushed.push(spec.name);
        else outcome.unchanged.push(spec.name);
      }
      return outcome;
    },

    /**
     * Puts filters back as a snapshot had them, in the given order (the reverse of the push): a filter that
     * did not exist is removed, one that did gets its old XML back (only if it differs). The undo of
     * pushFilters and pruneFilters.
     */
    async restoreFilters(input: { filters: FilterSnapshot[] }): Promise<void> {
      const conn = await libvirt.get();
      for (const { name, xml } of input.filters) {
        const current = await find(name);
        if (xml === null) {
          if (current) await undefine(name);
          continue;
        }
        if (current) {
          const now = await current.getXML();
          if (canonical(parseNWFilterXml(now)) === canonical(parseNWFilterXml(xml))) continue;
          await conn.defineNWFilter(withUuid(xml, await current.getUUID()));
        } else {
          await conn.defineNWFilter(xml);
        }
      }
    },

    /**
     * The department and custom filters among `candidates` that no filter and no port on the host uses
     * any more (and, with `cascade`, what they alone referenced), with their XML: what {@link pruneFilters}
     * would remove. Read-only, so an undo can be registered with exactly this snapshot.
     */
    async planPrune(input: { candidates: string[]; cascade?: boolean }): Promise<FilterSnapshot[]> {
      const doomed = await unused(input.candidates, input.cascade ?? true);
      return doomed;
    },

    /**
     * Removes the department and custom filters among `candidates` that nothing on the host uses any more
     * (re-checked now), dependents first; with `cascade`, also what they alone referenced. A filter that is
     * in use again is kept. Returns the names removed.
     */
    async pruneFilters(input: { candidates: string[]; cascade?: boolean }): Promise<string[]> {
      const removed: string[] = [];
      for (const { name } of await unused(input.candidates, input.cascade ?? false)) {
        try {
          await undefine(name);
          removed.push(name);
        } catch (e) {
          // In use by a port that appeared meanwhile: it is needed, keep it.
          if (!isLibvirtError(e, LibvirtErrorCode.OPERATION_INVALID)) throw e;
        }
      }
      return removed;
    },
  };
}

export type NwfilterActivities = ReturnType<typeof createNwfilterActivities>;
