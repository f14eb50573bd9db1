/**
 * Database reads about networks that the network activities and the API both make (the API to refuse a
 * bad request before starting a workflow, the activities again inside it). No writes.
 */
import { type EntityManager, Not } from 'typeorm';
import { Machine } from '../entities/machine';
import { type MachineStatus } from '../entities/machine-status';
import { Network } from '../entities/network';
import { type NetworkDesign } from './validate';

/** A machine attached to a network (delete and redefine refusals name them). */
export interface AttachedMachine {
  id: string;
  name: string;
  status: MachineStatus;
}

/** The row's fields as a design. */
export function designOf(row: Network): NetworkDesign {
  return {
    mode: row.mode,
    cidr: row.cidr,
    gateway: row.gateway,
    dhcpStart: row.dhcpStart,
    dhcpEnd: row.dhcpEnd,
    staticHosts: row.staticHosts?.length
      ? row.staticHosts.map((h) => ({ mac: h.mac ?? '', ip: h.ip, ...(h.name ? { name: h.name } : {}) }))
      : null,
    bridgeName: row.mode === 'bridge' ? row.bridgeName : null,
    forwardDev: row.forwardDev,
    vlanId: row.vlanId,
    bandwidth: row.bandwidth,
  };
}

/** The machines whose row names this libvirt network (any status). */
export async function machinesOn(m: EntityManager, internalName: string): Promise<AttachedMachine[]> {
  const rows = await m.find(Machine, {
    where: { networkName: internalName },
    select: { id: true, name: true, status: true },
    order: { name: 'ASC' },
  });
  return rows.map((r) => ({ id: r.id, name: r.name, status: r.status }));
}

/**
 * The other networks a network on `hostId` must not collide with: every vmflow network of the host but
 * `exceptId`, whatever its status (a half-deleted one still holds its subnet in libvirt).
 */
export async function vmflowNetworksOn(m: EntityManager, hostId: string, exceptId: string) {
  const rows = await m.find(Network, { where: { hostId, id: Not(exceptId) } });
  return rows.map((r) => ({
    label: `network "${r.name}"`,
    cidrs: r.cidr ? [r.cidr] : [],
    bridgeName: r.bridgeName,
  }));
}
