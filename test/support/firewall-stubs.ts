/**
 * Firewall stubs for the workflow tier, plugged into {@link Stubs} (test/support/workflow-stubs.ts): the
 * control (DB) and hypervisor activities of the firewall workflows, over a small in-memory world of their own
 * (libvirt's filters on the stub host, by name; the changes applied to the DB, by operation). Validation is
 * the real, pure src/firewall/validate.ts; the rules of the real activities are kept (push modes and
 * content comparison, restore of exactly what a snapshot had, prune of what nothing references, an apply
 * keyed by its operation, a revert that is a no-op when nothing was applied).
 */
import { ApplicationFailure } from '@temporalio/common';
import type { FilterPushPlan, FirewallApplied, FirewallDbActivities } from '../../src/activities/db-firewall';
import type { FilterSnapshot, NwfilterActivities, PushMode } from '../../src/activities/nwfilter';
import { departmentFilterSpec, vmFilterSpec } from '../../src/firewall/compile';
import { checkChange } from '../../src/firewall/validate';
import type { FilterSpec } from '../../src/libvirt/xml';
import { FailureType, LIBVIRT_PREFIXES, type FirewallChange } from '../../src/workflows/shared';
import type { StubOptions, Stubs } from './workflow-stubs';

/** Options of the firewall stubs (part of {@link StubOptions}). */
export interface FirewallStubOptions {
  /** What planFilterPush returns (default: the compiled BLOCK_ALL filter of `dept-1` on the stub host). */
  plans?: FilterPushPlan[];
  /** What applyFirewallChange returns (default: one filter changed, nothing to prune, department = scope). */
  applied?: Partial<FirewallApplied>;
  /** Filters the stub host has before the workflow runs (besides the machines' own and their departments'). */
  filters?: FilterSpec[];
  /** Filters bound to a port (a running interface uses them: they cannot be removed). */
  bound?: string[];
}

/** The firewall stubs' state, for assertions (see {@link firewallWorld}). */
export interface FirewallWorld {
  /** libvirt's filters on the stub host: name → content. */
  libvirt: Map<string, FilterSpec>;
  /** Changes applied to the database and not reverted, by operation id. */
  applied: Map<string, FirewallChange>;
  /** Operations whose change was reverted. */
  reverted: Set<string>;
  /** What recordFlush recorded. */
  flushes: Array<{ pushed: string[]; unchanged: string[] }>;
}

const worlds = new WeakMap<Stubs, FirewallWorld>();

/** The firewall world of a test's stubs. */
export function firewallWorld(stubs: Stubs): FirewallWorld {
  const w = worlds.get(stubs);
  if (!w) throw new Error('these stubs have no firewall world');
  return w;
}

/** A snapshot of libvirt's filters (name → content JSON), to compare before and after. */
export function filterSnapshot(stubs: Stubs): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, spec] of [...firewallWorld(stubs).libvirt.entries()].sort(([a], [b]) =>
    a.localeCompare(b),
  ))
    out[name] = JSON.stringify(spec);
  return out;
}

/** The compiled department filter the default plan pushes. */
export const STUB_DEPARTMENT_SPEC = departmentFilterSpec({
  departmentId: 'dept-1',
  policy: 'BLOCK_ALL',
  rules: [],
  includes: [],
});

/** A VM filter as provisioning defines it (referencing its department's). */
export function stubVmSpec(machineId: string, departmentId = 'dept-1'): FilterSpec {
  return vmFilterSpec({ machineId, departmentId, rules: [], services: [], includes: [] });
}

const fail = (type: string, message: string, details?: Record<string, unknown>) =>
  ApplicationFailure.create({ type, message, nonRetryable: true, details: details ? [details] : undefined });

const content = (spec: FilterSpec) => JSON.stringify({ ...spec, uuid: undefined });
const prunable = (name: string) =>
  LIBVIRT_PREFIXES.filter.some((p) => p !== 'vmflow-vm-' && name.startsWith(p));

/** The firewall part of the stubs: activities for both queues. */
export function firewallStubs(stubs: Stubs, opts: StubOptions) {
  const o = opts.firewall ?? {};
  const world: FirewallWorld = { libvirt: new Map(), applied: new Map(), reverted: new Set(), flushes: [] };
  worlds.set(stubs, world);
  const names = stubs.world.filters; // the core world's view: which filters exist (leftover checks)
  const put = (spec: FilterSpec) => {
    world.libvirt.set(spec.name, structuredClone({ ...spec, uuid: undefined }));
    names.add(spec.name);
  };
  const remove = (name: string) => {
    if (bound().has(name)) throw fail('OperationInvalid', `nwfilter ${name} is in use`);
    world.libvirt.delete(name);
    names.delete(name);
  };
  const bound = () => new Set(o.bound ?? []);
  for (const m of opts.machines ?? []) {
    put({ name: m.departmentFilterName, chain: 'root', filterrefs: [{ filter: 'clean-traffic' }] });
    put({ name: m.filterName, chain: 'root', filterrefs: [{ filter: m.departmentFilterName }] });
  }
  for (const f of o.filters ?? []) put(f);

  const define = (spec: FilterSpec, mode: PushMode): boolean => {
    const existing = world.libvirt.get(spec.name);
    if (!existing && mode === 'ifPresent') return false;
    if (existing && mode === 'ifAbsent') return false;
    if (existing && content(existing) === content(spec)) return false;
    put(spec);
    return true;
  };

  const unused = (candidates: string[], cascade: boolean): FilterSnapshot[] => {
    const removed = new Set<string>();
    const out: FilterSnapshot[] = [];
    const queue = [...new Set(candidates.filter(prunable))];
    const users = (name: string) =>
      [...world.libvirt.values()].filter(
        (f) => !removed.has(f.name) && (f.filterrefs ?? []).some((r) => r.filter === name),
      );
    for (let progress = true; progress;) {
      progress = false;
      for (const name of [...queue]) {
        if (removed.has(name) || users(name).length > 0 || bound().has(name)) continue;
        removed.add(name);
        progress = true;
        const spec = world.libvirt.get(name);
        if (!spec) continue;
        out.push({ name, xml: JSON.stringify(spec) });
        if (cascade)
          for (const r of spec.filterrefs ?? [])
            if (prunable(r.filter) && !queue.includes(r.filter)) queue.push(r.filter);
      }
    }
    return out;
  };

  const hypervisor: NwfilterActivities = {
    ensureDepartmentFilter: async (input) => {
      for (const spec of input.specs ?? [{ name: input.name, filterrefs: [{ filter: 'clean-traffic' }] }])
        define(spec, 'ifAbsent');
    },
    ensureVmFilter: async (input) => {
      for (const r of input.requires ?? []) define(r, 'ifAbsent');
      define(input.spec ?? { name: input.name, filterrefs: [{ filter: input.departmentFilter }] }, 'upsert');
    },
    removeVmFilter: async (input) => {
      world.libvirt.delete(input.name);
      names.delete(input.name);
    },
    readFilters: async (input) =>
      [...new Set(input.names)].map((name) => {
        const spec = world.libvirt.get(name);
        return { name, xml: spec ? JSON.stringify(spec) : null };
      }),
    pushFilters: async (input) => {
      const outcome = { pushed: [] as string[], unchanged: [] as string[] };
      for (const { spec, mode } of input.filters)
        (define(spec, mode) ? outcome.pushed : outcome.unchanged).push(spec.name);
      return outcome;
    },
    restoreFilters: async (input) => {
      for (const { name, xml } of input.filters) {
        if (xml === null) {
          if (world.libvirt.has(name)) remove(name);
        } else {
          put(JSON.parse(xml) as FilterSpec);
        }
      }
    },
    planPrune: async (input) => unused(input.candidates, input.cascade ?? true),
    pruneFilters: async (input) => {
      const gone = unused(input.candidates, input.cascade ?? false).map((s) => s.name);
      for (const name of gone) remove(name);
      return gone;
    },
  };

  const control: FirewallDbActivities = {
    applyFirewallChange: async (input) => {
      const problems = checkChange(input.change);
      if (problems.length)
        throw fail(FailureType.Validation, problems.map((p) => `${p.field}: ${p.message}`).join('; '), {
          field: problems[0].field,
        });
      if (!world.applied.has(input.operationId) && !world.reverted.has(input.operationId))
        world.applied.set(input.operationId, structuredClone(input.change));
      return {
        filterIds: ['filter-1'],
        pruneCandidates: [],
        departmentId: input.scopeId,
        ...o.applied,
      };
    },
    revertFirewallChange: async (input) => {
      if (world.applied.delete(input.operationId)) world.reverted.add(input.operationId);
    },
    planFilterPush: async () =>
      structuredClone(
        o.plans ?? [{ hostName: stubs.hostName, filters: [{ spec: STUB_DEPARTMENT_SPEC, mode: 'upsert' }] }],
      ),
    recordFlush: async (input) =>
      void world.flushes.push({ pushed: input.pushed, unchanged: input.unchanged }),
  };
  return { control, hypervisor };
}
