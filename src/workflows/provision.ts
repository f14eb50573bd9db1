import type { CreatePlan } from '../activities/db';
import { hostActivities, hostUndo, longRunningActivity, type Saga } from './saga';
import { libvirtNames } from './shared';

/** What {@link provisionMachine} made. */
export interface Provisioned {
  diskPath: string;
  uuid: string;
  mac: string;
  domainRef: { internalName: string; machineId: string };
}

/**
 * The hypervisor half of createMachine and cloneMachine, as saga steps each with its undo: the disk
 * (empty, a full copy of `cloneFromPath`, or an overlay on `backingPath`), the department's filter (kept:
 * it is the department's), the VM's own filter, and the domain.
 */
export async function provisionMachine(
  saga: Saga,
  input: {
    machineId: string;
    operationId: string;
    name: string;
    plan: CreatePlan;
    disk?: { cloneFromPath?: string; backingPath?: string };
  },
): Promise<Provisioned> {
  const { plan, machineId } = input;
  const host = hostActivities(plan.host.name);
  const long = hostActivities(plan.host.name, longRunningActivity);
  const undo = hostUndo(plan.host.name);
  const volume = { pool: plan.host.storagePool, name: libvirtNames.volume(machineId) };
  const { path } = await saga.step(
    'createVolume',
    () => long.createVolume({ ...volume, capacityGiB: plan.storageGiB, ...input.disk }),
    () => undo.deleteVolume(volume),
  );
  await saga.step('ensureDepartmentFilter', () =>
    host.ensureDepartmentFilter({ name: plan.departmentFilterName }),
  );
  await saga.step(
    'createVmFilter',
    () => host.ensureVmFilter({ name: plan.filterName, departmentFilter: plan.departmentFilterName }),
    () => undo.removeVmFilter({ name: plan.filterName }),
  );
  const domainRef = { internalName: plan.internalName, machineId };
  const { uuid, mac } = await saga.step(
    'defineDomain',
    () =>
      host.defineDomain({
        ...domainRef,
        operationId: input.operationId,
        title: input.name,
        cpu: plan.cpu,
        memoryMiB: plan.memoryMiB,
        diskPath: path,
        networkName: plan.networkName,
        filterName: plan.filterName,
      }),
    () => undo.undefineDomain(domainRef),
  );
  return { diskPath: path, uuid, mac, domainRef };
}
