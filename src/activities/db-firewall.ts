import { type DataSource, type EntityManager, In, Not } from 'typeorm';
import { Department } from '../entities/department';
import { Event } from '../entities/event';
import { FirewallFilter, FirewallRule, ServiceSetting } from '../entities/firewall';
import { Host } from '../entities/host';
import { Machine } from '../entities/machine';
import { type MachineStatus } from '../entities/machine-status';
import { compileFilter, ensureDepartmentFilterRow, ensureVmFilterRow } from '../firewall/load';
import { checkChange, normalizeUserRule } from '../firewall/validate';
import { type FilterRule } from '../libvirt/xml';
import {
  FailureType,
  type FirewallChangeInput,
  type FirewallPreset,
  type ServiceActionName,
} from '../workflows/shared';
import { permanent } from './failures';
import { currentWorkflowId, publishEvent } from './events';
import { type FilterPush, type PushMode } from './nwfilter';
import { lockExisting, lockRow } from './db-hold';

/** Dependencies of the firewall database activities. */
export interface FirewallDbActivityDeps {
  dataSource: DataSource;
}

/** What an applied change means for libvirt. */
export interface FirewallApplied {
  /** Filters whose compiled content may have changed: pushed to the hosts that use them. */
  filterIds: string[];
  /** libvirt names of custom filters the change stopped including: pruned where nothing uses them. */
  pruneCandidates: string[];
  /** The department concerned (null: a global custom filter). */
  departmentId: string | null;
}

/** The filters to push to one host, in dependency order (custom → department → VM). */
export interface FilterPushPlan {
  hostName: string;
  filters: FilterPush[];
}

/** What a change replaced: enough for its undo to put it back exactly. Kept in the change's event. */
type Previous =
  | { kind: 'rule'; filterId: string; ruleId: string; rule: FilterRule | null; createdAt: string | null }
  | { kind: 'includes'; filterId: string; includes: string[] }
  | { kind: 'policy'; departmentId: string; filterId: string | null; policy: FirewallPreset }
  | {
      kind: 'service';
      scope: 'vm' | 'department';
      scopeId: string;
      serviceId: string;
      action: ServiceActionName;
      enabled: boolean | null;
      filterId: string | null;
    };

/** The undo token of an apply: stored in its event's payload (`undo`), found again by the operation id. */
interface UndoToken {
  applied: FirewallApplied;
  previous: Previous;
  ownerId: string | null;
}

/** Machines whose hypervisor resources are settled: their filters are pushed (a `creating` one only updated). */
const GONE: MachineStatus[] = ['failed', 'destroying'];

const applyKey = (operationId: string) => `${operationId}:firewall:apply`;
const revertKey = (operationId: string) => `${operationId}:firewall:revert`;

/** Database activities of the firewall workflows. Run on the control task queue. Each one is idempotent. */
export function createFirewallDbActivities({ dataSource }: FirewallDbActivityDeps) {
  const lockFilter = (m: EntityManager, filterId: string) =>
    lockExisting(m, FirewallFilter, filterId, 'filter', 'filterId');
  const bump = (m: EntityManager, filterId: string | null) =>
    filterId ? m.increment(FirewallFilter, { id: filterId }, 'version', 1) : Promise.resolve();

  /** The department a filter belongs to: its own, its machine's, or (custom) the one it is scoped to. */
  const departmentOf = async (m: EntityManager, row: FirewallFilter): Promise<string | null> => {
    if (row.kind !== 'vm') return row.departmentId;
    const machine = await m.findOne(Machine, { where: { id: row.machineId! } });
    return machine?.departmentId ?? null;
  };

  /** The serialization scope of a filter's changes (firewallWorkflowId): its department, or a custom filter itself. */
  const scopeOfFilter = async (m: EntityManager, row: FirewallFilter) =>
    row.kind === 'custom' ? row.id : await departmentOf(m, row);

  const checkScope = (input: FirewallChangeInput, expected: string | null) => {
    if (expected !== input.scopeId)
      throw permanent(
        FailureType.Validation,
        `the scope of this change is ${expected ?? 'unknown'}, not ${input.scopeId}`,
        {
          field: 'scopeId',
        },
      );
  };

  /** Checks the includes of a filter: existing custom filters, of its department (or global), no cycle. */
  const checkIncludes = async (m: EntityManager, row: FirewallFilter, includes: string[]) => {
    if (includes.length === 0) return [] as FirewallFilter[];
    const rows = await m.find(FirewallFilter, { where: { id: In(includes) } });
    const byId = new Map(rows.map((r) => [r.id, r]));
    const dept = await departmentOf(m, row);
    includes.forEach((id, i) => {
      const inc = byId.get(id);
      if (!inc) throw permanent(FailureType.NotFound, `filter ${id} not found`, { field: `includes[${i}]` });
      if (inc.kind !== 'custom')
        throw permanent(
          FailureType.Refused,
          `only custom filters can be included (${id} is a ${inc.kind} filter)`,
          {
            field: `includes[${i}]`,
          },
        );
      if (inc.departmentId && inc.departmentId !== dept)
        throw permanent(FailureType.Refused, `filter ${id} belongs to another department`, {
          field: `includes[${i}]`,
        });
    });
    if (row.kind === 'custom') {
      // A cycle is only possible through custom filters: is `row` reachable from what it would include?
      const customs = await m.find(FirewallFilter, { where: { kind: 'custom' } });
      const graph = new Map(customs.map((c) => [c.id, c.includes ?? []]));
      graph.set(row.id, includes);
      const seen = new Set<string>();
      const reaches = (from: string): boolean => {
        if (from === row.id) return true;
        if (seen.has(from)) return false;
        seen.add(from);
        return (graph.get(from) ?? []).some(reaches);
      };
      includes.forEach((id, i) => {
        if (reaches(id))
          throw permanent(FailureType.Refused, `including ${id} would make a cycle`, {
            field: `includes[${i}]`,
          });
      });
    }
    return includes.map((id) => byId.get(id)!);
  };

  const event = (
    m: EntityManager,
    e: {
      resource: 'firewall' | 'services';
      action: string;
      resourceId: string | null;
      payload: Record<string, unknown>;
      actorId: string | null;
      departmentId: string | null;
      ownerId?: string | null;
      dedupeKey: string;
    },
  ) => publishEvent(m, { ...e, workflowId: currentWorkflowId() });

  /** Applies one change in the caller's transaction; returns its undo token and its event. */
  async function apply(
    m: EntityManager,
    input: FirewallChangeInput,
  ): Promise<{
    token: UndoToken;
    ev: {
      resource: 'firewall' | 'services';
      action: string;
      resourceId: string;
      payload: Record<string, unknown>;
    };
  }> {
    const c = input.change;
    const op = input.operationId;
    switch (c.type) {
      case 'addRule':
      case 'updateRule':
      case 'deleteRule': {
        const row = await lockFilter(m, c.filterId);
        checkScope(input, await scopeOfFilter(m, row));
        const existing = await m.findOne(FirewallRule, { where: { id: c.ruleId } });
        let previous: Previous;
        let rule: FilterRule | undefined;
        if (c.type === 'addRule') {
          if (existing)
            throw permanent(FailureType.NameTaken, 'a rule with this id exists', { field: 'ruleId' });
          rule = normalizeUserRule(c.rule);
          await m.insert(FirewallRule, { id: c.ruleId, filterId: row.id, spec: rule });
          previous = { kind: 'rule', filterId: row.id, ruleId: c.ruleId, rule: null, createdAt: null };
        } else {
          if (!existing || existing.filterId !== row.id)
            throw permanent(FailureType.NotFound, 'rule not found in this filter', { field: 'ruleId' });
          previous = {
            kind: 'rule',
            filterId: row.id,
            ruleId: c.ruleId,
            rule: existing.spec,
            createdAt: existing.createdAt.toISOString(),
          };
          if (c.type === 'updateRule') {
            rule = normalizeUserRule(c.rule);
            await m.update(FirewallRule, { id: c.ruleId }, { spec: rule });
          } else {
            await m.delete(FirewallRule, { id: c.ruleId });
          }
        }
        await bump(m, row.id);
        const action = { addRule: 'rule_created', updateRule: 'rule_updated', deleteRule: 'rule_deleted' }[
          c.type
        ];
        return {
          token: {
            applied: { filterIds: [row.id], pruneCandidates: [], departmentId: await departmentOf(m, row) },
            previous,
            ownerId: null,
          },
          ev: {
            resource: 'firewall',
            action,
            resourceId: row.id,
            payload: { filterId: row.id, ruleId: c.ruleId, ...(rule ? { rule } : {}), operationId: op },
          },
        };
      }
      case 'setIncludes': {
        const row = await lockFilter(m, c.filterId);
        checkScope(input, await scopeOfFilter(m, row));
        await checkIncludes(m, row, c.includes);
        const before = row.includes ?? [];
        await m.update(FirewallFilter, { id: row.id }, { includes: c.includes });
        await bump(m, row.id);
        const dropped = before.filter((id) => !c.includes.includes(id));
        const droppedRows = dropped.length
          ? await m.find(FirewallFilter, { where: { id: In(dropped), kind: 'custom' } })
          : [];
        return {
          token: {
            applied: {
              filterIds: [row.id],
              pruneCandidates: droppedRows.map((r) => r.internalName),
              departmentId: await departmentOf(m, row),
            },
            previous: { kind: 'includes', filterId: row.id, includes: before },
            ownerId: null,
          },
          ev: {
            resource: 'firewall',
            action: 'includes_changed',
            resourceId: row.id,
            payload: { filterId: row.id, includes: c.includes, operationId: op },
          },
        };
      }
      case 'setPolicy': {
        const dept = await lockExisting(m, Department, c.departmentId, 'department', 'departmentId');
        checkScope(input, dept.id);
        const row = await ensureDepartmentFilterRow(m, dept.id, dept.name);
        await m.update(Department, { id: dept.id }, { firewallPolicy: c.policy });
        await bump(m, row.id);
        return {
          token: {
            applied: { filterIds: [row.id], pruneCandidates: [], departmentId: dept.id },
            previous: {
              kind: 'policy',
              departmentId: dept.id,
              filterId: row.id,
              policy: dept.firewallPolicy,
            },
            ownerId: null,
          },
          ev: {
            resource: 'firewall',
            action: 'policy_changed',
            resourceId: row.id,
            payload: { filterId: row.id, departmentId: dept.id, policy: c.policy, operationId: op },
          },
        };
      }
      case 'toggleService': {
        let departmentId: string;
        let ownerId: string | null = null;
        let filterIds: string[];
        let filterId: string | null;
        if (c.scope === 'vm') {
          const machine = await lockExisting(m, Machine, c.scopeId, 'machine', 'scopeId');
          departmentId = machine.departmentId;
          ownerId = machine.ownerId;
          const row = await ensureVmFilterRow(m, machine.id, machine.name);
          filterId = row.id;
          filterIds = [row.id];
        } else {
          const dept = await lockExisting(m, Department, c.scopeId, 'department', 'scopeId');
          departmentId = dept.id;
          filterId = (await ensureDepartmentFilterRow(m, dept.id, dept.name)).id;
          // The VM filters that follow the department for this service (no own setting) are the ones that change.
          const machines = await m.find(Machine, { where: { departmentId: dept.id } });
          const own = machines.length
            ? await m.find(ServiceSetting, {
                where: {
                  scope: 'vm',
                  scopeId: In(machines.map((x) => x.id)),
                  serviceId: c.serviceId,
                  action: c.action,
                },
              })
            : [];
          const overridden = new Set(own.map((o) => o.scopeId));
          const following = machines.filter((x) => !overridden.has(x.id)).map((x) => x.id);
          filterIds = following.length
            ? (await m.find(FirewallFilter, { where: { kind: 'vm', machineId: In(following) } })).map(
                (r) => r.id,
              )
            : [];
        }
        checkScope(input, departmentId);
        const key = { scope: c.scope, scopeId: c.scopeId, serviceId: c.serviceId, action: c.action };
        const before = await m.findOne(ServiceSetting, { where: key });
        if (c.enabled === null) await m.delete(ServiceSetting, key);
        else if (before) await m.update(ServiceSetting, key, { enabled: c.enabled });
        else await m.insert(ServiceSetting, { ...key, enabled: c.enabled });
        await bump(m, filterId);
        return {
          token: {
            applied: { filterIds, pruneCandidates: [], departmentId },
            previous: { kind: 'service', ...key, enabled: before ? Boolean(before.enabled) : null, filterId },
            ownerId,
          },
          ev: {
            resource: 'services',
            action: 'toggled',
            resourceId: c.scopeId,
            payload: { ...key, enabled: c.enabled, operationId: op },
          },
        };
      }
      default:
        throw permanent(FailureType.Validation, `unknown change ${(c as { type: string }).type}`, {
          field: 'type',
        });
    }
  }

  /** Puts back what `token` recorded, in the caller's transaction; returns the event of the revert. */
  async function revert(m: EntityManager, token: UndoToken, operationId: string) {
    const p = token.previous;
    switch (p.kind) {
      case 'rule': {
        await lockRow(m, FirewallFilter, p.filterId);
        const current = await m.findOne(FirewallRule, { where: { id: p.ruleId } });
        let action: string;
        if (p.rule === null) {
          await m.delete(FirewallRule, { id: p.ruleId });
          action = 'rule_deleted';
        } else if (current) {
          await m.update(FirewallRule, { id: p.ruleId }, { spec: p.rule });
          action = 'rule_updated';
        } else {
          await m.insert(FirewallRule, {
            id: p.ruleId,
            filterId: p.filterId,
            spec: p.rule,
            ...(p.createdAt ? { createdAt: new Date(p.createdAt) } : {}),
          });
          action = 'rule_created';
        }
        await bump(m, p.filterId);
        return {
          resource: 'firewall' as const,
          action,
          resourceId: p.filterId,
          payload: {
            filterId: p.filterId,
            ruleId: p.ruleId,
            ...(p.rule ? { rule: p.rule } : {}),
            operationId,
            reverted: true,
          },
        };
      }
      case 'includes':
        await m.update(FirewallFilter, { id: p.filterId }, { includes: p.includes });
        await bump(m, p.filterId);
        return {
          resource: 'firewall' as const,
          action: 'includes_changed',
          resourceId: p.filterId,
          payload: { filterId: p.filterId, includes: p.includes, operationId, reverted: true },
        };
      case 'policy':
        await m.update(Department, { id: p.departmentId }, { firewallPolicy: p.policy });
        await bump(m, p.filterId);
        return {
          resource: 'firewall' as const,
          action: 'policy_changed',
          resourceId: p.filterId ?? p.departmentId,
          payload: {
            filterId: p.filterId,
            departmentId: p.departmentId,
            policy: p.policy,
            operationId,
            reverted: true,
          },
        };
      case 'service': {
        const key = { scope: p.scope, scopeId: p.scopeId, serviceId: p.serviceId, action: p.action };
        if (p.enabled === null) await m.delete(ServiceSetting, key);
        else if (await m.exists(ServiceSetting, { where: key }))
          await m.update(ServiceSetting, key, { enabled: p.enabled });
        else await m.insert(ServiceSetting, { ...key, enabled: p.enabled });
        await bump(m, p.filterId);
        return {
          resource: 'services' as const,
          action: 'toggled',
          resourceId: p.scopeId,
          payload: { ...key, enabled: p.enabled, operationId, reverted: true },
        };
      }
    }
  }

  return {
    /**
     * Validates a firewall change (checkChange, then against the database: the filter exists, the rule
     * belongs to it, includes are custom filters of its department with no cycle, the scope is the one the
     * workflow is serialized on), writes it and its event in one transaction, and bumps the filter's version.
     * Its undo token (what the change replaced) is kept in that event, keyed by the operation: a retry returns
     * the first result, and {@link revertFirewallChange} needs only the operation id.
     */
    async applyFirewallChange(input: FirewallChangeInput): Promise<FirewallApplied> {
      const problems = checkChange(input.change);
      if (problems.length > 0) {
        throw permanent(FailureType.Validation, problems.map((p) => `${p.field}: ${p.message}`).join('; '), {
          field: problems[0].field,
          problems,
        });
      }
      const applied = await dataSource.transaction(async (m) => {
        const done = await m.findOne(Event, { where: { dedupeKey: applyKey(input.operationId) } });
        if (done) return (done.payload.undo as UndoToken).applied;
        const { token, ev } = await apply(m, input);
        await event(m, {
          ...ev,
          payload: { ...ev.payload, undo: token },
          actorId: input.actorId,
          departmentId: token.applied.departmentId,
          ownerId: token.ownerId,
          dedupeKey: applyKey(input.operationId),
        });
        return token.applied;
      });
      return applied;
    },

    /**
     * The undo of {@link applyFirewallChange}: puts back exactly what the operation's change replaced (a
     * deleted rule returns with its id and place), with an event. No-op when the change was never applied
     * or is already reverted.
     */
    async revertFirewallChange(input: { operationId: string; actorId: string | null }): Promise<void> {
      await dataSource.transaction(async (m) => {
        const done = await m.findOne(Event, { where: { dedupeKey: applyKey(input.operationId) } });
        if (!done) return;
        if (await m.exists(Event, { where: { dedupeKey: revertKey(input.operationId) } })) return;
        const token = done.payload.undo as UndoToken;
        const ev = await revert(m, token, input.operationId);
        await event(m, {
          ...ev,
          actorId: input.actorId,
          departmentId: token.applied.departmentId,
          ownerId: token.ownerId,
          dedupeKey: revertKey(input.operationId),
        });
      });
    },

    /**
     * What to push where: the compiled specs of the given filters (or, for a flush, of one department's
     * filters — its own, its machines', the custom ones they include — or of every filter), per host of the
     * machines that use them, with the filters they need in dependency order (custom → department → VM).
     * A department with no machines has nothing to push (its filter is defined by its first machine's create).
     */
    async planFilterPush(input: {
      filterIds?: string[];
      departmentId?: string | null;
    }): Promise<FilterPushPlan[]> {
      const m = dataSource.manager;
      const rows = await m.find(FirewallFilter);
      const byId = new Map(rows.map((r) => [r.id, r]));
      const deptRow = new Map(rows.filter((r) => r.kind === 'department').map((r) => [r.departmentId!, r]));
      const vmRow = new Map(rows.filter((r) => r.kind === 'vm').map((r) => [r.machineId!, r]));
      const machines = await m.find(Machine, { where: { status: Not(In(GONE)) } });
      const hosts = new Map((await m.find(Host)).map((h) => [h.id, h.name]));

      /** The custom filters `ids` include, transitively (each once). */
      const closure = (ids: string[], acc = new Set<string>()): Set<string> => {
        for (const id of ids) {
          const r = byId.get(id);
          if (!r || r.kind !== 'custom' || acc.has(id)) continue;
          acc.add(id);
          closure(r.includes ?? [], acc);
        }
        return acc;
      };

      let targets: FirewallFilter[];
      if (input.filterIds) {
        targets = input.filterIds.flatMap((id) => (byId.has(id) ? [byId.get(id)!] : []));
      } else if (input.departmentId) {
        const own = machines.filter((x) => x.departmentId === input.departmentId);
        const base = [deptRow.get(input.departmentId), ...own.map((x) => vmRow.get(x.id))].filter(
          (r): r is FirewallFilter => !!r,
        );
        const customs = closure(base.flatMap((r) => r.includes ?? []));
        targets = [...base, ...[...customs].map((id) => byId.get(id)!)];
      } else {
        targets = rows;
      }
      const targetIds = new Set(targets.map((t) => t.id));

      // Per host: the filters wanted there (target → its mode; dependency → ifAbsent).
      const perHost = new Map<string, Map<string, PushMode>>();
      const want = (host: string, id: string, mode: PushMode) => {
        if (!perHost.has(host)) perHost.set(host, new Map());
        const h = perHost.get(host)!;
        if (h.get(id) !== undefined && h.get(id) !== 'ifAbsent') return;
        h.set(id, mode);
      };
      for (const machine of machines) {
        const host = hosts.get(machine.hostId);
        if (!host) continue;
        const vm = vmRow.get(machine.id);
        const dept = deptRow.get(machine.departmentId);
        const uses = closure([...(vm?.includes ?? []), ...(dept?.includes ?? [])]);
        const touched =
          (vm && targetIds.has(vm.id)) ||
          (dept && targetIds.has(dept.id)) ||
          [...uses].some((id) => targetIds.has(id));
        if (!touched) continue;
        for (const id of uses) want(host, id, targetIds.has(id) ? 'upsert' : 'ifAbsent');
        if (dept) want(host, dept.id, targetIds.has(dept.id) ? 'upsert' : 'ifAbsent');
        if (vm && targetIds.has(vm.id))
          want(host, vm.id, machine.status === 'creating' ? 'ifPresent' : 'upsert');
      }

      // Dependency order: custom filters after what they include, then department filters, then VM filters.
      const order = (ids: string[]): string[] => {
        const out: string[] = [];
        const visit = (id: string, path = new Set<string>()) => {
          if (out.includes(id) || path.has(id)) return;
          path.add(id);
          for (const inc of byId.get(id)?.includes ?? []) if (ids.includes(inc)) visit(inc, path);
          out.push(id);
        };
        const rank = { custom: 0, department: 1, vm: 2 } as const;
        const sorted = [...ids].sort(
          (a, b) =>
            rank[byId.get(a)!.kind] - rank[byId.get(b)!.kind] ||
            byId.get(a)!.internalName.localeCompare(byId.get(b)!.internalName),
        );
        for (const id of sorted.filter((id) => byId.get(id)!.kind === 'custom')) visit(id);
        return [...out, ...sorted.filter((id) => byId.get(id)!.kind !== 'custom')];
      };

      const plans: FilterPushPlan[] = [];
      for (const host of [...perHost.keys()].sort()) {
        const wanted = perHost.get(host)!;
        const filters: FilterPush[] = [];
        for (const id of order([...wanted.keys()])) {
          const spec = await compileFilter(m, byId.get(id)!);
          if (spec) filters.push({ spec, mode: wanted.get(id)! });
        }
        plans.push({ hostName: host, filters });
      }
      return plans;
    },

    /** Records a flush (`firewall:flushed`): what was pushed and what was already equal. Idempotent. */
    async recordFlush(input: {
      operationId: string;
      actorId: string | null;
      departmentId?: string | null;
      pushed: string[];
      unchanged: string[];
    }): Promise<void> {
      await event(dataSource.manager, {
        resource: 'firewall',
        action: 'flushed',
        resourceId: input.departmentId ?? null,
        payload: {
          departmentId: input.departmentId ?? null,
          pushed: input.pushed,
          unchanged: input.unchanged,
          operationId: input.operationId,
        },
        actorId: input.actorId,
        departmentId: input.departmentId ?? null,
        dedupeKey: `${input.operationId}:firewall:flushed`,
      });
    },
  };
}

export type FirewallDbActivities = ReturnType<typeof createFirewallDbActivities>;
