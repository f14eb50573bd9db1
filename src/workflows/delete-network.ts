import { ApplicationFailure } from '@temporalio/workflow';
import { db, dbUndo, failureMessage, hostActivities, runNetworkOperation } from './saga';
import type { NetworkStatus } from '../entities/network';
import { FailureType, type DeleteNetworkInput, type NetworkOperationResult } from './shared';

/**
 * Deletes a virtual network: refused (InUseError, naming them) while machines are attached, in the
 * database or in libvirt (any domain of the host with a NIC on it); else `deleting`, stop (bridge and
 * dnsmasq go), undefine, delete the row and emit `networks:delete`. Forward-only: every step is "remove
 * if present", so running it again after a failure finishes the job. A refusal changes nothing.
 */
export async function deleteNetwork(input: DeleteNetworkInput): Promise<NetworkOperationResult> {
  const { networkId, operationId, actorId } = input;
  let previous: NetworkStatus = 'active';
  let destructive = false;
  return runNetworkOperation(
    'delete_network',
    input,
    async (saga) => {
      const n = await saga.step('validate', () => db.planNetworkDelete({ networkId }));
      if (!n) return { networkId, status: 'deleted', applied: 'noop' as const };
      const host = hostActivities(n.hostName);
      const ref = { networkId, internalName: n.internalName };
      await saga.step('checkDomains', async () => {
        const domains = await host.networkDomains({ internalName: n.internalName });
        if (domains.length) {
          throw ApplicationFailure.create({
            type: FailureType.InUse,
            message: `domains still have a NIC on the network: ${domains.map((d) => d.domain).join(', ')}`,
            nonRetryable: true,
            details: [{ domains }],
          });
        }
      });
      previous = n.status;
      await saga.step('markDeleting', () =>
        db.setNetworkStatus({
          operationId,
          actorId,
          networkId,
          status: 'deleting',
          from: ['active', 'failed', 'deleting'],
          requireUnused: true,
        }),
      );
      destructive = true;
      await saga.step('stopNetwork', () => host.stopNetwork(ref));
      await saga.step('undefineNetwork', () => host.undefineNetwork(ref));
      await saga.step('deleteRecord', () => db.deleteNetworkRecord({ operationId, actorId, networkId }));
      return { networkId, status: 'deleted' };
    },
    // Nothing to undo. Refused before anything was removed: the network is as it was. Failed once the
    // removal began: `failed` with the reason, and deleting it again finishes the job.
    async (err) => {
      const n = await dbUndo.getNetwork(networkId);
      if (n && n.status === 'deleting' && n.currentOperationId === operationId) {
        await dbUndo.setNetworkStatus({
          operationId,
          actorId,
          networkId,
          status: destructive ? 'failed' : previous,
          fields: destructive ? { lastError: `delete failed: ${failureMessage(err)}` } : {},
          release: true,
          onlyIfHeldBy: operationId,
        });
      }
    },
  );
}
