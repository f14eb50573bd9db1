import { db, markHardwareUpdating, runMachineOperation } from './saga';
import type { ChangeMachineNetworkInput, MachineOperationResult } from './shared';

/**
 * Moves a machine's NIC to another network (a machine operation: workflow id `vm-<machineId>`). The
 * machine must be off, running or suspended; it is `updating` meanwhile. The NIC keeps its MAC and its
 * filterref; a running guest is moved live where libvirt can (libvirt 9 can for network NICs), else at
 * its next boot. The row then names the new network (`vms:update`). A failure puts the NIC and the row
 * back as they were.
 */
export async function changeMachineNetwork(
  input: ChangeMachineNetworkInput,
): Promise<MachineOperationResult> {
  const { machineId, operationId, actorId } = input;
  return runMachineOperation('change_network', input, async (saga) => {
    const { machine: m, network } = await saga.step('validate', () => db.planMachineNetwork(input));
    if (m.networkName === network.internalName)
      return { machineId, status: m.status, outcome: 'noop' as const };
    const base = { operationId, actorId, machineId };
    const { previous, host, undo } = await markHardwareUpdating(saga, base, m, {
      networkName: m.networkName,
    });
    const nic = { internalName: m.internalName, machineId, mac: m.macAddress };
    const moved = await saga.step(
      'moveInterface',
      () => host.moveMachineInterface({ ...nic, network: network.internalName }),
      // Back to the network the definition named before (the row's, when the NIC was not found).
      () =>
        m.networkName ? undo.moveMachineInterface({ ...nic, network: m.networkName }) : Promise.resolve(),
    );
    // Recorded as a step so the operation shows it: libvirt could not switch the running NIC.
    if (moved.pendingUntilBoot) await saga.step('appliesAtNextBoot', async () => undefined);
    await saga.step('finalize', () =>
      db.setMachineStatus({
        ...base,
        status: previous,
        from: ['updating'],
        fields: { networkName: network.internalName },
      }),
    );
    return { machineId, status: previous, outcome: 'done' as const };
  });
}
