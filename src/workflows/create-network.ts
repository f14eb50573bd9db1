import { activateNetwork, db, dbUndo, hostActivities, hostUndo, runNetworkOperation } from './saga';
import { type CreateNetworkInput, type NetworkOperationResult } from './shared';

/**
 * Creates a virtual network: validate (the database's networks, then the host's libvirt networks),
 * record it (`creating`), define it in libvirt (UUID = the network id), start it, mark it autostart,
 * mark it `active` and emit `networks:create`. Any failure or a cancellation leaves nothing behind: no
 * libvirt network, no bridge, no dnsmasq, no row.
 */
export async function createNetwork(input: CreateNetworkInput): Promise<NetworkOperationResult> {
  const { networkId, operationId, actorId } = input;
  return runNetworkOperation('create_network', input, async (saga, release) => {
    const plan = await saga.step('validate', () => db.planNetwork(input));
    const host = hostActivities(plan.hostName);
    const undo = hostUndo(plan.hostName);
    const ref = { networkId, internalName: plan.internalName };
    await saga.step('checkHost', () =>
      host.checkHostNetwork({
        ...ref,
        mode: plan.design.mode,
        cidr: plan.design.cidr,
        bridgeName: plan.bridgeName,
        vlanId: plan.design.vlanId,
      }),
    );
    await saga.step(
      'record',
      () => db.insertNetwork({ operationId, actorId, plan }),
      // Only the row this operation made and still holds: never another network's.
      () => dbUndo.deleteNetworkRecord({ operationId, actorId, networkId, onlyIfHeldBy: operationId }),
    );
    await saga.step(
      'defineNetwork',
      () => host.defineNetwork({ ...ref, spec: plan.spec }),
      () => undo.undefineNetwork(ref),
    );
    await saga.step(
      'startNetwork',
      () => host.startNetwork(ref),
      () => undo.stopNetwork(ref),
    );
    // The undefine above also drops autostart: this step needs no undo of its own.
    await saga.step('autostart', () => host.setNetworkAutostart({ ...ref, on: true }));
    await activateNetwork(saga, release, {
      operationId,
      actorId,
      networkId,
      from: ['creating'],
      action: 'create',
    });
    return { networkId, status: 'active' };
  });
}
