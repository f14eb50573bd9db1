/**
 * Reads the firewall model from the database and compiles it (src/firewall/compile.ts): what the API shows
 * for a filter, the effective services of a machine or department, and the compiled libvirt spec of any
 * filter row. Works on a TypeORM EntityManager, so callers can run it inside their transaction.
 */
import { randomUUID } from 'node:crypto';
import { type EntityManager, In, QueryFailedError } from 'typeorm';
import { Department } from '../entities/department';
import { FirewallFilter, FirewallRule, ServiceSetting } from '../entities/firewall';
import { Machine } from '../entities/machine';
import { type FilterRule, type FilterSpec } from '../libvirt/xml';
import { libvirtNames } from '../workflows/shared';
import {
  customFilterSpec,
  departmentFilterSpec,
  effectiveServices,
  presetRules,
  serviceRules,
  vmFilterSpec,
  type EffectiveService,
} from './compile';

/** A filter as the API shows it: its row, its user rules (with ids), the derived rules, the compiled spec. */
export interface FilterDescription {
  filter: FirewallFilter;
  rules: Array<{ id: string; rule: FilterRule; createdAt: Date }>;
  derived: Array<{
    origin: 'preset' | 'service';
    rule: FilterRule;
    serviceId?: string;
    action?: 'USE' | 'PROVIDE';
  }>;
  spec: FilterSpec;
}

/** The user rules of a filter, in the order they were written (creation time, then id). */
export async function loadRules(m: EntityManager, filterId: string): Promise<FirewallRule[]> {
  return m.find(FirewallRule, { where: { filterId }, order: { createdAt: 'ASC', id: 'ASC' } });
}

/** libvirt names of the custom filters with these ids, in the given order (unknown ids are left out). */
export async function includeNames(m: EntityManager, ids: string[]): Promise<string[]> {
  if (ids.length === 0) return [];
  const rows = await m.find(FirewallFilter, { where: { id: In(ids), kind: 'custom' } });
  const byId = new Map(rows.map((r) => [r.id, r.internalName]));
  return ids.flatMap((id) => (byId.has(id) ? [byId.get(id)!] : []));
}

async function settings(m: EntityManager, scope: 'vm' | 'department', scopeId: string) {
  const rows = await m.find(ServiceSetting, { where: { scope, scopeId } });
  return rows.map((r) => ({ serviceId: r.serviceId, action: r.action, enabled: Boolean(r.enabled) }));
}

/** The effective services of a machine: its own settings, else its department's, else off. */
export async function machineServices(m: EntityManager, machineId: string): Promise<EffectiveService[]> {
  const machine = await m.findOne(Machine, { where: { id: machineId } });
  if (!machine) return effectiveServices([], []);
  return effectiveServicesOf(m, machineId, machine.departmentId);
}

/** The effective services of a machine as if it were in `departmentId`. */
export async function effectiveServicesOf(
  m: EntityManager,
  machineId: string,
  departmentId: string,
): Promise<EffectiveService[]> {
  const [own, dept] = await Promise.all([
    settings(m, 'vm', machineId),
    settings(m, 'department', departmentId),
  ]);
  return effectiveServices(own, dept);
}

/** The department's own settings (source `department`), the others off (source `default`). */
export async function departmentServices(
  m: EntityManager,
  departmentId: string,
): Promise<EffectiveService[]> {
  return effectiveServices([], await settings(m, 'department', departmentId));
}

const enabledOnly = (services: EffectiveService[]) =>
  services.filter((s) => s.enabled).map(({ serviceId, action }) => ({ serviceId, action }));

/**
 * The compiled libvirt spec of a filter row. A VM filter compiles against `departmentId` when given (a
 * machine moving to another department), else its machine's department. Null when the row's owner (its
 * department or machine) is gone.
 */
export async function compileFilter(
  m: EntityManager,
  row: FirewallFilter,
  opts: { departmentId?: string } = {},
): Promise<FilterSpec | null> {
  const [rules, includes] = await Promise.all([loadRules(m, row.id), includeNames(m, row.includes ?? [])]);
  const specs = rules.map((r) => r.spec);
  switch (row.kind) {
    case 'department': {
      const dept = row.departmentId ? await m.findOne(Department, { where: { id: row.departmentId } }) : null;
      if (!dept) return null;
      return departmentFilterSpec({
        departmentId: dept.id,
        policy: dept.firewallPolicy,
        rules: specs,
        includes,
      });
    }
    case 'vm': {
      const machine = row.machineId ? await m.findOne(Machine, { where: { id: row.machineId } }) : null;
      if (!machine) return null;
      const departmentId = opts.departmentId ?? machine.departmentId;
      const services = enabledOnly(await effectiveServicesOf(m, machine.id, departmentId));
      return vmFilterSpec({ machineId: machine.id, departmentId, rules: specs, services, includes });
    }
    case 'custom':
      return customFilterSpec({ filterId: row.id, rules: specs, includes });
    default:
      return null;
  }
}

/** A filter with its rules, the rules vmflow derives for it (preset, services) and its compiled spec. */
export async function describeFilter(m: EntityManager, filterId: string): Promise<FilterDescription | null> {
  const filter = await m.findOne(FirewallFilter, { where: { id: filterId } });
  if (!filter) return null;
  const spec = await compileFilter(m, filter);
  if (!spec) return null;
  const rules = (await loadRules(m, filter.id)).map((r) => ({
    id: r.id,
    rule: r.spec,
    createdAt: r.createdAt,
  }));
  const derived: FilterDescription['derived'] = [];
  if (filter.kind === 'department') {
    const dept = await m.findOneOrFail(Department, { where: { id: filter.departmentId! } });
    for (const rule of presetRules(dept.firewallPolicy)) derived.push({ origin: 'preset', rule });
  } else if (filter.kind === 'vm') {
    for (const s of enabledOnly(await machineServices(m, filter.machineId!))) {
      for (const rule of serviceRules([s])) derived.push({ origin: 'service', rule, ...s });
    }
  }
  return { filter, rules, derived, spec };
}

function isDuplicate(err: unknown): boolean {
  return err instanceof QueryFailedError && (err as unknown as { code?: string }).code === 'ER_DUP_ENTRY';
}

/**
 * Ensures the own filter row of a department or a machine (`where`) exists, made with this display name and
 * libvirt name when it does not (idempotent); returns it.
 */
async function ensureRow(
  m: EntityManager,
  where: { kind: 'department'; departmentId: string } | { kind: 'vm'; machineId: string },
  name: string,
  internalName: string,
): Promise<FirewallFilter> {
  const existing = await m.findOne(FirewallFilter, { where });
  if (existing) return existing;
  try {
    await m.insert(FirewallFilter, {
      id: randomUUID(),
      name: name.slice(0, 100),
      description: null,
      internalName,
      departmentId: null,
      machineId: null,
      ...where,
      includes: [],
      version: 1,
    });
  } catch (err) {
    // Someone else made it meanwhile (unique internalName / machineId): theirs is the row.
    if (!isDuplicate(err)) throw err;
  }
  return m.findOneOrFail(FirewallFilter, { where });
}

/** Ensures the filter row of a department exists (idempotent); returns it. */
export async function ensureDepartmentFilterRow(
  m: EntityManager,
  departmentId: string,
  departmentName: string,
): Promise<FirewallFilter> {
  const where = { kind: 'department' as const, departmentId };
  return ensureRow(m, where, `department ${departmentName}`, libvirtNames.departmentFilter(departmentId));
}

/** Ensures the filter row of a machine exists (idempotent); returns it. */
export async function ensureVmFilterRow(
  m: EntityManager,
  machineId: string,
  machineName: string,
): Promise<FirewallFilter> {
  return ensureRow(m, { kind: 'vm', machineId }, `machine ${machineName}`, libvirtNames.vmFilter(machineId));
}

/**
 * The custom filters `ids` include, transitively, in dependency order (a filter after the ones it
 * includes), as rows. Unknown ids and cycles are skipped.
 */
export async function customClosure(m: EntityManager, ids: string[]): Promise<FirewallFilter[]> {
  const out: FirewallFilter[] = [];
  const seen = new Set<string>();
  const visit = async (id: string): Promise<void> => {
    if (seen.has(id)) return;
    seen.add(id);
    const row = await m.findOne(FirewallFilter, { where: { id, kind: 'custom' } });
    if (!row) return;
    for (const inc of row.includes ?? []) await visit(inc);
    out.push(row);
  };
  for (const id of ids) await visit(id);
  return out;
}

/** A machine's filters, compiled: what its host needs first (custom → department), then its own. */
export interface MachineFilterSpecs {
  /** The department filter and the custom filters it and the VM filter include, in dependency order. */
  shared: FilterSpec[];
  /** The VM filter. */
  vm: FilterSpec;
}

/**
 * Compiles the filters of a machine in `departmentId` whose VM filter has `vm` (rules, custom filter ids,
 * enabled services): for a new machine (nothing of its own), a clone (its source's), or a machine moving to
 * another department.
 */
export async function compileMachineFilters(
  m: EntityManager,
  i: {
    machineId: string;
    departmentId: string;
    vm: {
      rules: FilterRule[];
      includes: string[];
      services: Array<{ serviceId: string; action: 'USE' | 'PROVIDE' }>;
    };
  },
): Promise<MachineFilterSpecs> {
  const dept = await m.findOneOrFail(Department, { where: { id: i.departmentId } });
  const deptRow = await m.findOne(FirewallFilter, { where: { kind: 'department', departmentId: dept.id } });
  const deptRules = deptRow ? (await loadRules(m, deptRow.id)).map((r) => r.spec) : [];
  const deptIncludes = deptRow?.includes ?? [];
  const customs = await customClosure(m, [...deptIncludes, ...i.vm.includes]);
  const shared: FilterSpec[] = [];
  for (const c of customs) {
    const spec = await compileFilter(m, c);
    if (spec) shared.push(spec);
  }
  shared.push(
    departmentFilterSpec({
      departmentId: dept.id,
      policy: dept.firewallPolicy,
      rules: deptRules,
      includes: await includeNames(m, deptIncludes),
    }),
  );
  const vm = vmFilterSpec({
    machineId: i.machineId,
    departmentId: dept.id,
    rules: i.vm.rules,
    services: i.vm.services,
    includes: await includeNames(m, i.vm.includes),
  });
  return { shared, vm };
}

/** The rules, includes and enabled services (in `departmentId`, default its own) of a machine's VM filter. */
export async function machineVmContent(
  m: EntityManager,
  machineId: string,
  departmentId?: string,
): Promise<{
  rules: FilterRule[];
  includes: string[];
  services: Array<{ serviceId: string; action: 'USE' | 'PROVIDE' }>;
}> {
  const row = await m.findOne(FirewallFilter, { where: { kind: 'vm', machineId } });
  const machine = await m.findOne(Machine, { where: { id: machineId } });
  const rules = row ? (await loadRules(m, row.id)).map((r) => r.spec) : [];
  const services = machine
    ? enabledOnly(await effectiveServicesOf(m, machineId, departmentId ?? machine.departmentId))
    : [];
  return { rules, includes: row?.includes ?? [], services };
}
