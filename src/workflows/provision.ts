import { patched } from '@temporalio/workflow';
import type { CreatePlan } from '../activities/db';
import { db, hostActivities, hostUndo, longRunningActivity, type Saga } from './saga';
import { libvirtNames, type SealedSecretRef } from './shared';

type InsertMachine = Parameters<typeof db.insertMachine>[0];

/**
 * The `record` step of createMachine and cloneMachine: the new machine's row, `creating`, on the planned
 * host (no undo of its own: the operation's end decides what a failed or cancelled operation leaves of the row).
 */
export async function recordMachine(
  saga: Saga,
  input: Pick<InsertMachine, 'operationId' | 'actorId' | 'machineId' | 'name' | 'ownerId'>,
  plan: CreatePlan,
  row: Omit<
    InsertMachine,
    'operationId' | 'actorId' | 'machineId' | 'name' | 'ownerId' | 'hostName' | 'plan'
  >,
): Promise<void> {
  const { operationId, actorId, machineId, name, ownerId } = input;
  await saga.step('record', () =>
    db.insertMachine({
      operationId,
      actorId,
      machineId,
      name,
      ownerId,
      hostName: plan.host.name,
      plan,
      ...row,
    }),
  );
}

/** What {@link provisionMachine} made. */
export interface Provisioned {
  diskPath: string;
  uuid: string;
  mac: string;
  domainRef: { internalName: string; machineId: string };
}

/**
 * The hypervisor half of createMachine and cloneMachine, as saga steps each with its undo: the disk
 * (empty, a full copy of `cloneFromPath`, or an overlay on `backingPath`), the department's filter and the
 * custom filters it needs (compiled by the plan; left alone when the host has them, pruned on failure when
 * nothing else uses them), the VM's own filter, and the domain.
 */
export async function provisionMachine(
  saga: Saga,
  input: {
    machineId: string;
    operationId: string;
    name: string;
    plan: CreatePlan;
    disk?: { cloneFromPath?: string; backingPath?: string };
    /** The user's sealed guest secrets (password, product key, user data), for the seed. */
    guestSecrets?: SealedSecretRef;
  },
): Promise<Provisioned> {
  const { plan, machineId } = input;
  const host = hostActivities(plan.host.name);
  const long = hostActivities(plan.host.name, longRunningActivity);
  const undo = hostUndo(plan.host.name);
  const volume = { pool: plan.host.storagePool, name: libvirtNames.volume(machineId) };
  const image = plan.image;
  // A disk from an image: an overlay on it (linked) or a copy of it (full), grown to the planned size. A
  // clone's disk (input.disk) comes from its source instead.
  const fromImage =
    image && !input.disk
      ? image.diskMode === 'full'
        ? { cloneFromPath: image.path }
        : { backingPath: image.path, backingFormat: image.format }
      : {};
  const { path } = await saga.step(
    'createVolume',
    () => long.createVolume({ ...volume, capacityGiB: plan.storageGiB, ...fromImage, ...input.disk }),
    () => undo.deleteVolume(volume),
  );
  // The first-boot seed (NoCloud or unattend ISO), before the domain that mounts it.
  let seedPath: string | undefined;
  if (image?.seed && image.provisioning !== 'none') {
    const seedRef = { pool: plan.host.storagePool, machineId };
    const kind = image.provisioning;
    const provisioning = image.seed;
    const seed = await saga.step(
      'writeSeed',
      () =>
        long.writeSeed({
          ...seedRef,
          kind,
          provisioning,
          ...(input.guestSecrets ? { guestSecrets: input.guestSecrets } : {}),
        }),
      () => undo.deleteSeed(seedRef),
    );
    seedPath = seed.path;
  }
  const shared = plan.departmentFilterSpecs;
  const sharedNames = [...new Set([...(shared ?? []).map((s) => s.name), plan.departmentFilterName])];
  // Runs recorded before filters were pruned registered no undo here (replay keeps them as they were).
  const prune = patched('prune-filters');
  await saga.step(
    'ensureDepartmentFilter',
    () => host.ensureDepartmentFilter({ name: plan.departmentFilterName, specs: shared }),
    // Only what nothing on the host uses any more (the VM filter's undo runs first): another machine's
    // department filter stays.
    prune ? () => undo.pruneFilters({ candidates: sharedNames, cascade: true }) : undefined,
  );
  await saga.step(
    'createVmFilter',
    () =>
      host.ensureVmFilter({
        name: plan.filterName,
        departmentFilter: plan.departmentFilterName,
        spec: plan.vmFilterSpec,
        requires: shared,
      }),
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
        ...(seedPath ? { seedPath } : {}),
        ...(image ? { firmware: image.firmware } : {}),
      }),
    () => undo.undefineDomain(domainRef),
  );
  return { diskPath: path, uuid, mac, domainRef };
}
