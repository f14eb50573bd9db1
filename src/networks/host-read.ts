/**
 * Read-only libvirt look-ups about networks that the network activities and the API both make: the
 * host's libvirt networks (to refuse a subnet or bridge that collides) and the domains with a NIC on a
 * network (to refuse removing or restarting it under them). Nothing here changes libvirt.
 */
import { isLibvirtError, LibvirtErrorCode } from '../libvirt/errors';
import { type LibvirtProvider } from '../libvirt/provider';
import { parseDomainXml, parseNetworkXml } from '../libvirt/xml';
import { subnetsOf } from './validate';

/** A libvirt network of the host, as the validation compares with it. */
export interface HostNetwork {
  name: string;
  uuid: string;
  bridgeName: string | null;
  /** Its subnets, normalised (`10.250.0.0/24`). */
  cidrs: string[];
  active: boolean;
}

/** A domain with a NIC on a network (any domain of the host, vmflow's or not). */
export interface DomainOnNetwork {
  domain: string;
  /** From the domain's vmflow metadata (null: not a vmflow domain). */
  machineId: string | null;
  /** It runs, and its running NIC is on the network. */
  active: boolean;
}

const noNetwork = (e: unknown) => isLibvirtError(e, LibvirtErrorCode.NO_NETWORK);

/** The host's libvirt networks with their bridges and subnets (read-only). */
export async function listHostNetworks(libvirt: LibvirtProvider): Promise<HostNetwork[]> {
  const conn = await libvirt.get();
  const out: HostNetwork[] = [];
  for (const net of await conn.listAllNetworks()) {
    try {
      const parsed = parseNetworkXml(await net.getXML({ inactive: true }));
      out.push({
        name: parsed.name,
        uuid: await net.getUUID(),
        bridgeName: parsed.bridgeName ?? null,
        cidrs: subnetsOf(parsed.ips),
        active: await net.isActive(),
      });
    } catch (e) {
      if (!noNetwork(e)) throw e; // removed while listing
    }
  }
  return out;
}

/**
 * Every domain of the host with a NIC on the network: in its definition, or (running) live. Covers
 * domains vmflow has no row for, so a network is never removed or restarted under one.
 */
export async function networkDomains(
  libvirt: LibvirtProvider,
  input: { internalName: string },
): Promise<DomainOnNetwork[]> {
  const conn = await libvirt.get();
  const out: DomainOnNetwork[] = [];
  const onIt = (xml: string) => {
    const d = parseDomainXml(xml);
    return { uses: d.interfaces.some((i) => i.type === 'network' && i.source === input.internalName), d };
  };
  for (const dom of await conn.listAllDomains()) {
    try {
      const cfg = onIt(await dom.getXML({ inactive: true }));
      const live = (await dom.isActive()) ? onIt(await dom.getXML()) : null;
      if (cfg.uses || live?.uses) {
        out.push({
          domain: cfg.d.name,
          machineId: cfg.d.metadata.machineId ?? null,
          active: live?.uses ?? false,
        });
      }
    } catch (e) {
      if (!isLibvirtError(e, LibvirtErrorCode.NO_DOMAIN)) throw e; // removed while listing
    }
  }
  return out;
}
