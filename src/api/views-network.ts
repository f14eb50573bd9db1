/** What the API returns for a network: explicit fields only. */
import { type Network } from '../entities/network';

const iso = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString() : null);

/** A network, with the name of its host. */
export function networkView(n: Network, hostName: string | null) {
  return {
    id: n.id,
    name: n.name,
    description: n.description,
    mode: n.mode,
    cidr: n.cidr,
    gateway: n.gateway,
    dhcpStart: n.dhcpStart,
    dhcpEnd: n.dhcpEnd,
    staticHosts: (n.staticHosts ?? []).map((h) => ({
      mac: h.mac ?? '',
      ip: h.ip,
      ...(h.name !== undefined ? { name: h.name } : {}),
    })),
    bridgeName: n.bridgeName,
    forwardDev: n.forwardDev,
    departmentId: n.departmentId,
    vlanId: n.vlanId,
    bandwidth: n.bandwidth,
    qosApplied: Boolean(n.qosApplied),
    hostName,
    internalName: n.internalName,
    status: n.status,
    lastError: n.lastError,
    currentOperationId: n.currentOperationId,
    createdAt: iso(n.createdAt),
    updatedAt: iso(n.updatedAt),
  };
}

/** A network as the API returns it (type of {@link networkView}). */
export type NetworkApiView = ReturnType<typeof networkView>;
