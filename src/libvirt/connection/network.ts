/** A libvirt virtual network (`native/src/network.cc`). */
import { type NativeConstantName, type NativeNetwork } from '../native';
import { type AffectOptions, constant, flagsOf, ipType } from './common';

/** `virNetworkUpdate` commands. */
export type NetworkUpdateCommand = 'modify' | 'delete' | 'add-last' | 'add-first';
const UPDATE_COMMANDS: Record<NetworkUpdateCommand, NativeConstantName> = {
  modify: 'VIR_NETWORK_UPDATE_COMMAND_MODIFY',
  delete: 'VIR_NETWORK_UPDATE_COMMAND_DELETE',
  'add-last': 'VIR_NETWORK_UPDATE_COMMAND_ADD_LAST',
  'add-first': 'VIR_NETWORK_UPDATE_COMMAND_ADD_FIRST',
};

/** `virNetworkUpdate` sections of the network XML. */
export type NetworkUpdateSection =
  | 'bridge'
  | 'domain'
  | 'ip'
  | 'ip-dhcp-host'
  | 'ip-dhcp-range'
  | 'forward'
  | 'forward-interface'
  | 'forward-pf'
  | 'portgroup'
  | 'dns-host'
  | 'dns-txt'
  | 'dns-srv';
const UPDATE_SECTIONS: Record<NetworkUpdateSection, NativeConstantName> = {
  bridge: 'VIR_NETWORK_SECTION_BRIDGE',
  domain: 'VIR_NETWORK_SECTION_DOMAIN',
  ip: 'VIR_NETWORK_SECTION_IP',
  'ip-dhcp-host': 'VIR_NETWORK_SECTION_IP_DHCP_HOST',
  'ip-dhcp-range': 'VIR_NETWORK_SECTION_IP_DHCP_RANGE',
  forward: 'VIR_NETWORK_SECTION_FORWARD',
  'forward-interface': 'VIR_NETWORK_SECTION_FORWARD_INTERFACE',
  'forward-pf': 'VIR_NETWORK_SECTION_FORWARD_PF',
  portgroup: 'VIR_NETWORK_SECTION_PORTGROUP',
  'dns-host': 'VIR_NETWORK_SECTION_DNS_HOST',
  'dns-txt': 'VIR_NETWORK_SECTION_DNS_TXT',
  'dns-srv': 'VIR_NETWORK_SECTION_DNS_SRV',
};

/** A DHCP lease of a libvirt network (`virNetworkGetDHCPLeases`). */
export interface DHCPLease {
  iface: string;
  /** Seconds since the epoch. */
  expiryTime: number;
  type: 'ipv4' | 'ipv6';
  mac: string;
  ipaddr: string;
  prefix: number;
  hostname: string;
  clientid: string;
  iaid: string;
}

/** A libvirt virtual network (bridge, dnsmasq for DHCP/DNS, firewall rules). */
export class Network {
  readonly #native: NativeNetwork;

  /** @internal Obtained from a {@link Connection}. */
  constructor(native: NativeNetwork) {
    this.#native = native;
  }

  /** The network's name. */
  getName(): Promise<string> {
    return this.#native.getName();
  }
  /** The network's UUID string. */
  getUUID(): Promise<string> {
    return this.#native.getUUID();
  }
  /** The host bridge device (`virbr1`, ...). */
  getBridgeName(): Promise<string> {
    return this.#native.getBridgeName();
  }
  /** Starts the network (creates the bridge, starts dnsmasq). */
  create(): Promise<void> {
    return this.#native.create();
  }
  /** Stops the network. */
  destroy(): Promise<void> {
    return this.#native.destroy();
  }
  /** Removes the persistent definition. */
  undefine(): Promise<void> {
    return this.#native.undefine();
  }
  /** Whether the network runs. */
  isActive(): Promise<boolean> {
    return this.#native.isActive();
  }
  /** Whether the network has a persistent definition. */
  isPersistent(): Promise<boolean> {
    return this.#native.isPersistent();
  }
  /** Whether the network starts with the daemon. */
  getAutostart(): Promise<boolean> {
    return this.#native.getAutostart();
  }
  /** Sets whether the network starts with the daemon. */
  setAutostart(on: boolean): Promise<void> {
    return this.#native.setAutostart(on);
  }
  /** The network XML (`inactive`: the persistent definition). */
  getXML(opts?: { inactive?: boolean }): Promise<string> {
    return this.#native.getXML(flagsOf(opts, { inactive: 'VIR_NETWORK_XML_INACTIVE' }));
  }
  /**
   * Changes one section of a network without restarting it, e.g. adds a DHCP host:
   * `update('add-last', 'ip-dhcp-host', "<host mac='..' ip='..'/>", { live: true, config: true })`.
   * `parentIndex` selects the `<ip>` element (-1: the first matching one).
   */
  update(
    command: NetworkUpdateCommand,
    section: NetworkUpdateSection,
    xml: string,
    opts?: { parentIndex?: number } & AffectOptions,
  ): Promise<void> {
    const flags = flagsOf(opts, {
      live: 'VIR_NETWORK_UPDATE_AFFECT_LIVE',
      config: 'VIR_NETWORK_UPDATE_AFFECT_CONFIG',
    });
    return this.#native.update(
      constant(UPDATE_COMMANDS[command]),
      constant(UPDATE_SECTIONS[section]),
      opts?.parentIndex ?? -1,
      xml,
      flags,
    );
  }
  /** Current DHCP leases, optionally of one MAC address. */
  async getDHCPLeases(mac?: string): Promise<DHCPLease[]> {
    return (await this.#native.getDHCPLeases(mac ?? null)).map((l) => ({ ...l, type: ipType(l.type) }));
  }
}
