import { readFile, rm, rmdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Element } from '@xmldom/xmldom';
import { type Connection, type Network } from '../libvirt/connection';
import { isLibvirtError, LibvirtErrorCode } from '../libvirt/errors';
import { type LibvirtProvider } from '../libvirt/provider';
import {
  buildDhcpHostXml,
  buildDhcpRangeXml,
  buildNetworkXml,
  parseNetworkXml,
  parseXmlRoot,
  type DhcpHostSpec,
  type NetworkSpec,
  type ParsedNetwork,
} from '../libvirt/xml';
import { attr, child, children } from '../libvirt/xml/dom';
import { lookupHostInterface, type HostInterface } from '../networks/host-interfaces';
import { findConflicts, type ExistingNetwork } from '../networks/validate';
import { FailureType, type NetworkModeName } from '../workflows/shared';
import { permanent, refusedByHost } from './failures';
import { lookupOwnDomain, moveDomainInterface, nicFilterParametersOn, type InterfaceMove } from './libvirt';
import { nullIfMissing } from './missing';
import {
  listHostNetworks,
  networkDomains,
  type DomainOnNetwork,
  type HostNetwork,
} from '../networks/host-read';

/** Dependencies of the network activities. */
export interface NetworkActivityDeps {
  libvirt: LibvirtProvider;
  /** Looks up a host interface (tests replace it); default: libvirt's interface driver through virsh. */
  hostInterface?: (uri: string, name: string) => Promise<HostInterface | null>;
}

/** A vmflow network in libvirt: its deterministic name, and its id (= its libvirt UUID). */
export interface NetworkRef {
  networkId: string;
  internalName: string;
}

export type { DomainOnNetwork, HostNetwork };

/** A network's state in libvirt, read before a redefine (the undo puts `xml` back). */
export interface NetworkState {
  exists: boolean;
  active: boolean;
  autostart: boolean;
  /** The persistent definition (null when it does not exist). */
  xml: string | null;
}

const noNetwork = (e: unknown) => isLibvirtError(e, LibvirtErrorCode.NO_NETWORK);
/** libvirt's "not running" answer to a destroy, when the network stopped meanwhile. */
const notRunning = (e: unknown) => isLibvirtError(e, LibvirtErrorCode.OPERATION_INVALID);

/** Where the system libvirtd keeps the runtime state of its networks (dnsmasq's pid file, ports). */
const NETWORK_STATE_DIR = '/run/libvirt/network';

/**
 * libvirt 9 leaves a network's dnsmasq pid file (`<name>.pid`, the process gone) and its empty
 * `<name>/ports` directory behind when the network is removed. Once vmflow's network is undefined, those
 * are removed too, when the libvirtd is this machine's system daemon (its files are visible here) and
 * the pid file names no running dnsmasq of that network. Best effort: anything else is left alone.
 */
async function removeStaleState(uri: string, name: string): Promise<void> {
  if (!/^[a-z+]+:\/\/\/system$/.test(uri)) return;
  const pidFile = join(NETWORK_STATE_DIR, `${name}.pid`);
  try {
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    const cmdline = pid > 0 ? await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '') : '';
    if (cmdline.includes('dnsmasq') && cmdline.includes(`${name}.conf`)) return; // still serving: not stale
    await rm(pidFile, { force: true });
  } catch {
    // no pid file, or not ours to read
  }
  for (const dir of [join(NETWORK_STATE_DIR, name, 'ports'), join(NETWORK_STATE_DIR, name)])
    await rmdir(dir).catch(() => undefined); // only when empty
}

/** The `<range>` or `<host>` elements of every IP block's DHCP service in network XML. */
function dhcpEntries(xml: string, kind: 'range' | 'host'): Element[] {
  return children(parseXmlRoot(xml, 'network'), 'ip').flatMap((ip) => {
    const dhcp = child(ip, 'dhcp');
    return dhcp ? children(dhcp, kind) : [];
  });
}

/** The parts of a network two definitions must share to be "the same" (what vmflow sets). */
function essence(n: ParsedNetwork): string {
  return JSON.stringify({
    mode: n.mode,
    bridge: n.bridgeName ?? null,
    forwardDev: n.forwardDev ?? null,
    ips: n.ips,
    vlan: n.vlanTag ?? null,
    virtualPort: n.virtualPort ?? null,
    bandwidth: n.bandwidth ?? null,
  });
}

/**
 * Virtual-network activities (define, start, update, delete; the NIC move of changeMachineNetwork). Run
 * on the host's task queue. Every one looks up the network by its deterministic name first and refuses
 * to touch a libvirt network of that name whose UUID is not the network id: a network vmflow did not
 * make is never changed or removed. Each is idempotent.
 */
export function createNetworkActivities({ libvirt, hostInterface }: NetworkActivityDeps) {
  const findInterface = hostInterface ?? lookupHostInterface;

  const lookup = (conn: Connection, name: string): Promise<Network | null> =>
    nullIfMissing(LibvirtErrorCode.NO_NETWORK, () => conn.lookupNetworkByName(name));

  /** The network if it exists and is ours; null when absent. */
  async function ours(ref: NetworkRef): Promise<Network | null> {
    const conn = await libvirt.get();
    const net = await lookup(conn, ref.internalName);
    if (!net) return null;
    const uuid = await net.getUUID();
    if (uuid.toLowerCase() !== ref.networkId.toLowerCase()) {
      throw permanent(
        FailureType.Refused,
        `libvirt network ${ref.internalName} is not vmflow's network ${ref.networkId} (its UUID is ${uuid}): left untouched`,
      );
    }
    return net;
  }

  async function mustHave(ref: NetworkRef): Promise<Network> {
    const net = await ours(ref);
    if (!net)
      throw permanent(
        FailureType.NotFound,
        `libvirt network ${ref.internalName} does not exist on this host`,
      );
    return net;
  }

  async function stop(net: Network): Promise<void> {
    if (!(await net.isActive())) return;
    try {
      await net.destroy();
    } catch (e) {
      if (!notRunning(e)) throw e;
    }
  }

  /**
   * Applies one virNetworkUpdate where it is still needed, live (when running) and persistently: an add
   * where the entry is missing, a delete where it is present. `find` returns the entry as libvirt holds
   * it (a delete must name it exactly), or null.
   */
  async function edit(
    ref: NetworkRef,
    section: 'ip-dhcp-range' | 'ip-dhcp-host',
    command: 'add' | 'delete',
    entry: { xml: string; find: (networkXml: string) => string | null },
  ): Promise<void> {
    try {
      await applyEdit(ref, section, command, entry);
    } catch (e) {
      // An entry libvirt will not take (a duplicate, a range it refuses) is refused for good.
      const refused =
        isLibvirtError(e, LibvirtErrorCode.OPERATION_INVALID) ||
        isLibvirtError(e, LibvirtErrorCode.OPERATION_UNSUPPORTED);
      throw refused
        ? permanent(FailureType.Refused, `libvirt refused the ${section} ${command}: ${(e as Error).message}`)
        : refusedByHost(e, `libvirt refused the ${section} ${command}`);
    }
  }

  async function applyEdit(
    ref: NetworkRef,
    section: 'ip-dhcp-range' | 'ip-dhcp-host',
    command: 'add' | 'delete',
    entry: { xml: string; find: (networkXml: string) => string | null },
  ): Promise<void> {
    const net = await mustHave(ref);
    const active = await net.isActive();
    const inConfig = entry.find(await net.getXML({ inactive: true }));
    const inLive = active ? entry.find(await net.getXML()) : null;
    if (command === 'add') {
      const config = inConfig === null;
      const live = active && inLive === null;
      if (config || live) await net.update('add-last', section, entry.xml, { live, config });
      return;
    }
    if (inConfig !== null) await net.update('delete', section, inConfig, { config: true });
    if (inLive !== null) await net.update('delete', section, inLive, { live: true });
  }

  const rangeEntry = (range: { start: string; end: string }) => ({
    xml: buildDhcpRangeXml(range),
    find: (xml: string) =>
      dhcpEntries(xml, 'range').some((r) => attr(r, 'start') === range.start && attr(r, 'end') === range.end)
        ? buildDhcpRangeXml(range)
        : null,
  });

  const hostEntry = (host: DhcpHostSpec) => ({
    xml: buildDhcpHostXml(host),
    find: (xml: string) => {
      const mac = host.mac?.toLowerCase();
      const found = dhcpEntries(xml, 'host').find((h) =>
        mac ? attr(h, 'mac')?.toLowerCase() === mac : attr(h, 'ip') === host.ip,
      );
      if (!found) return null;
      const held: DhcpHostSpec = { ip: attr(found, 'ip') ?? host.ip };
      const [m, n] = [attr(found, 'mac'), attr(found, 'name')];
      if (m !== undefined) held.mac = m;
      if (n !== undefined) held.name = n;
      return buildDhcpHostXml(held);
    },
  });

  return {
    /** The host's libvirt networks with their bridges and subnets (read-only). */
    async listHostNetworks(): Promise<HostNetwork[]> {
      return listHostNetworks(libvirt);
    },

    /**
     * Validates a network against the host (the workflow's first step, after the database's): its subnet
     * overlaps no libvirt network of the host, its bridge is no other network's, and in `bridge` mode the
     * host bridge exists. Throws ValidationError (field `cidr`/`bridgeName`) or NameTakenError.
     */
    async checkHostNetwork(
      input: NetworkRef & {
        mode: NetworkModeName;
        cidr: string | null;
        bridgeName: string;
        vlanId?: number | null;
      },
    ): Promise<void> {
      const others: ExistingNetwork[] = [];
      for (const n of await listHostNetworks(libvirt)) {
        if (n.name === input.internalName && n.uuid.toLowerCase() === input.networkId.toLowerCase()) continue;
        others.push({ label: `libvirt network ${n.name}`, cidrs: n.cidrs, bridgeName: n.bridgeName });
      }
      const [problem] = findConflicts({ cidr: input.cidr, bridgeName: input.bridgeName }, others);
      if (problem) {
        throw permanent(
          problem.kind === 'taken' ? FailureType.NameTaken : FailureType.Validation,
          `${problem.field}: ${problem.message}`,
          {
            field: problem.field,
          },
        );
      }
      if (input.mode === 'bridge') {
        const iface = await findInterface(libvirt.uri, input.bridgeName);
        if (!iface)
          throw permanent(FailureType.Validation, `the host has no bridge named ${input.bridgeName}`, {
            field: 'bridgeName',
          });
        // A VLAN tag needs an Open vSwitch bridge (which libvirt's interface driver does not list as 'bridge').
        if (iface.type !== 'bridge' && input.vlanId == null)
          throw permanent(
            FailureType.Validation,
            `${input.bridgeName} is not a bridge (libvirt reports it as ${iface.type})`,
            { field: 'bridgeName' },
          );
      }
    },

    /** Defines the network unless it exists already (ours). */
    async defineNetwork(input: NetworkRef & { spec: NetworkSpec }): Promise<{ bridgeName: string | null }> {
      if (input.spec.name !== input.internalName || input.spec.uuid !== input.networkId)
        throw permanent(FailureType.Validation, 'the spec does not carry the network name and id');
      let net = await ours(input);
      if (!net) {
        try {
          net = await (await libvirt.get()).defineNetwork(buildNetworkXml(input.spec), { validate: true });
        } catch (e) {
          throw refusedByHost(e, `libvirt refused the definition of ${input.internalName}`);
        }
      }
      return { bridgeName: await net.getBridgeName().catch(() => input.spec.bridgeName ?? null) };
    },

    /** Starts the network (creates its bridge, starts its dnsmasq); no-op when running. */
    async startNetwork(input: NetworkRef): Promise<void> {
      const net = await mustHave(input);
      if (await net.isActive()) return;
      try {
        await net.create();
      } catch (e) {
        throw refusedByHost(e, `libvirt could not start ${input.internalName}`);
      }
    },

    /** Stops the network (its bridge and dnsmasq go); no-op when stopped or absent. */
    async stopNetwork(input: NetworkRef): Promise<void> {
      const net = await ours(input);
      if (net) await stop(net);
    },

    /** Sets whether the network starts with libvirtd. */
    async setNetworkAutostart(input: NetworkRef & { on: boolean }): Promise<void> {
      const net = await mustHave(input);
      if ((await net.getAutostart()) !== input.on) await net.setAutostart(input.on);
    },

    /** Stops and removes the network; no-op when absent. */
    async undefineNetwork(input: NetworkRef): Promise<void> {
      const net = await ours(input);
      if (net) {
        await stop(net);
        try {
          await net.undefine();
        } catch (e) {
          if (!noNetwork(e)) throw e;
        }
      }
      await removeStaleState(libvirt.uri, input.internalName);
    },

    /** The network's state and persistent definition (read-only). */
    async getNetworkState(input: NetworkRef): Promise<NetworkState> {
      const net = await ours(input);
      if (!net) return { exists: false, active: false, autostart: false, xml: null };
      return {
        exists: true,
        active: await net.isActive(),
        autostart: await net.getAutostart(),
        xml: await net.getXML({ inactive: true }),
      };
    },

    /** Adds a DHCP range live and persistently (where it is still missing). */
    async addDhcpRange(input: NetworkRef & { range: { start: string; end: string } }): Promise<void> {
      await edit(input, 'ip-dhcp-range', 'add', rangeEntry(input.range));
    },

    /** Removes a DHCP range live and persistently (where it is still present). */
    async removeDhcpRange(input: NetworkRef & { range: { start: string; end: string } }): Promise<void> {
      await edit(input, 'ip-dhcp-range', 'delete', rangeEntry(input.range));
    },

    /** Adds a static DHCP lease live and persistently (where no lease for its MAC exists yet). */
    async addDhcpHost(input: NetworkRef & { host: DhcpHostSpec }): Promise<void> {
      await edit(input, 'ip-dhcp-host', 'add', hostEntry(input.host));
    },

    /** Removes the static DHCP lease of a MAC live and persistently (as libvirt holds it). */
    async removeDhcpHost(input: NetworkRef & { host: DhcpHostSpec }): Promise<void> {
      await edit(input, 'ip-dhcp-host', 'delete', hostEntry(input.host));
    },

    /**
     * Safe redefine: defines the new spec and, if the network is to run (`active`), restarts it on the new
     * definition. If the new definition does not start, the previous one is defined and started again
     * before this fails (RefusedError), so the network is never left down. Only for networks no running
     * guest uses (a restart detaches their taps).
     */
    async redefineNetwork(
      input: NetworkRef & {
        spec: NetworkSpec;
        active: boolean;
        /** The definition before (from getNetworkState): what goes back if the new one does not start. */
        previous: string;
      },
    ): Promise<void> {
      const conn = await libvirt.get();
      const net = await mustHave(input);
      const { previous } = input;
      const next = buildNetworkXml(input.spec);
      const changed =
        essence(parseNetworkXml(await net.getXML({ inactive: true }))) !== essence(parseNetworkXml(next));
      if (changed) {
        try {
          await conn.defineNetwork(next, { validate: true });
        } catch (e) {
          throw refusedByHost(e, `libvirt refused the new definition of ${input.internalName}`);
        }
      }
      if (!input.active) return;
      const running = await net.isActive();
      if (
        running &&
        !changed &&
        essence(parseNetworkXml(await net.getXML())) === essence(parseNetworkXml(next))
      )
        return; // a retry after the restart
      await stop(net);
      try {
        await net.create();
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        await conn.defineNetwork(previous);
        await net.create();
        throw permanent(
          FailureType.Refused,
          `the new definition of ${input.internalName} did not start (${why}); the previous one runs again`,
        );
      }
    },

    /**
     * Puts a definition recorded by {@link getNetworkState} back (the undo of a redefine) and the
     * network in the state it was (running or not), restarting it only if what runs differs.
     */
    async restoreNetwork(input: NetworkRef & { xml: string; active: boolean }): Promise<void> {
      const conn = await libvirt.get();
      const net = await mustHave(input);
      const wanted = essence(parseNetworkXml(input.xml));
      if (essence(parseNetworkXml(await net.getXML({ inactive: true }))) !== wanted)
        await conn.defineNetwork(input.xml);
      const running = await net.isActive();
      if (!input.active) {
        if (running) await stop(net);
        return;
      }
      if (running && essence(parseNetworkXml(await net.getXML())) === wanted) return;
      await stop(net);
      await net.create();
    },

    /**
     * Every domain of the host with a NIC on the network: in its definition, or (running) live. Covers
     * domains vmflow has no row for, so a network is never removed or restarted under one.
     */
    async networkDomains(input: { internalName: string }): Promise<DomainOnNetwork[]> {
      return networkDomains(libvirt, input);
    },

    /**
     * Moves a machine's NIC (by MAC) to another libvirt network: persistent definition, and live when it
     * runs (see {@link moveDomainInterface}). The same MAC and the same filterref stay; its IP-learning
     * parameters become the new network's ({@link nicFilterParametersOn}).
     */
    async moveMachineInterface(input: {
      internalName: string;
      machineId: string;
      mac: string | null;
      network: string;
    }): Promise<InterfaceMove> {
      const conn = await libvirt.get();
      const dom = await lookupOwnDomain(conn, input.internalName, input.machineId);
      if (!dom)
        throw permanent(FailureType.NotFound, `domain ${input.internalName} does not exist on this host`);
      const learning = await nicFilterParametersOn(conn, input.network);
      return moveDomainInterface(dom, { mac: input.mac, network: input.network, learning });
    },
  };
}

export type NetworkActivities = ReturnType<typeof createNetworkActivities>;
