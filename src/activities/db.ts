import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { type DataSource, type EntityManager, In, IsNull, Not } from 'typeorm';
import { Department, DepartmentMember } from '../entities/department';
import { FirewallFilter, FirewallRule, ServiceSetting } from '../entities/firewall';
import { Host } from '../entities/host';
import { Machine, type PendingHardware } from '../entities/machine';
import { canTransition, type MachineStatus } from '../entities/machine-status';
import { MachineTemplate } from '../entities/machine-template';
import {
  Operation,
  type OperationResource,
  type OperationStatus,
  type OperationStep,
  type OperationType,
  type StepStatus,
} from '../entities/operation';
import { User } from '../entities/user';
import {
  compileMachineFilters,
  departmentServices,
  ensureVmFilterRow,
  includeNames,
  machineVmContent,
  type MachineFilterSpecs,
} from '../firewall/load';
import { type FilterSpec } from '../libvirt/xml';
import {
  FailureType,
  HARDWARE_LIMITS,
  MACHINE_NAME_MAX,
  libvirtNames,
  type CreateMachineInput,
  type SealedSecretRef,
} from '../workflows/shared';
import { isDuplicate, permanent } from './failures';
import { publishEvent } from './events';

/** Dependencies of the database activities. */
export interface DbActivityDeps {
  dataSource: DataSource;
}

/** A machine as workflows see it (no secrets). */
export interface MachineView {
  id: string;
  name: string;
  internalName: string;
  status: MachineStatus;
  ownerId: string;
  departmentId: string;
  templateId: string;
  hostName: string;
  storagePool: string;
  cpu: number;
  memoryMiB: number;
  storageGiB: number;
  os: string;
  macAddress: string | null;
  networkName: string | null;
  diskPath: string | null;
  filterName: string;
  departmentFilterName: string;
  linkedClone: boolean;
  sourceMachineId: string | null;
  libvirtUuid: string | null;
  currentOperationId: string | null;
  pendingHardware: PendingHardware | null;
  /** libvirt names of the custom filters its VM filter includes (absent in runs recorded before the firewall). */
  filterIncludes?: string[];
}

/** Everything createMachine needs, resolved and validated. */
export interface CreatePlan {
  cpu: number;
  memoryMiB: number;
  storageGiB: number;
  os: string;
  internalName: string;
  filterName: string;
  departmentFilterName: string;
  networkName: string;
  host: { name: string; storagePool: string; cpus: number; memoryMiB: number };
  /**
   * The filters the VM filter needs on the host, compiled from the database in dependency order (the
   * custom filters, then the department's). Absent in runs recorded before the firewall was compiled.
   */
  departmentFilterSpecs?: FilterSpec[];
  /** The VM's own filter, compiled (a clone's copies its source's rules, includes and services). */
  vmFilterSpec?: FilterSpec;
}

/** Everything changeMachineDepartment needs, resolved and validated. */
export interface DepartmentChangePlan {
  machine: MachineView;
  /** True when the machine is already in the department: nothing to do. */
  noop: boolean;
  /** The target department's filter name. */
  departmentFilterName: string;
  /** The target department's filter and the custom filters it includes, in dependency order. */
  departmentFilterSpecs: FilterSpec[];
  /** The VM filter, compiled against the target department (its own rules and settings kept). */
  vmFilterSpec: FilterSpec;
  /** What may be unused on the host after the move: the old department's filter (pruned with what it alone includes). */
  pruneCandidates: string[];
}

/** The statuses a machine can change department from. */
export const DEPARTMENT_CHANGE_FROM: readonly MachineStatus[] = ['off', 'running', 'suspended'];

/**
 * A row with the new machine's id may exist only as this very operation's own half-made row (a retry
 * after a lost response). Any other row is another machine: a create must never adopt it (its undos would
 * then tear a live VM down).
 */
function assertOwnRetry(
  row: { status: string; currentOperationId: string | null } | null,
  operationId: string,
): void {
  if (row && !(row.status === 'creating' && row.currentOperationId === operationId)) {
    throw permanent(FailureType.IllegalTransition, 'a machine with this id already exists', {
      field: 'machineId',
    });
  }
}

function stringField(obj: Record<string, unknown> | null, key: string): string | null {
  const v = obj?.[key];
  return typeof v === 'string' ? v : null;
}

function checkRange(field: keyof typeof HARDWARE_LIMITS, value: number | undefined): void {
  if (value === undefined) return;
  const { min, max } = HARDWARE_LIMITS[field];
  if (!Number.isInteger(value) || value < min || value > max) {
    throw permanent(FailureType.Validation, `${field} must be an integer from ${min} to ${max}`, { field });
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** Validates a machine name: 1–100 printable characters, no control characters, not blank. */
export function checkMachineName(name: string): void {
  if (
    typeof name !== 'string' ||
    !name.trim() ||
    name.length > MACHINE_NAME_MAX ||
    CONTROL_CHARS.test(name)
  ) {
    throw permanent(FailureType.Validation, `name must be 1–${MACHINE_NAME_MAX} printable characters`, {
      field: 'name',
    });
  }
}

async function loadMachineView(m: EntityManager, machineId: string): Promise<MachineView | null> {
  const row = await m.findOne(Machine, { where: { id: machineId } });
  if (!row) return null;
  const [host, dept, filter] = await Promise.all([
    m.findOneOrFail(Host, { where: { id: row.hostId } }),
    m.findOneOrFail(Department, { where: { id: row.departmentId } }),
    m.findOne(FirewallFilter, { where: { kind: 'vm', machineId: row.id } }),
  ]);
  return {
    id: row.id,
    name: row.name,
    internalName: row.internalName,
    status: row.status,
    ownerId: row.ownerId,
    departmentId: row.departmentId,
    templateId: row.templateId,
    hostName: host.name,
    storagePool: host.storagePool,
    cpu: row.cpu,
    memoryMiB: row.memoryMiB,
    storageGiB: row.storageGiB,
    os: row.os,
    macAddress: row.macAddress,
    networkName: row.networkName,
    diskPath: row.diskPath,
    filterName: row.filterName,
    departmentFilterName: dept.filterName,
    linkedClone: row.linkedClone,
    sourceMachineId: row.sourceMachineId,
    libvirtUuid: row.libvirtUuid,
    currentOperationId: row.currentOperationId,
    pendingHardware: row.pendingHardware,
    filterIncludes: filter ? await includeNames(m, filter.includes ?? []) : [],
  };
}

/**
 * Gives a clone a copy of its source's VM filter: its rules (new ids, same order), its includes and the
 * source's own service settings.
 */
async function copyVmFilter(m: EntityManager, sourceId: string, machineId: string, filter: FirewallFilter) {
  const source = await m.findOne(FirewallFilter, { where: { kind: 'vm', machineId: sourceId } });
  if (source) {
    await m.update(FirewallFilter, { id: filter.id }, { includes: source.includes ?? [] });
    const rules = await m.find(FirewallRule, {
      where: { filterId: source.id },
      order: { createdAt: 'ASC', id: 'ASC' },
    });
    const base = Date.now();
    for (const [i, r] of rules.entries()) {
      // One millisecond apart: the copy keeps its source's order whatever ids it gets.
      await m.insert(FirewallRule, {
        id: randomUUID(),
        filterId: filter.id,
        spec: r.spec,
        createdAt: new Date(base + i),
      });
    }
  }
  const settings = await m.find(ServiceSetting, { where: { scope: 'vm', scopeId: sourceId } });
  for (const st of settings) {
    await m.insert(ServiceSetting, {
      scope: 'vm',
      scopeId: machineId,
      serviceId: st.serviceId,
      action: st.action,
      enabled: Boolean(st.enabled),
    });
  }
}

/** Deletes a machine's VM filter row, its rules and the machine's own service settings. */
async function deleteVmFilterRows(m: EntityManager, machineId: string) {
  const rows = await m.find(FirewallFilter, { where: { kind: 'vm', machineId } });
  for (const r of rows) {
    await m.delete(FirewallRule, { filterId: r.id });
    await m.delete(FirewallFilter, { id: r.id });
  }
  await m.delete(ServiceSetting, { scope: 'vm', scopeId: machineId });
}

/** The enabled (service, action) pairs of effective settings. */
function departmentServicesOf(
  list: Array<{ serviceId: string; action: 'USE' | 'PROVIDE'; enabled: boolean }>,
) {
  return list.filter((s) => s.enabled).map(({ serviceId, action }) => ({ serviceId, action }));
}

/** The compiled filter specs of a plan. */
function planSpecs(specs: MachineFilterSpecs): Pick<CreatePlan, 'departmentFilterSpecs' | 'vmFilterSpec'> {
  return { departmentFilterSpecs: specs.shared, vmFilterSpec: specs.vm };
}

/** Registers (or refreshes) a hypervisor host; the worker calls it on start. */
export async function registerHost(
  ds: DataSource,
  h: Omit<Host, 'id' | 'lastSeenAt' | 'capabilities'> & { capabilities?: Host['capabilities'] },
): Promise<Host> {
  const repo = ds.getRepository(Host);
  const existing = await repo.findOne({ where: { name: h.name } });
  const row = repo.create({ ...existing, ...h, id: existing?.id ?? randomUUID() });
  return repo.save(row);
}

/** Database and event activities. Run on the control task queue. Each one is idempotent. */
export function createDbActivities({ dataSource }: DbActivityDeps) {
  const tx = <T>(fn: (m: EntityManager) => Promise<T>) => dataSource.transaction(fn);
  const workflowId = () => {
    try {
      return Context.current().info.workflowExecution?.workflowId ?? null;
    } catch {
      return null;
    }
  };

  /** Writes a `vms:<action>` event about a machine, in the caller's transaction. */
  const machineEvent = (
    m: EntityManager,
    view: MachineView,
    action: string,
    e: { actorId: string | null | undefined; dedupeKey: string; payload: Record<string, unknown> },
  ) =>
    publishEvent(m, {
      resource: 'vms',
      action,
      resourceId: view.id,
      payload: { machine: publicMachine(view), ...e.payload },
      actorId: e.actorId ?? null,
      workflowId: workflowId(),
      ownerId: view.ownerId,
      departmentId: view.departmentId,
      dedupeKey: e.dedupeKey,
    });

  return {
    /** Records the start of an operation (upsert by id). */
    async beginOperation(input: {
      operationId: string;
      type: OperationType;
      machineId: string | null;
      /** Default `vms` (resourceId = machineId). */
      resource?: OperationResource;
      resourceId?: string | null;
      actorId: string | null;
      idempotencyKey?: string | null;
      input: Record<string, unknown>;
      at: string;
    }): Promise<void> {
      const repo = dataSource.getRepository(Operation);
      if (await repo.exists({ where: { id: input.operationId } })) return;
      try {
        await repo.insert({
          id: input.operationId,
          workflowId: workflowId() ?? '',
          type: input.type,
          machineId: input.machineId,
          resource: input.resource ?? 'vms',
          resourceId: input.resourceId ?? input.machineId,
          actorId: input.actorId,
          idempotencyKey: input.idempotencyKey ?? null,
          status: 'running',
          steps: [],
          input: input.input as never,
          error: null,
          startedAt: new Date(input.at),
          finishedAt: null,
        });
      } catch (err) {
        if (!isDuplicate(err)) throw err;
      }
    },

    /**
     * Appends a step to the operation and emits `vms:progress`. `at` comes from the workflow clock so a
     * retry writes the same entry, which is then recognised and skipped.
     */
    async recordStep(input: {
      operationId: string;
      machineId: string | null;
      step: string;
      status: StepStatus;
      at: string;
      error?: string;
    }): Promise<void> {
      await tx(async (m) => {
        const op = await m.findOne(Operation, {
          where: { id: input.operationId },
          lock: { mode: 'pessimistic_write' },
        });
        if (!op) return;
        const entry: OperationStep = { name: input.step, status: input.status, at: input.at };
        if (input.error) entry.error = input.error;
        if (!op.steps.some((s) => s.name === entry.name && s.status === entry.status && s.at === entry.at)) {
          await m.update(Operation, { id: op.id }, { steps: [...op.steps, entry] });
        }
        const machine = input.machineId ? await m.findOne(Machine, { where: { id: input.machineId } }) : null;
        await publishEvent(m, {
          resource: op.resource ?? 'vms',
          action: 'progress',
          resourceId: input.machineId ?? op.resourceId,
          payload: {
            operationId: op.id,
            type: op.type,
            step: input.step,
            status: input.status,
            error: input.error,
            at: input.at,
          },
          actorId: op.actorId,
          workflowId: op.workflowId,
          // Before the row exists and after it is gone, route by what the operation was asked to do.
          ownerId: machine?.ownerId ?? stringField(op.input, 'ownerId'),
          departmentId: machine?.departmentId ?? stringField(op.input, 'departmentId'),
          dedupeKey: `${op.id}:${input.step}:${input.status}:${input.at}`,
        });
      });
    },

    /** Marks an operation finished (idempotent: a finished operation keeps its first outcome). */
    async finishOperation(input: {
      operationId: string;
      status: OperationStatus;
      error?: string;
      at: string;
    }): Promise<void> {
      await dataSource
        .getRepository(Operation)
        .createQueryBuilder()
        .update()
        .set({ status: input.status, error: input.error ?? null, finishedAt: new Date(input.at) })
        .where('id = :id AND status = :running', { id: input.operationId, running: 'running' })
        .execute();
    },

    /** Validates a create request and resolves its defaults, host, network and libvirt names. */
    async planCreate(input: CreateMachineInput): Promise<CreatePlan> {
      checkMachineName(input.name);
      checkRange('cpu', input.cpu);
      checkRange('memoryMiB', input.memoryMiB);
      checkRange('storageGiB', input.storageGiB);
      const m = dataSource.manager;
      const [template, dept, owner] = await Promise.all([
        m.findOne(MachineTemplate, { where: { id: input.templateId } }),
        m.findOne(Department, { where: { id: input.departmentId } }),
        m.findOne(User, { where: { id: input.ownerId } }),
      ]);
      if (!template) throw permanent(FailureType.NotFound, 'template not found', { field: 'templateId' });
      if (!dept) throw permanent(FailureType.NotFound, 'department not found', { field: 'departmentId' });
      if (!owner) throw permanent(FailureType.NotFound, 'owner not found', { field: 'ownerId' });
      if (owner.role !== 'ADMIN') {
        const member = await m.findOne(DepartmentMember, {
          where: { departmentId: dept.id, userId: owner.id },
        });
        if (!member)
          throw permanent(FailureType.Forbidden, 'the owner is not a member of this department', {
            field: 'departmentId',
          });
      }
      const host = input.hostName
        ? await m.findOne(Host, { where: { name: input.hostName } })
        : await m.findOne(Host, { where: {}, order: { name: 'ASC' } });
      if (!host)
        throw permanent(
          FailureType.NotFound,
          input.hostName ? 'host not found' : 'no hypervisor host is registered',
          { field: 'hostName' },
        );
      const cpu = input.cpu ?? template.cpu;
      const memoryMiB = input.memoryMiB ?? template.memoryMiB;
      if (cpu > host.cpus)
        throw permanent(FailureType.Refused, `cpu ${cpu} exceeds the host's ${host.cpus} CPUs`, {
          field: 'cpu',
        });
      if (memoryMiB > host.memoryMiB) {
        throw permanent(
          FailureType.Refused,
          `memory ${memoryMiB} MiB exceeds the host's ${host.memoryMiB} MiB`,
          {
            field: 'memory',
          },
        );
      }
      const taken = await m.exists(Machine, { where: { departmentId: dept.id, name: input.name } });
      const mine = await m.findOne(Machine, { where: { id: input.machineId } });
      assertOwnRetry(mine, input.operationId);
      if (taken && !mine)
        throw permanent(FailureType.NameTaken, `a machine named "${input.name}" exists in this department`, {
          field: 'name',
        });
      // A new machine has no rules or includes of its own; its services are its department's.
      const specs = await compileMachineFilters(m, {
        machineId: input.machineId,
        departmentId: dept.id,
        vm: {
          rules: [],
          includes: [],
          services: departmentServicesOf(await departmentServices(m, dept.id)),
        },
      });
      return {
        ...planSpecs(specs),
        cpu,
        memoryMiB,
        storageGiB: input.storageGiB ?? template.storageGiB,
        os: template.os,
        internalName: libvirtNames.domain(input.machineId),
        filterName: libvirtNames.vmFilter(input.machineId),
        departmentFilterName: dept.filterName,
        networkName: input.networkName ?? dept.networkName ?? host.defaultNetwork,
        host: {
          name: host.name,
          storagePool: host.storagePool,
          cpus: host.cpus,
          memoryMiB: Number(host.memoryMiB),
        },
      };
    },

    /** Validates a clone request: the source exists and is off, the name is free. Returns the source and the plan. */
    async planClone(input: {
      sourceMachineId: string;
      machineId: string;
      name: string;
      operationId: string;
    }): Promise<{ source: MachineView; plan: CreatePlan }> {
      checkMachineName(input.name);
      const m = dataSource.manager;
      const source = await loadMachineView(m, input.sourceMachineId);
      if (!source)
        throw permanent(FailureType.NotFound, 'source machine not found', { field: 'sourceMachineId' });
      if (source.status !== 'off') {
        throw permanent(FailureType.Refused, `the source must be off to be cloned (it is ${source.status})`, {
          field: 'sourceMachineId',
        });
      }
      if (!source.diskPath)
        throw permanent(FailureType.Refused, 'the source has no disk', { field: 'sourceMachineId' });
      const taken = await m.exists(Machine, {
        where: { departmentId: source.departmentId, name: input.name },
      });
      const mine = await m.findOne(Machine, { where: { id: input.machineId } });
      assertOwnRetry(mine, input.operationId);
      if (taken && !mine)
        throw permanent(FailureType.NameTaken, `a machine named "${input.name}" exists in this department`, {
          field: 'name',
        });
      const host = await m.findOneOrFail(Host, { where: { name: source.hostName } });
      // The clone gets a copy of its source's VM rules, includes and service settings (insertMachine).
      const specs = await compileMachineFilters(m, {
        machineId: input.machineId,
        departmentId: source.departmentId,
        vm: await machineVmContent(m, source.id),
      });
      return {
        source,
        plan: {
          ...planSpecs(specs),
          cpu: source.cpu,
          memoryMiB: source.memoryMiB,
          storageGiB: source.storageGiB,
          os: source.os,
          internalName: libvirtNames.domain(input.machineId),
          filterName: libvirtNames.vmFilter(input.machineId),
          departmentFilterName: source.departmentFilterName,
          networkName: source.networkName ?? host.defaultNetwork,
          host: {
            name: host.name,
            storagePool: host.storagePool,
            cpus: host.cpus,
            memoryMiB: Number(host.memoryMiB),
          },
        },
      };
    },

    /**
     * Validates a hardware change against the limits and the host's capacity: at least one field, disks
     * only grow. Returns the machine.
     */
    async planHardware(input: {
      machineId: string;
      cpu?: number;
      memoryMiB?: number;
      storageGiB?: number;
    }): Promise<MachineView> {
      if (input.cpu === undefined && input.memoryMiB === undefined && input.storageGiB === undefined) {
        throw permanent(FailureType.Validation, 'give at least one of cpu, memory, storage', {
          field: 'cpu',
        });
      }
      checkRange('cpu', input.cpu);
      checkRange('memoryMiB', input.memoryMiB);
      checkRange('storageGiB', input.storageGiB);
      const m = dataSource.manager;
      const machine = await loadMachineView(m, input.machineId);
      if (!machine) throw permanent(FailureType.NotFound, 'machine not found', { field: 'machineId' });
      const host = await m.findOneOrFail(Host, { where: { name: machine.hostName } });
      if (input.cpu !== undefined && input.cpu > host.cpus) {
        throw permanent(FailureType.Refused, `cpu ${input.cpu} exceeds the host's ${host.cpus} CPUs`, {
          field: 'cpu',
        });
      }
      if (input.memoryMiB !== undefined && input.memoryMiB > Number(host.memoryMiB)) {
        throw permanent(
          FailureType.Refused,
          `memory ${input.memoryMiB} MiB exceeds the host's ${host.memoryMiB} MiB`,
          { field: 'memory' },
        );
      }
      if (input.storageGiB !== undefined && input.storageGiB < machine.storageGiB) {
        throw permanent(
          FailureType.Refused,
          `disks only grow: ${input.storageGiB} GiB is less than the current ${machine.storageGiB} GiB`,
          {
            field: 'storage',
          },
        );
      }
      if (
        input.storageGiB !== undefined &&
        input.storageGiB > machine.storageGiB &&
        machine.linkedClone === false
      ) {
        const clones = await m.count(Machine, { where: { sourceMachineId: machine.id, linkedClone: true } });
        if (clones > 0)
          throw permanent(FailureType.Refused, 'this machine backs linked clones; its disk cannot change', {
            field: 'storage',
          });
      }
      return machine;
    },

    /** Inserts the machine row in status `creating` (idempotent by id) and emits `vms:create`. */
    async insertMachine(input: {
      operationId: string;
      actorId: string | null;
      machineId: string;
      name: string;
      ownerId: string;
      departmentId: string;
      templateId: string;
      hostName: string;
      plan: Pick<
        CreatePlan,
        'cpu' | 'memoryMiB' | 'storageGiB' | 'os' | 'internalName' | 'filterName' | 'networkName'
      >;
      status?: MachineStatus;
      sourceMachineId?: string | null;
      linkedClone?: boolean;
      guestSecrets?: SealedSecretRef;
    }): Promise<MachineView> {
      const view = await tx(async (m) => {
        const existing = await loadMachineView(m, input.machineId);
        if (existing) {
          assertOwnRetry(existing, input.operationId);
          return existing;
        }
        const host = await m.findOneOrFail(Host, { where: { name: input.hostName } });
        try {
          await m.insert(Machine, {
            id: input.machineId,
            name: input.name,
            internalName: input.plan.internalName,
            libvirtUuid: null,
            status: input.status ?? 'creating',
            ownerId: input.ownerId,
            departmentId: input.departmentId,
            templateId: input.templateId,
            hostId: host.id,
            cpu: input.plan.cpu,
            memoryMiB: input.plan.memoryMiB,
            storageGiB: input.plan.storageGiB,
            os: input.plan.os,
            macAddress: null,
            networkName: input.plan.networkName,
            diskPath: null,
            filterName: input.plan.filterName,
            sourceMachineId: input.sourceMachineId ?? null,
            linkedClone: input.linkedClone ?? false,
            pendingHardware: null,
            lastError: null,
            currentOperationId: input.operationId,
            guestSecrets: input.guestSecrets ?? null,
          } as Partial<Machine>);
        } catch (err) {
          if (isDuplicate(err))
            throw permanent(
              FailureType.NameTaken,
              `a machine named "${input.name}" exists in this department`,
              {
                field: 'name',
              },
            );
          throw err;
        }
        // Its filter row, in the same transaction: a retry finds the machine and never copies twice.
        const filter = await ensureVmFilterRow(m, input.machineId, input.name);
        if (input.sourceMachineId) await copyVmFilter(m, input.sourceMachineId, input.machineId, filter);
        const view = (await loadMachineView(m, input.machineId))!;
        await machineEvent(m, view, 'create', {
          actorId: input.actorId,
          dedupeKey: `${input.operationId}:vms:create`,
          payload: { operationId: input.operationId },
        });
        return view;
      });
      return view;
    },

    /**
     * Validates a department change: the machine is off, running or suspended; the target department exists;
     * the owner is a member of it (or an admin); the name is free there; the VM filter includes no custom filter
     * of its old department. Compiles the filters it will need.
     */
    async planDepartmentChange(input: {
      machineId: string;
      departmentId: string;
      operationId: string;
    }): Promise<DepartmentChangePlan> {
      const m = dataSource.manager;
      const machine = await loadMachineView(m, input.machineId);
      if (!machine) throw permanent(FailureType.NotFound, 'machine not found', { field: 'machineId' });
      if (!DEPARTMENT_CHANGE_FROM.includes(machine.status)) {
        throw permanent(
          FailureType.IllegalTransition,
          `machine is ${machine.status}, expected ${DEPARTMENT_CHANGE_FROM.join(' or ')}`,
          { status: machine.status },
        );
      }
      const dept = await m.findOne(Department, { where: { id: input.departmentId } });
      if (!dept) throw permanent(FailureType.NotFound, 'department not found', { field: 'departmentId' });
      const owner = await m.findOne(User, { where: { id: machine.ownerId } });
      if (owner?.role !== 'ADMIN') {
        const member = await m.findOne(DepartmentMember, {
          where: { departmentId: dept.id, userId: machine.ownerId },
        });
        if (!member)
          throw permanent(FailureType.Forbidden, "the machine's owner is not a member of this department", {
            field: 'departmentId',
          });
      }
      const noop = machine.departmentId === dept.id;
      if (!noop && (await m.exists(Machine, { where: { departmentId: dept.id, name: machine.name } }))) {
        throw permanent(
          FailureType.NameTaken,
          `a machine named "${machine.name}" exists in that department`,
          {
            field: 'departmentId',
          },
        );
      }
      const content = await machineVmContent(m, machine.id, dept.id);
      if (content.includes.length > 0) {
        const scoped = await m.find(FirewallFilter, { where: { id: In(content.includes), kind: 'custom' } });
        const foreign = scoped.filter((f) => f.departmentId && f.departmentId !== dept.id);
        if (foreign.length > 0) {
          throw permanent(
            FailureType.Refused,
            `the machine's filter includes custom filters of its department (${foreign.map((f) => f.id).join(', ')}): remove them first`,
            { field: 'departmentId' },
          );
        }
      }
      const specs = await compileMachineFilters(m, {
        machineId: machine.id,
        departmentId: dept.id,
        vm: content,
      });
      return {
        machine,
        noop,
        departmentFilterName: dept.filterName,
        departmentFilterSpecs: specs.shared,
        vmFilterSpec: specs.vm,
        pruneCandidates: noop ? [] : [machine.departmentFilterName],
      };
    },

    /**
     * Moves a machine to a department (its own rules and service settings stay; its effective services now
     * fall back to the new department) and emits `vms:update` to both departments. With `onlyIfHeldBy`, only
     * while that operation holds the machine (how the undo reverts only its own change). Idempotent.
     */
    async setMachineDepartment(input: {
      operationId: string;
      actorId: string | null;
      machineId: string;
      departmentId: string;
      onlyIfHeldBy?: string;
    }): Promise<MachineView> {
      const view = await tx(async (m) => {
        const row = await m.findOne(Machine, {
          where: { id: input.machineId },
          lock: { mode: 'pessimistic_write' },
        });
        if (!row) throw permanent(FailureType.NotFound, 'machine not found', { field: 'machineId' });
        if (input.onlyIfHeldBy !== undefined && row.currentOperationId !== input.onlyIfHeldBy)
          return (await loadMachineView(m, row.id))!;
        if (row.departmentId === input.departmentId) return (await loadMachineView(m, row.id))!;
        const previousDepartmentId = row.departmentId;
        try {
          await m.update(Machine, { id: row.id }, { departmentId: input.departmentId });
        } catch (err) {
          if (isDuplicate(err))
            throw permanent(
              FailureType.NameTaken,
              `a machine named "${row.name}" exists in that department`,
              {
                field: 'departmentId',
              },
            );
          throw err;
        }
        const view = (await loadMachineView(m, row.id))!;
        const payload = {
          operationId: input.operationId,
          previousDepartmentId,
          departmentId: input.departmentId,
        };
        const key = `${input.operationId}:department:${input.departmentId}`;
        await machineEvent(m, view, 'update', { actorId: input.actorId, dedupeKey: key, payload });
        // The old department's room learns that the machine left.
        await publishEvent(m, {
          resource: 'vms',
          action: 'update',
          resourceId: view.id,
          payload: { machine: publicMachine(view), ...payload },
          actorId: input.actorId,
          workflowId: workflowId(),
          ownerId: view.ownerId,
          departmentId: previousDepartmentId,
          dedupeKey: `${key}:left`,
        });
        return view;
      });
      return view;
    },

    /** Loads a machine (null when it does not exist). */
    async getMachine(machineId: string): Promise<MachineView | null> {
      return loadMachineView(dataSource.manager, machineId);
    },

    /** Counts machines whose disk is a linked clone of this one (they protect it from destroy). */
    async countLinkedClones(machineId: string): Promise<number> {
      // A failed clone whose overlay was removed (diskPath cleared) no longer uses the source.
      return dataSource.getRepository(Machine).count({
        where: { sourceMachineId: machineId, linkedClone: true, diskPath: Not(IsNull()) },
      });
    },

    /**
     * Moves a machine to a status, accepting only the legal transitions (and `from`, when given, as the
     * statuses it must currently be in), records fields alongside, and emits an event. Re-running with
     * the machine already in the target status changes nothing.
     */
    async setMachineStatus(input: {
      operationId: string | null;
      actorId?: string | null;
      machineId: string;
      status: MachineStatus;
      from?: MachineStatus[];
      /** Event action to emit (default `update`): `power_on`, `power_off`, `suspend`, `resume`… */
      action?: string;
      fields?: Partial<
        Pick<
          Machine,
          | 'libvirtUuid'
          | 'macAddress'
          | 'diskPath'
          | 'cpu'
          | 'memoryMiB'
          | 'storageGiB'
          | 'pendingHardware'
          | 'lastError'
          | 'networkName'
        >
      >;
      /** Clears currentOperationId (undos, and a clone's source); operations otherwise release at their very end. */
      release?: boolean;
      /** For events not caused by an operation (hypervisor events): makes the event write idempotent. */
      eventKey?: string;
      /** Change nothing if an operation owns the machine (hypervisor events defer to running workflows). */
      idleOnly?: boolean;
      /**
       * Refuse (Refused) while linked clones use this machine's disk: checked inside the same transaction as
       * the status change, so a clone finishing meanwhile cannot slip through.
       */
      requireNoLinkedClones?: boolean;
      /**
       * Change nothing unless this operation holds the machine (currentOperationId): how an undo of a
       * status change reverts only what its own operation did, never another operation's lock.
       */
      onlyIfHeldBy?: string;
    }): Promise<MachineView> {
      const view = await tx(async (m) => {
        const row = await m.findOne(Machine, {
          where: { id: input.machineId },
          lock: { mode: 'pessimistic_write' },
        });
        if (!row) throw permanent(FailureType.NotFound, 'machine not found', { field: 'machineId' });
        if (input.idleOnly && (row.currentOperationId || row.status === input.status))
          return (await loadMachineView(m, row.id))!;
        if (input.onlyIfHeldBy !== undefined && row.currentOperationId !== input.onlyIfHeldBy)
          return (await loadMachineView(m, row.id))!;
        const same = row.status === input.status;
        // A clone locks its source under the clone's workflow id, so only `cloning` can be held by another
        // running operation: entering it again must not steal that lock.
        if (
          same &&
          row.status === 'cloning' &&
          row.currentOperationId &&
          row.currentOperationId !== input.operationId
        ) {
          throw permanent(FailureType.IllegalTransition, 'the machine is being cloned by another operation', {
            status: row.status,
          });
        }
        if (input.requireNoLinkedClones && !same) {
          const clones = await m.count(Machine, {
            where: { sourceMachineId: row.id, linkedClone: true, diskPath: Not(IsNull()) },
          });
          if (clones > 0)
            throw permanent(FailureType.Refused, 'this machine backs linked clones: destroy them first', {
              status: row.status,
            });
        }
        if (!same) {
          if (input.from && !input.from.includes(row.status)) {
            throw permanent(
              FailureType.IllegalTransition,
              `machine is ${row.status}, expected ${input.from.join(' or ')}`,
              {
                status: row.status,
              },
            );
          }
          if (!canTransition(row.status, input.status)) {
            throw permanent(
              FailureType.IllegalTransition,
              `machine cannot go from ${row.status} to ${input.status}`,
              {
                status: row.status,
              },
            );
          }
        }
        const patch: Partial<Machine> = { status: input.status, ...(input.fields ?? {}) };
        if (input.operationId && !input.release) patch.currentOperationId = input.operationId;
        if (input.release) patch.currentOperationId = null;
        await m.update(Machine, { id: row.id }, patch);
        const view = (await loadMachineView(m, row.id))!;
        await machineEvent(m, view, input.action ?? 'update', {
          actorId: input.actorId,
          dedupeKey:
            input.eventKey ?? `${input.operationId}:status:${input.status}:${input.action ?? 'update'}`,
          payload: { operationId: input.operationId, previousStatus: row.status },
        });
        return view;
      });
      return view;
    },

    /**
     * Marks a machine whose create or clone failed as `failed`, with the reason (no-op when the row was
     * never written). Its hypervisor resources are gone by then: the saga compensated first.
     */
    async failMachine(input: {
      operationId: string;
      actorId: string | null;
      machineId: string;
      error: string;
    }): Promise<void> {
      await tx(async (m) => {
        const row = await m.findOne(Machine, {
          where: { id: input.machineId },
          lock: { mode: 'pessimistic_write' },
        });
        if (!row) return;
        await m.update(
          Machine,
          { id: row.id },
          // Its disk is gone (the saga removed it): a failed linked clone no longer pins its source.
          { status: 'failed', lastError: input.error, currentOperationId: null, diskPath: null },
        );
        const view = (await loadMachineView(m, row.id))!;
        await machineEvent(m, view, 'update', {
          actorId: input.actorId,
          dedupeKey: `${input.operationId}:status:failed`,
          payload: { operationId: input.operationId, error: input.error, previousStatus: row.status },
        });
      });
    },

    /**
     * Ends an operation's hold on a machine (currentOperationId), if it still has it. The last write of
     * every operation, after all its steps: until then its undos can tell their own changes apart.
     */
    async releaseMachine(input: { machineId: string; operationId: string }): Promise<void> {
      await dataSource
        .getRepository(Machine)
        .createQueryBuilder()
        .update()
        .set({ currentOperationId: null })
        .where('id = :id AND currentOperationId = :op', { id: input.machineId, op: input.operationId })
        .execute();
    },

    /** Deletes the machine row with its filter row, rules and service settings (idempotent); emits `vms:delete`. */
    async deleteMachine(input: {
      operationId: string;
      actorId: string | null;
      machineId: string;
    }): Promise<void> {
      await tx(async (m) => {
        const view = await loadMachineView(m, input.machineId);
        if (!view) return;
        await deleteVmFilterRows(m, input.machineId);
        await m.delete(Machine, { id: input.machineId });
        await machineEvent(m, view, 'delete', {
          actorId: input.actorId,
          dedupeKey: `${input.operationId}:vms:delete`,
          payload: { operationId: input.operationId },
        });
      });
    },
  };
}

/** The fields of a machine that events and API responses carry. */
export function publicMachine(v: MachineView): Record<string, unknown> {
  return {
    id: v.id,
    name: v.name,
    status: v.status,
    ownerId: v.ownerId,
    departmentId: v.departmentId,
    templateId: v.templateId,
    hostName: v.hostName,
    cpu: v.cpu,
    memoryMiB: v.memoryMiB,
    storageGiB: v.storageGiB,
    os: v.os,
    macAddress: v.macAddress,
    networkName: v.networkName,
    linkedClone: v.linkedClone,
    sourceMachineId: v.sourceMachineId,
    pendingHardware: v.pendingHardware,
    currentOperationId: v.currentOperationId,
  };
}

export type DbActivities = ReturnType<typeof createDbActivities>;
