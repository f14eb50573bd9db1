/**
 * The machine rows: what workflows read of a machine ({@link MachineView}), and every write to a machine
 * row (insert, status, department, delete) with its `vms:<action>` event. Part of {@link createDbActivities}.
 */
import { randomUUID } from 'node:crypto';
import { type DataSource, type EntityManager, IsNull, Not } from 'typeorm';
import { Department } from '../entities/department';
import { FirewallFilter, FirewallRule, ServiceSetting } from '../entities/firewall';
import { Host } from '../entities/host';
import { type GuestAgentState, Machine } from '../entities/machine';
import { canTransition, type MachineStatus } from '../entities/machine-status';
import { ensureVmFilterRow, includeNames } from '../firewall/load';
import { FailureType, type SealedSecretRef } from '../workflows/shared';
import { isDuplicate, permanent } from './failures';
import { currentWorkflowId, publishEvent } from './events';
import { type CreatePlan, type DbActivityDeps, type MachineView } from './db-types';
import { nameTakenMessage } from '../machines/rules';
import { assertFrom, heldByAnother, holdAfter, lockExisting, lockRow, releaseHold } from './db-hold';

/**
 * A row with the new machine's id may exist only as this very operation's own half-made row (a retry
 * after a lost response). Any other row is another machine: a create must never adopt it (its undos would
 * then tear a live VM down).
 */
export function assertOwnRetry(
  row: { status: string; currentOperationId: string | null } | null,
  operationId: string,
): void {
  if (row && !(row.status === 'creating' && row.currentOperationId === operationId)) {
    throw permanent(FailureType.IllegalTransition, 'a machine with this id already exists', {
      field: 'machineId',
    });
  }
}

/**
 * How many machines have a disk that is a linked clone of this one's (a failed clone whose overlay was
 * removed, its diskPath cleared, no longer uses it).
 */
function countLinkedClones(m: EntityManager, machineId: string): Promise<number> {
  return m.count(Machine, {
    where: { sourceMachineId: machineId, linkedClone: true, diskPath: Not(IsNull()) },
  });
}

export async function loadMachineView(m: EntityManager, machineId: string): Promise<MachineView | null> {
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
    imageId: row.imageId,
    ipAddresses: row.ipAddresses ?? [],
    guestAgent: row.guestAgent,
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
    ipAddresses: v.ipAddresses,
    guestAgent: v.guestAgent,
    currentOperationId: v.currentOperationId,
  };
}

/**
 * Writes a `vms:<action>` event about a machine, in the caller's transaction. It goes to the machine's
 * department, or to `e.departmentId` (the department a machine left).
 */
export function machineEvent(
  m: EntityManager,
  view: MachineView,
  action: string,
  e: {
    actorId: string | null | undefined;
    dedupeKey: string;
    payload: Record<string, unknown>;
    departmentId?: string;
  },
): Promise<void> {
  return publishEvent(m, {
    resource: 'vms',
    action,
    resourceId: view.id,
    payload: { machine: publicMachine(view), ...e.payload },
    actorId: e.actorId ?? null,
    workflowId: currentWorkflowId(),
    ownerId: view.ownerId,
    departmentId: e.departmentId ?? view.departmentId,
    dedupeKey: e.dedupeKey,
  });
}

/**
 * Records what the host sees of a guest (host-sync, not workflows): its addresses and whether its guest
 * agent is connected. Writes, and emits `vms:update`, only when something changed; a machine that is
 * gone or held by an operation that is destroying it is left alone.
 */
export async function setGuestInfo(
  dataSource: DataSource,
  input: {
    machineId: string;
    ipAddresses: string[];
    guestAgent: GuestAgentState;
  },
  /** The row as the caller just read it (host-sync reads all of a host's rows at once): saves a read. */
  seen?: Machine,
): Promise<boolean> {
  const same = (row: Machine) =>
    row.guestAgent === input.guestAgent &&
    JSON.stringify(row.ipAddresses ?? []) === JSON.stringify(input.ipAddresses);
  // Nearly every refresh changes nothing: compare without a lock first.
  seen ??= (await dataSource.getRepository(Machine).findOneBy({ id: input.machineId })) ?? undefined;
  if (!seen || same(seen)) return false;
  return dataSource.transaction(async (m) => {
    const row = await m.findOne(Machine, {
      where: { id: input.machineId },
      lock: { mode: 'pessimistic_write' },
    });
    if (!row || row.status === 'destroying' || same(row)) return false;
    await m.update(Machine, { id: row.id }, { ipAddresses: input.ipAddresses, guestAgent: input.guestAgent });
    const view = (await loadMachineView(m, row.id))!;
    await machineEvent(m, view, 'update', {
      actorId: null,
      dedupeKey: `guest:${row.id}:${randomUUID()}`,
      payload: { guest: { ipAddresses: input.ipAddresses, guestAgent: input.guestAgent } },
    });
    return true;
  });
}

/** Activities that read and write machine rows. Run on the control task queue; each is idempotent. */
export function createMachineDbActivities({ dataSource }: DbActivityDeps) {
  const tx = <T>(fn: (m: EntityManager) => Promise<T>) => dataSource.transaction(fn);
  return {
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
        'cpu' | 'memoryMiB' | 'storageGiB' | 'os' | 'internalName' | 'filterName' | 'networkName' | 'image'
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
            // The image its disk is made from (an image in use cannot be deleted), and what its seed provisions.
            imageId: input.plan.image?.id ?? null,
            provisioning: input.plan.image?.seed ?? null,
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
            throw permanent(FailureType.NameTaken, nameTakenMessage(input.name), { field: 'name' });
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
        const row = await lockExisting(m, Machine, input.machineId, 'machine', 'machineId');
        if (heldByAnother(row, input.onlyIfHeldBy)) return (await loadMachineView(m, row.id))!;
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
        await machineEvent(m, view, 'update', {
          actorId: input.actorId,
          dedupeKey: `${key}:left`,
          payload,
          departmentId: previousDepartmentId,
        });
        return view;
      });
      return view;
    },

    /** Loads a machine (null when it does not exist). */
    async getMachine(machineId: string): Promise<MachineView | null> {
      return loadMachineView(dataSource.manager, machineId);
    },

    /**
     * What a destroy starts from, in one read: the machine (null when there is none), refused (Refused)
     * while linked clones use its disk.
     */
    async planDestroy(machineId: string): Promise<MachineView | null> {
      const view = await loadMachineView(dataSource.manager, machineId);
      if (view && (await countLinkedClones(dataSource.manager, machineId)) > 0) {
        throw permanent(FailureType.Refused, 'this machine backs linked clones: destroy them first', {
          status: view.status,
        });
      }
      return view;
    },

    /** Counts machines whose disk is a linked clone of this one (they protect it from destroy). */
    async countLinkedClones(machineId: string): Promise<number> {
      return countLinkedClones(dataSource.manager, machineId);
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
        const row = await lockExisting(m, Machine, input.machineId, 'machine', 'machineId');
        if (input.idleOnly && (row.currentOperationId || row.status === input.status))
          return (await loadMachineView(m, row.id))!;
        if (heldByAnother(row, input.onlyIfHeldBy)) return (await loadMachineView(m, row.id))!;
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
          if ((await countLinkedClones(m, row.id)) > 0)
            throw permanent(FailureType.Refused, 'this machine backs linked clones: destroy them first', {
              status: row.status,
            });
        }
        assertFrom('machine', row.status, input.status, input.from);
        if (!same) {
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
        const patch: Partial<Machine> = {
          status: input.status,
          ...(input.fields ?? {}),
          ...holdAfter(input.operationId, input.release),
        };
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
        const row = await lockRow(m, Machine, input.machineId);
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
      await releaseHold(dataSource, Machine, input.machineId, input.operationId);
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
