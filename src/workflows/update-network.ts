import { ApplicationFailure } from '@temporalio/workflow';
import { activateNetwork, db, dbUndo, hostActivities, hostUndo, runNetworkOperation } from './saga';
import { FailureType, type NetworkOperationResult, type UpdateNetworkInput } from './shared';

/**
 * Changes a virtual network. The DHCP range and the static leases change live through virNetworkUpdate
 * (live and persistent), one edit per step, each with its inverse edit as undo. The subnet, the gateway
 * or the bandwidth need a redefine: the old definition is kept, the new one defined and the network
 * restarted on it (if the new one does not start, the old one is put back and started); refused while
 * machines that may be running use the network, since a restart cuts their NICs off. The row is
 * `updating` meanwhile, then `active` with the new values, or exactly as before on failure.
 */
export async function updateNetwork(input: UpdateNetworkInput): Promise<NetworkOperationResult> {
  const { networkId, operationId, actorId } = input;
  return runNetworkOperation('update_network', input, async (saga, release) => {
    const { network: n, plan, spec } = await saga.step('validate', () => db.planNetworkChange(input));
    const live = plan.range !== null || plan.removeHosts.length > 0 || plan.addHosts.length > 0;
    if (!plan.redefine.length && !live) return { networkId, status: n.status, applied: 'noop' as const };
    const host = hostActivities(n.hostName);
    const undo = hostUndo(n.hostName);
    const ref = { networkId, internalName: n.internalName };
    if (plan.redefine.length) {
      if (plan.next.cidr !== n.cidr) {
        await saga.step('checkHost', () =>
          host.checkHostNetwork({ ...ref, mode: n.mode, cidr: plan.next.cidr, bridgeName: n.bridgeName }),
        );
      }
      await saga.step('checkDomains', async () => {
        const running = (await host.networkDomains({ internalName: n.internalName })).filter((d) => d.active);
        if (running.length) {
          throw ApplicationFailure.create({
            type: FailureType.Refused,
            message: `restarting the network would cut off running domains: ${running.map((d) => d.domain).join(', ')}`,
            nonRetryable: true,
            details: [{ domains: running }],
          });
        }
      });
    }
    await saga.step(
      'markUpdating',
      () => db.setNetworkStatus({ operationId, actorId, networkId, status: 'updating', from: ['active'] }),
      () =>
        dbUndo.setNetworkStatus({
          operationId,
          actorId,
          networkId,
          status: n.status,
          // Exactly as it was.
          fields: {
            cidr: n.cidr,
            gateway: n.gateway,
            dhcpStart: n.dhcpStart,
            dhcpEnd: n.dhcpEnd,
            staticHosts: n.staticHosts,
            bandwidth: n.bandwidth,
            qosApplied: n.qosApplied,
            lastError: n.lastError,
          },
          release: true,
          onlyIfHeldBy: operationId,
        }),
    );
    if (plan.redefine.length) {
      const before = await host.getNetworkState(ref);
      await saga.step(
        'redefineNetwork',
        () => host.redefineNetwork({ ...ref, spec, active: before.active, previous: before.xml! }),
        () => undo.restoreNetwork({ ...ref, xml: before.xml!, active: before.active }),
      );
    } else {
      const { from, to } = plan.range ?? { from: null, to: null };
      // The new range first, then the old one goes: DHCP keeps serving throughout.
      if (to) {
        await saga.step(
          'addDhcpRange',
          () => host.addDhcpRange({ ...ref, range: to }),
          () => undo.removeDhcpRange({ ...ref, range: to }),
        );
      }
      if (from) {
        await saga.step(
          'removeDhcpRange',
          () => host.removeDhcpRange({ ...ref, range: from }),
          () => undo.addDhcpRange({ ...ref, range: from }),
        );
      }
      // Leases that go first, so a changed lease (same MAC or IP) can be added back.
      for (const h of plan.removeHosts) {
        await saga.step(
          'removeDhcpHost',
          () => host.removeDhcpHost({ ...ref, host: h }),
          () => undo.addDhcpHost({ ...ref, host: h }),
        );
      }
      for (const h of plan.addHosts) {
        await saga.step(
          'addDhcpHost',
          () => host.addDhcpHost({ ...ref, host: h }),
          () => undo.removeDhcpHost({ ...ref, host: h }),
        );
      }
    }
    const next = plan.next;
    await activateNetwork(saga, release, {
      operationId,
      actorId,
      networkId,
      from: ['updating'],
      fields: {
        cidr: next.cidr,
        gateway: next.gateway,
        dhcpStart: next.dhcpStart,
        dhcpEnd: next.dhcpEnd,
        staticHosts: next.staticHosts,
        bandwidth: next.bandwidth,
        qosApplied: next.bandwidth !== null,
      },
    });
    return { networkId, status: 'active', applied: plan.redefine.length ? 'redefined' : 'live' };
  });
}
