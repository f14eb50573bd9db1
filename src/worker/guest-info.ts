/**
 * What the host sees of its running guests, for `GET /api/machines/:id` and `vms:update` events: whether
 * the QEMU guest agent is connected (libvirt's state of the `org.qemu.guest_agent.0` channel, read from the
 * live domain XML: libvirt follows the agent's connects and disconnects) and the guest's IP addresses (from
 * the agent when it is connected, else from the network's DHCP leases). Read from libvirt each time, never
 * remembered: after a worker restart the first refresh is as true as any other.
 */
import { type Domain } from '../libvirt/connection';
import { attr, children, descend, parseRoot } from '../libvirt/xml/dom';
import { GUEST_AGENT_CHANNEL } from '../libvirt/xml/domain';
import { type GuestAgentState } from '../entities/machine';

/** A guest as the host sees it. */
export interface GuestInfo {
  guestAgent: GuestAgentState;
  ipAddresses: string[];
}

/** Whether the live domain XML shows the QEMU guest agent's channel connected. */
export function guestAgentState(liveXml: string): GuestAgentState {
  const devices = descend(parseRoot(liveXml, 'domain'), 'devices');
  const channel = children(devices!, 'channel').find(
    (c) => attr(descend(c, 'target'), 'name') === GUEST_AGENT_CHANNEL,
  );
  return attr(descend(channel, 'target'), 'state') === 'connected' ? 'connected' : 'absent';
}

/** Loopback and link-local addresses say nothing about where a guest can be reached. */
export function reachableAddress(address: string): boolean {
  const a = address.toLowerCase();
  return !(a.startsWith('127.') || a === '::1' || a.startsWith('fe80:') || a.startsWith('169.254.'));
}

/** The guest agent's view of a running domain (addresses sorted, IPv4 first), or the DHCP lease's. */
export async function readGuestInfo(domain: Domain): Promise<GuestInfo> {
  const guestAgent = guestAgentState(await domain.getXML());
  let ifaces: Awaited<ReturnType<Domain['getInterfaceAddresses']>> = [];
  if (guestAgent === 'connected') {
    // An agent that is connected but busy (or a guest still starting it) answers with an error: the lease
    // is then the best we know.
    ifaces = await domain.getInterfaceAddresses('agent').catch(() => []);
  }
  if (!ifaces.some((i) => i.addrs.some((a) => reachableAddress(a.address))))
    ifaces = await domain.getInterfaceAddresses('lease').catch(() => []);
  const addresses = ifaces.flatMap((i) => i.addrs).filter((a) => reachableAddress(a.address));
  addresses.sort((x, y) =>
    x.type === y.type ? x.address.localeCompare(y.address) : x.type === 'ipv4' ? -1 : 1,
  );
  return { guestAgent, ipAddresses: [...new Set(addresses.map((a) => a.address))] };
}
