/** A libvirt domain (`native/src/domain.cc`). */
import { type NativeConstantName, type NativeDomain, type TypedParamValue } from '../native';
import { type AffectOptions, affect, constant, flagsOf, ipType, nameOf } from './common';

/** A domain's state (libvirt `virDomainState`, index = enum value). */
export type DomainState =
  'nostate' | 'running' | 'blocked' | 'paused' | 'shutdown' | 'shutoff' | 'crashed' | 'pmsuspended';

/** `virDomainState` values in enum order. */
export const DOMAIN_STATES: readonly DomainState[] = [
  'nostate',
  'running',
  'blocked',
  'paused',
  'shutdown',
  'shutoff',
  'crashed',
  'pmsuspended',
];

/** Special `timeoutSec` values of {@link Domain.qemuAgentCommand}. */
export const AgentTimeout = { BLOCK: -2, DEFAULT: -1, NOWAIT: 0 } as const;

/** Domain information (`virDomainGetInfo`). */
export interface DomainInfo {
  state: DomainState;
  maxMemoryKiB: number;
  memoryKiB: number;
  vcpus: number;
  cpuTimeNs: number;
}

/** Groups of domain statistics (`virDomainStatsTypes`). */
export type DomainStatsGroup = 'state' | 'cpu' | 'balloon' | 'vcpu' | 'interface' | 'block';
const STATS_GROUPS: Record<DomainStatsGroup, NativeConstantName> = {
  state: 'VIR_DOMAIN_STATS_STATE',
  cpu: 'VIR_DOMAIN_STATS_CPU_TOTAL',
  balloon: 'VIR_DOMAIN_STATS_BALLOON',
  vcpu: 'VIR_DOMAIN_STATS_VCPU',
  interface: 'VIR_DOMAIN_STATS_INTERFACE',
  block: 'VIR_DOMAIN_STATS_BLOCK',
};

export function statsMask(groups: DomainStatsGroup[] | undefined): number {
  return (groups ?? []).reduce((mask, g) => mask | constant(STATS_GROUPS[g]), 0);
}

/** An IP address of a guest interface. */
export interface GuestIPAddress {
  type: 'ipv4' | 'ipv6';
  address: string;
  prefix: number;
}

/** A guest interface and its addresses (`virDomainInterfaceAddresses`). */
export interface GuestInterface {
  name: string;
  hwaddr: string;
  addrs: GuestIPAddress[];
}

/** Options of {@link Domain.undefine}. */
export interface DomainUndefineOptions {
  nvram?: boolean;
  keepNvram?: boolean;
  managedSave?: boolean;
  snapshotsMetadata?: boolean;
  checkpointsMetadata?: boolean;
  tpm?: boolean;
  keepTpm?: boolean;
}
const UNDEFINE_FLAGS: Record<keyof DomainUndefineOptions, NativeConstantName> = {
  nvram: 'VIR_DOMAIN_UNDEFINE_NVRAM',
  keepNvram: 'VIR_DOMAIN_UNDEFINE_KEEP_NVRAM',
  managedSave: 'VIR_DOMAIN_UNDEFINE_MANAGED_SAVE',
  snapshotsMetadata: 'VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA',
  checkpointsMetadata: 'VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA',
  tpm: 'VIR_DOMAIN_UNDEFINE_TPM',
  keepTpm: 'VIR_DOMAIN_UNDEFINE_KEEP_TPM',
};

/** A libvirt domain (virtual machine), persistent or transient, running or not. */
export class Domain {
  readonly #native: NativeDomain;

  /** @internal Obtained from a {@link Connection}. */
  constructor(native: NativeDomain) {
    this.#native = native;
  }

  /** The domain's name. */
  getName(): Promise<string> {
    return this.#native.getName();
  }
  /** The domain's UUID string. */
  getUUID(): Promise<string> {
    return this.#native.getUUID();
  }
  /** The hypervisor id of a running domain, -1 when inactive. */
  getID(): Promise<number> {
    return this.#native.getID();
  }
  /** Starts (boots) a defined domain. */
  start(opts?: { paused?: boolean; autodestroy?: boolean; forceBoot?: boolean }): Promise<void> {
    return this.#native.start(
      flagsOf(opts, {
        paused: 'VIR_DOMAIN_START_PAUSED',
        autodestroy: 'VIR_DOMAIN_START_AUTODESTROY',
        forceBoot: 'VIR_DOMAIN_START_FORCE_BOOT',
      }),
    );
  }
  /** Asks the guest to shut down (ACPI by default, or via the guest agent); returns at once. */
  shutdown(opts?: { acpi?: boolean; agent?: boolean }): Promise<void> {
    return this.#native.shutdown(
      flagsOf(opts, { acpi: 'VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN', agent: 'VIR_DOMAIN_SHUTDOWN_GUEST_AGENT' }),
    );
  }
  /** Powers the domain off at once (`graceful`: SIGTERM only, never SIGKILL). */
  destroy(opts?: { graceful?: boolean }): Promise<void> {
    return this.#native.destroy(flagsOf(opts, { graceful: 'VIR_DOMAIN_DESTROY_GRACEFUL' }));
  }
  /** Asks the guest to reboot. */
  reboot(): Promise<void> {
    return this.#native.reboot();
  }
  /** Resets the virtual hardware (power-cycle without shutting the guest down). */
  reset(): Promise<void> {
    return this.#native.reset();
  }
  /** Pauses the vCPUs. */
  suspend(): Promise<void> {
    return this.#native.suspend();
  }
  /** Resumes paused vCPUs. */
  resume(): Promise<void> {
    return this.#native.resume();
  }
  /** Removes the persistent definition (a running domain becomes transient). */
  undefine(opts?: DomainUndefineOptions): Promise<void> {
    return this.#native.undefine(flagsOf(opts, UNDEFINE_FLAGS));
  }
  /** State, memory, vCPU count and CPU time. */
  async getInfo(): Promise<DomainInfo> {
    const i = await this.#native.getInfo();
    return { ...i, state: nameOf(DOMAIN_STATES, i.state, 'state') as DomainState };
  }
  /** State and libvirt's reason code for it. */
  async getState(): Promise<{ state: DomainState; reason: number }> {
    const s = await this.#native.getState();
    return { state: nameOf(DOMAIN_STATES, s.state, 'state') as DomainState, reason: s.reason };
  }
  /** Whether the domain runs (or is paused). */
  isActive(): Promise<boolean> {
    return this.#native.isActive();
  }
  /** Whether the domain has a persistent definition. */
  isPersistent(): Promise<boolean> {
    return this.#native.isPersistent();
  }
  /** Whether the domain starts with the host. */
  getAutostart(): Promise<boolean> {
    return this.#native.getAutostart();
  }
  /** Sets whether the domain starts with the host. */
  setAutostart(on: boolean): Promise<void> {
    return this.#native.setAutostart(on);
  }
  /** The domain XML (`inactive`: the persistent definition; `secure`: include secrets). */
  getXML(opts?: { inactive?: boolean; secure?: boolean; migratable?: boolean }): Promise<string> {
    return this.#native.getXML(
      flagsOf(opts, {
        inactive: 'VIR_DOMAIN_XML_INACTIVE',
        secure: 'VIR_DOMAIN_XML_SECURE',
        migratable: 'VIR_DOMAIN_XML_MIGRATABLE',
      }),
    );
  }
  /** Sets the vCPU count (live needs `<vcpu current=...>` below the maximum); `maximum` sets the ceiling. */
  setVcpus(n: number, opts?: AffectOptions & { maximum?: boolean; guest?: boolean }): Promise<void> {
    return this.#native.setVcpus(
      n,
      flagsOf(opts, { ...affect, maximum: 'VIR_DOMAIN_VCPU_MAXIMUM', guest: 'VIR_DOMAIN_VCPU_GUEST' }),
    );
  }
  /** The vCPU count (live, config, maximum or guest-visible). */
  getVcpus(opts?: AffectOptions & { maximum?: boolean; guest?: boolean }): Promise<number> {
    return this.#native.getVcpus(
      flagsOf(opts, { ...affect, maximum: 'VIR_DOMAIN_VCPU_MAXIMUM', guest: 'VIR_DOMAIN_VCPU_GUEST' }),
    );
  }
  /** Sets the current memory in KiB (live: balloon target; needs a balloon driver in the guest to take effect). */
  setMemory(kib: number, opts?: AffectOptions & { maximum?: boolean }): Promise<void> {
    return this.#native.setMemory(kib, flagsOf(opts, { ...affect, maximum: 'VIR_DOMAIN_MEM_MAXIMUM' }));
  }
  /** Sets the maximum memory in KiB (persistent definition; inactive domains). */
  setMaxMemory(kib: number): Promise<void> {
    return this.#native.setMaxMemory(kib);
  }
  /** Hot-plugs (live) and/or adds to the definition (config) a device given as XML. */
  attachDevice(xml: string, opts?: AffectOptions): Promise<void> {
    return this.#native.attachDevice(xml, flagsOf(opts, affect));
  }
  /** Hot-unplugs and/or removes from the definition a device given as XML. */
  detachDevice(xml: string, opts?: AffectOptions): Promise<void> {
    return this.#native.detachDevice(xml, flagsOf(opts, affect));
  }
  /** Changes a device (e.g. a CD-ROM's media or an interface's link state). */
  updateDevice(xml: string, opts?: AffectOptions & { force?: boolean }): Promise<void> {
    return this.#native.updateDevice(
      xml,
      flagsOf(opts, { ...affect, force: 'VIR_DOMAIN_DEVICE_MODIFY_FORCE' }),
    );
  }
  /**
   * Resizes a disk of a running domain (`disk`: target name such as `vda`, or the image path) to
   * `bytes`; the guest sees the new size at once. For an inactive domain use
   * {@link StorageVolume.resize}.
   */
  blockResize(disk: string, bytes: number): Promise<void> {
    return this.#native.blockResize(disk, bytes);
  }
  /**
   * Sends a JSON command to the QEMU guest agent and resolves with its JSON reply. `timeoutSec`
   * is seconds, or one of {@link AgentTimeout}. Rejects with `AGENT_UNRESPONSIVE` without an agent.
   */
  qemuAgentCommand(command: string, timeoutSec: number): Promise<string> {
    return this.#native.qemuAgentCommand(command, timeoutSec);
  }
  /** Guest interfaces with their IP addresses, from DHCP leases (default), the guest agent or ARP. */
  async getInterfaceAddresses(source: 'lease' | 'agent' | 'arp' = 'lease'): Promise<GuestInterface[]> {
    const src = {
      lease: 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE',
      agent: 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT',
      arp: 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP',
    } as const;
    const ifaces = await this.#native.getInterfaceAddresses(constant(src[source]));
    return ifaces.map((i) => ({
      name: i.name,
      hwaddr: i.hwaddr,
      addrs: i.addrs.map((a) => ({ type: ipType(a.type), address: a.addr, prefix: a.prefix })),
    }));
  }
  /** This domain's statistics (as one entry of {@link Connection.getAllDomainStats}). */
  getStats(groups?: DomainStatsGroup[]): Promise<Record<string, TypedParamValue>> {
    return this.#native.getStats(statsMask(groups));
  }
  /** Saves the memory state to disk and stops the domain; the next start restores it. */
  managedSave(): Promise<void> {
    return this.#native.managedSave();
  }
  /** Whether a managed-save image exists. */
  hasManagedSaveImage(): Promise<boolean> {
    return this.#native.hasManagedSaveImage();
  }
  /** Discards the managed-save image. */
  managedSaveRemove(): Promise<void> {
    return this.#native.managedSaveRemove();
  }
  /** Reads the title, description or a custom `<metadata>` element (by namespace `uri`). */
  getMetadata(
    type: 'description' | 'title' | 'element',
    opts?: { uri?: string } & AffectOptions,
  ): Promise<string> {
    return this.#native.getMetadata(metadataType(type), opts?.uri ?? null, flagsOf(opts, affect));
  }
  /** Sets (or with `null` removes) the title, description or a custom element (`key` = XML prefix). */
  setMetadata(
    type: 'description' | 'title' | 'element',
    value: string | null,
    opts?: { key?: string; uri?: string } & AffectOptions,
  ): Promise<void> {
    return this.#native.setMetadata(
      metadataType(type),
      value,
      opts?.key ?? null,
      opts?.uri ?? null,
      flagsOf(opts, affect),
    );
  }
}

function metadataType(type: 'description' | 'title' | 'element'): number {
  const names = {
    description: 'VIR_DOMAIN_METADATA_DESCRIPTION',
    title: 'VIR_DOMAIN_METADATA_TITLE',
    element: 'VIR_DOMAIN_METADATA_ELEMENT',
  } as const;
  return constant(names[type]);
}
