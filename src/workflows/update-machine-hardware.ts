import { db, dbUndo, markHardwareUpdating, runMachineOperation } from './saga';
import { type MachineOperationResult, type UpdateHardwareInput, libvirtNames } from './shared';

/**
 * Changes vCPUs, memory and disk size. Validated against the host's capacity; what libvirt can apply
 * live (vCPUs and memory up to their maximum) is applied live, the rest is persisted for the next boot
 * and recorded as pending; disks only grow. A failure restores the previous configuration exactly.
 * The disk grows last: a grown disk cannot be shrunk back, so nothing that can fail comes after it but
 * the (retried) database write.
 */
export async function updateMachineHardware(input: UpdateHardwareInput): Promise<MachineOperationResult> {
  return runMachineOperation('update_hardware', input, async (saga) => {
    const m = await saga.step('validate', () => db.planHardware(input));
    const ref = { internalName: m.internalName, machineId: m.id };
    const base = { operationId: input.operationId, actorId: input.actorId, machineId: m.id };
    // Back to what it was, but the disk size: a grown disk cannot shrink (the growDisk undo records it).
    const { previous, host, undo } = await markHardwareUpdating(saga, base, m, {
      cpu: m.cpu,
      memoryMiB: m.memoryMiB,
      pendingHardware: m.pendingHardware,
    });
    const wantsCpuOrMemory = input.cpu !== undefined || input.memoryMiB !== undefined;
    const before = wantsCpuOrMemory ? await host.getDomainHardware(ref) : null;
    const change = { ...ref, cpu: input.cpu, memoryMiB: input.memoryMiB };
    if (before) {
      await saga.step(
        'configureHardware',
        () => host.configureDomainHardware(change),
        () => undo.restoreDomainHardware({ ...ref, prev: before }),
      );
    }
    if (input.storageGiB !== undefined && input.storageGiB > m.storageGiB) {
      const volume = { pool: m.storagePool, name: libvirtNames.volume(m.id) };
      await saga.step(
        'growDisk',
        () => host.growDisk({ ...volume, internalName: m.internalName, capacityGiB: input.storageGiB! }),
        // A grown disk cannot shrink back: the undo records the size it really has.
        async () => {
          const actual = await undo.getVolumeCapacity(volume);
          if (actual !== null && actual !== m.storageGiB) {
            await dbUndo.setMachineStatus({
              ...base,
              status: 'updating',
              fields: { storageGiB: actual },
              eventKey: `${input.operationId}:undo:storage`,
            });
          }
        },
      );
    }
    // Live changes come last: a hot-plugged vCPU cannot be taken back without the guest.
    let pending = { ...(m.pendingHardware ?? {}) };
    if (before?.active) {
      const applied = await saga.step(
        'applyLive',
        () => host.applyLiveHardware(change),
        () => undo.restoreDomainHardware({ ...ref, prev: before }),
      );
      pending = { ...pending, ...applied.pending };
      for (const k of Object.keys(applied.live) as Array<keyof typeof pending>) delete pending[k];
    }
    await saga.step('finalize', () =>
      db.setMachineStatus({
        ...base,
        status: previous,
        fields: {
          cpu: input.cpu ?? m.cpu,
          memoryMiB: input.memoryMiB ?? m.memoryMiB,
          storageGiB: input.storageGiB ?? m.storageGiB,
          pendingHardware: Object.keys(pending).length ? pending : null,
        },
      }),
    );
    return { machineId: m.id, status: previous };
  });
}
