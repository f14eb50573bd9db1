/**
 * vmflow's typed, Promise-based libvirt API over the native addon (`native/`).
 *
 * Every method runs its libvirt call on a libuv worker thread and resolves on the JS thread;
 * every failure rejects with a {@link LibvirtError}. Objects (domains, networks, ...) release
 * their libvirt reference when garbage-collected; each keeps its connection alive. After
 * `Connection.close()` every call on the connection or on its objects rejects with
 * `LibvirtErrorCode.INVALID_CONN`.
 */
import {
  type NativeConstantName,
  type NativeConnection,
  type NativeDomain,
  type NativeNetwork,
  type NativeNWFilter,
  type NativeNWFilterBinding,
  type NativeStoragePool,
  type NativeStorageVolume,
  type TypedParamValue,
  getNative,
} from './native';

export { LibvirtError, LibvirtErrorCode, isLibvirtError } from './errors';

// ---- helpers ------------------------------------------------------------------------------------

function constant(name: NativeConstantName): number {
  return getNative().constants[name];
}

/** ORs the flag of every option set to true. */
function flagsOf<K extends string>(
  opts: { [P in NoInfer<K>]?: unknown } | undefined,
  map: Record<K, NativeConstantName>,
): number {
  let flags = 0;
  if (!opts) return flags;
  for (const key of Object.keys(map) as K[]) {
    if (opts[key]) flags |= constant(map[key]);
  }
  return flags;
}

function nameOf<T extends string>(table: readonly T[], value: number, fallback: string): T | string {
  return table[value] ?? `${fallback}-${value}`;
}

const affect = { live: 'VIR_DOMAIN_AFFECT_LIVE', config: 'VIR_DOMAIN_AFFECT_CONFIG' } as const;

// ---- enums as strings ---------------------------------------------------------------------------

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

/** A lifecycle event type (libvirt `virDomainEventType`, index = enum value). */
export type DomainLifecycleEventType =
  | 'defined'
  | 'undefined'
  | 'started'
  | 'suspended'
  | 'resumed'
  | 'stopped'
  | 'shutdown'
  | 'pmsuspended'
  | 'crashed';

/** `virDomainEventType` values in enum order. */
export const DOMAIN_EVENT_TYPES: readonly DomainLifecycleEventType[] = [
  'defined',
  'undefined',
  'started',
  'suspended',
  'resumed',
  'stopped',
  'shutdown',
  'pmsuspended',
  'crashed',
];

/** Names of each event type's detail values (`virDomainEventDefinedDetailType`, ...), in enum order. */
export const DOMAIN_EVENT_DETAILS: Readonly<Record<DomainLifecycleEventType, readonly string[]>> = {
  defined: ['added', 'updated', 'renamed', 'from_snapshot'],
  undefined: ['removed', 'renamed'],
  started: ['booted', 'migrated', 'restored', 'from_snapshot', 'wakeup'],
  suspended: [
    'paused',
    'migrated',
    'ioerror',
    'watchdog',
    'restored',
    'from_snapshot',
    'api_error',
    'postcopy',
    'postcopy_failed',
  ],
  resumed: ['unpaused', 'migrated', 'from_snapshot', 'postcopy', 'postcopy_failed'],
  stopped: ['shutdown', 'destroyed', 'crashed', 'migrated', 'saved', 'failed', 'from_snapshot'],
  shutdown: ['finished', 'guest', 'host'],
  pmsuspended: ['memory', 'disk'],
  crashed: ['panicked', 'crashloaded'],
};

/** Why libvirt closed a connection (`virConnectCloseReason`; 'client' also after `close()`). */
export type CloseReason = 'error' | 'eof' | 'keepalive' | 'client';
const CLOSE_REASONS: readonly CloseReason[] = ['error', 'eof', 'keepalive', 'client'];

/** A storage pool's state (`virStoragePoolState`). */
export type StoragePoolState = 'inactive' | 'building' | 'running' | 'degraded' | 'inaccessible';
const POOL_STATES: readonly StoragePoolState[] = [
  'inactive',
  'building',
  'running',
  'degraded',
  'inaccessible',
];

/** A storage volume's type (`virStorageVolType`). */
export type StorageVolumeType = 'file' | 'block' | 'dir' | 'network' | 'netdir' | 'ploop';
const VOLUME_TYPES: readonly StorageVolumeType[] = ['file', 'block', 'dir', 'network', 'netdir', 'ploop'];

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

/** Special `timeoutSec` values of {@link Domain.qemuAgentCommand}. */
export const AgentTimeout = { BLOCK: -2, DEFAULT: -1, NOWAIT: 0 } as const;

// ---- result types -------------------------------------------------------------------------------

/** Host information (`virNodeGetInfo`). */
export interface NodeInfo {
  model: string;
  memoryKiB: number;
  cpus: number;
  mhz: number;
  nodes: number;
  sockets: number;
  cores: number;
  threads: number;
}

/** Domain information (`virDomainGetInfo`). */
export interface DomainInfo {
  state: DomainState;
  maxMemoryKiB: number;
  memoryKiB: number;
  vcpus: number;
  cpuTimeNs: number;
}

/** A domain lifecycle event as delivered to {@link Connection.onDomainLifecycle} listeners. */
export interface DomainLifecycleEvent {
  domainName: string;
  domainUUID: string;
  event: DomainLifecycleEventType;
  /** libvirt's detail value (meaning depends on `event`). */
  detail: number;
  /** `detail` by name (`booted`, `destroyed`, ...), when known. */
  detailName?: string;
}

/** One entry of {@link Connection.getAllDomainStats}: typed parameters flattened (`state.state`, `cpu.time`, ...). */
export interface DomainStatsRecord {
  name: string;
  uuid: string;
  stats: Record<string, TypedParamValue>;
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

function statsMask(groups: DomainStatsGroup[] | undefined): number {
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

function ipType(t: number): 'ipv4' | 'ipv6' {
  return t === constant('VIR_IP_ADDR_TYPE_IPV6') ? 'ipv6' : 'ipv4';
}

// ---- options ------------------------------------------------------------------------------------

/** Options of the `define*` methods. */
export interface DefineOptions {
  /** Validate the XML against libvirt's RelaxNG schema first. */
  validate?: boolean;
}

/** `live`: the running instance; `config`: the persistent definition; neither: whichever is current. */
export interface AffectOptions {
  live?: boolean;
  config?: boolean;
}

/** Filters of {@link Connection.listAllDomains}; set flags are ANDed across groups. */
export interface DomainListFilter {
  active?: boolean;
  inactive?: boolean;
  persistent?: boolean;
  transient?: boolean;
  running?: boolean;
  paused?: boolean;
  shutoff?: boolean;
  other?: boolean;
  autostart?: boolean;
  noAutostart?: boolean;
}
const DOMAIN_FILTER: Record<keyof DomainListFilter, NativeConstantName> = {
  active: 'VIR_CONNECT_LIST_DOMAINS_ACTIVE',
  inactive: 'VIR_CONNECT_LIST_DOMAINS_INACTIVE',
  persistent: 'VIR_CONNECT_LIST_DOMAINS_PERSISTENT',
  transient: 'VIR_CONNECT_LIST_DOMAINS_TRANSIENT',
  running: 'VIR_CONNECT_LIST_DOMAINS_RUNNING',
  paused: 'VIR_CONNECT_LIST_DOMAINS_PAUSED',
  shutoff: 'VIR_CONNECT_LIST_DOMAINS_SHUTOFF',
  other: 'VIR_CONNECT_LIST_DOMAINS_OTHER',
  autostart: 'VIR_CONNECT_LIST_DOMAINS_AUTOSTART',
  noAutostart: 'VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART',
};

/** Filters of {@link Connection.listAllNetworks}. */
export interface NetworkListFilter {
  active?: boolean;
  inactive?: boolean;
  persistent?: boolean;
  transient?: boolean;
  autostart?: boolean;
  noAutostart?: boolean;
}
const NETWORK_FILTER: Record<keyof NetworkListFilter, NativeConstantName> = {
  active: 'VIR_CONNECT_LIST_NETWORKS_ACTIVE',
  inactive: 'VIR_CONNECT_LIST_NETWORKS_INACTIVE',
  persistent: 'VIR_CONNECT_LIST_NETWORKS_PERSISTENT',
  transient: 'VIR_CONNECT_LIST_NETWORKS_TRANSIENT',
  autostart: 'VIR_CONNECT_LIST_NETWORKS_AUTOSTART',
  noAutostart: 'VIR_CONNECT_LIST_NETWORKS_NO_AUTOSTART',
};

/** Filters of {@link Connection.listAllPools}. */
export interface PoolListFilter {
  active?: boolean;
  inactive?: boolean;
  persistent?: boolean;
  autostart?: boolean;
}
const POOL_FILTER: Record<keyof PoolListFilter, NativeConstantName> = {
  active: 'VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE',
  inactive: 'VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE',
  persistent: 'VIR_CONNECT_LIST_STORAGE_POOLS_PERSISTENT',
  autostart: 'VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART',
};

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

// ---- Connection -----------------------------------------------------------------------------------

/**
 * A connection to a libvirt daemon (`qemu:///system`, `test:///default`, ...). Open one per
 * process and share it: libvirt connections are thread-safe and calls on one connection run in
 * parallel on the worker pool.
 */
export class Connection {
  readonly #native: NativeConnection;
  readonly #closeListeners: Set<(reason: CloseReason) => void>;
  readonly #lifecycleListeners = new Set<(ev: DomainLifecycleEvent) => void>();
  #lifecycleId: number | undefined;
  #lifecycleQueue: Promise<void> = Promise.resolve();

  /** @internal Use {@link Connection.open}. */
  constructor(native: NativeConnection, closeListeners: Set<(reason: CloseReason) => void>) {
    this.#native = native;
    this.#closeListeners = closeListeners;
  }

  /** Opens a connection (`virConnectOpenAuth`); `readOnly` opens a read-only one. */
  static async open(uri: string, opts?: { readOnly?: boolean }): Promise<Connection> {
    const native = getNative();
    const listeners = new Set<(reason: CloseReason) => void>();
    const emit = (reason: number): void => {
      const name = CLOSE_REASONS[reason] ?? 'error';
      for (const cb of [...listeners]) cb(name);
    };
    const handle = await native.open(uri, opts?.readOnly ? native.constants.VIR_CONNECT_RO : 0, emit);
    return new Connection(handle, listeners);
  }

  /**
   * Closes the connection: unsubscribes event listeners, releases every object obtained from it
   * and closes the libvirt connection. Idempotent. Listeners of {@link onClose} get `'client'`.
   */
  async close(): Promise<void> {
    await this.#native.close();
    const listeners = [...this.#closeListeners];
    this.#closeListeners.clear();
    for (const cb of listeners) cb('client');
  }

  /** Whether the connection is open and the daemon reachable (false after close()). */
  isAlive(): Promise<boolean> {
    return this.#native.isAlive();
  }
  /** The hypervisor host's name. */
  getHostname(): Promise<string> {
    return this.#native.getHostname();
  }
  /** The canonical URI of this connection. */
  getURI(): Promise<string> {
    return this.#native.getURI();
  }
  /** Host CPU and memory information. */
  getNodeInfo(): Promise<NodeInfo> {
    return this.#native.getNodeInfo();
  }
  /** Free host memory in bytes. */
  getFreeMemory(): Promise<number> {
    return this.#native.getFreeMemory();
  }
  /** The host capabilities XML (guest types, e.g. whether `kvm` is available). */
  getCapabilities(): Promise<string> {
    return this.#native.getCapabilities();
  }
  /** The libvirt version of the daemon side, e.g. `9.0.0`. */
  getLibVersion(): Promise<string> {
    return this.#native.getLibVersion();
  }
  /** The hypervisor version, e.g. QEMU `7.2.0`. */
  getVersion(): Promise<string> {
    return this.#native.getVersion();
  }
  /**
   * Enables keepalive probes: after `count` unanswered probes sent every `intervalSec` seconds,
   * the connection is closed and {@link onClose} listeners get `'keepalive'`.
   */
  setKeepAlive(intervalSec: number, count: number): Promise<void> {
    return this.#native.setKeepAlive(intervalSec, count);
  }
  /**
   * Registers a listener called once when the connection closes: `'eof'`/`'error'` (daemon gone),
   * `'keepalive'` (unresponsive), `'client'` (after {@link close}).
   */
  onClose(cb: (reason: CloseReason) => void): void {
    this.#closeListeners.add(cb);
  }

  // domains

  /** Defines (or redefines) a persistent domain from XML. */
  async defineDomain(xml: string, opts?: DefineOptions): Promise<Domain> {
    return new Domain(
      await this.#native.defineDomain(xml, flagsOf(opts, { validate: 'VIR_DOMAIN_DEFINE_VALIDATE' })),
    );
  }
  /** Looks a domain up by name; rejects with `NO_DOMAIN` if there is none. */
  async lookupDomainByName(name: string): Promise<Domain> {
    return new Domain(await this.#native.lookupDomainByName(name));
  }
  /** Looks a domain up by UUID string; rejects with `NO_DOMAIN` if there is none. */
  async lookupDomainByUUID(uuid: string): Promise<Domain> {
    return new Domain(await this.#native.lookupDomainByUUID(uuid));
  }
  /** Looks a running domain up by its numeric id. */
  async lookupDomainByID(id: number): Promise<Domain> {
    return new Domain(await this.#native.lookupDomainByID(id));
  }
  /** Lists domains; with no filter, all of them. */
  async listAllDomains(filter?: DomainListFilter): Promise<Domain[]> {
    return (await this.#native.listAllDomains(flagsOf(filter, DOMAIN_FILTER))).map((d) => new Domain(d));
  }
  /**
   * Statistics of all (or the filtered) domains in one call: `state.*`, `cpu.*`, `balloon.*`,
   * `vcpu.*`, `net.*`, `block.*` typed parameters flattened. `nowait` skips domains busy with a job.
   */
  getAllDomainStats(
    opts?: { groups?: DomainStatsGroup[]; nowait?: boolean } & DomainListFilter,
  ): Promise<DomainStatsRecord[]> {
    const { groups, nowait, ...filter } = opts ?? {};
    const flags =
      flagsOf(filter, DOMAIN_FILTER) | (nowait ? constant('VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT') : 0);
    return this.#native.getAllDomainStats(statsMask(groups), flags);
  }

  /**
   * Subscribes to lifecycle events of all domains. Resolves with an idempotent unsubscribe
   * function. All subscriptions of a connection share one libvirt registration
   * (`virConnectDomainEventRegisterAny` accepts a callback only once per connection), made for the
   * first subscriber and removed after the last. Subscriptions do not keep the process alive; a
   * listener that throws raises an uncaught exception, as with EventEmitter.
   */
  async onDomainLifecycle(cb: (ev: DomainLifecycleEvent) => void): Promise<() => Promise<void>> {
    const listener = (ev: DomainLifecycleEvent) => cb(ev);
    this.#lifecycleListeners.add(listener);
    try {
      await this.#serially(async () => {
        if (this.#lifecycleId === undefined && this.#lifecycleListeners.size > 0) {
          this.#lifecycleId = await this.#native.onDomainLifecycle((name, uuid, event, detail) =>
            this.#dispatchLifecycle(name, uuid, event, detail),
          );
        }
      });
    } catch (e) {
      this.#lifecycleListeners.delete(listener);
      throw e;
    }
    let subscribed = true;
    return async () => {
      if (!subscribed) return;
      subscribed = false;
      this.#lifecycleListeners.delete(listener);
      await this.#serially(async () => {
        if (this.#lifecycleId !== undefined && this.#lifecycleListeners.size === 0) {
          const id = this.#lifecycleId;
          this.#lifecycleId = undefined;
          await this.#native.offDomainLifecycle(id);
        }
      });
    };
  }

  #dispatchLifecycle(domainName: string, domainUUID: string, event: number, detail: number): void {
    const type = DOMAIN_EVENT_TYPES[event];
    if (type === undefined) return; // an event type newer than this binding
    const ev: DomainLifecycleEvent = {
      domainName,
      domainUUID,
      event: type,
      detail,
      detailName: DOMAIN_EVENT_DETAILS[type][detail],
    };
    for (const listener of [...this.#lifecycleListeners]) listener(ev);
  }

  /** Runs registration changes one at a time (a deregistration must finish before a new registration). */
  #serially(fn: () => Promise<void>): Promise<void> {
    const run = this.#lifecycleQueue.then(fn);
    this.#lifecycleQueue = run.catch(() => undefined);
    return run;
  }

  // networks

  /** Defines a persistent network from XML (not started). */
  async defineNetwork(xml: string, opts?: DefineOptions): Promise<Network> {
    return new Network(
      await this.#native.defineNetwork(xml, flagsOf(opts, { validate: 'VIR_NETWORK_DEFINE_VALIDATE' })),
    );
  }
  /** Looks a network up by name; rejects with `NO_NETWORK` if there is none. */
  async lookupNetworkByName(name: string): Promise<Network> {
    return new Network(await this.#native.lookupNetworkByName(name));
  }
  /** Looks a network up by UUID string; rejects with `NO_NETWORK` if there is none. */
  async lookupNetworkByUUID(uuid: string): Promise<Network> {
    return new Network(await this.#native.lookupNetworkByUUID(uuid));
  }
  /** Lists networks; with no filter, all of them. */
  async listAllNetworks(filter?: NetworkListFilter): Promise<Network[]> {
    return (await this.#native.listAllNetworks(flagsOf(filter, NETWORK_FILTER))).map((n) => new Network(n));
  }

  // nwfilters

  /** Defines (or redefines) a network filter from XML. */
  async defineNWFilter(xml: string, opts?: DefineOptions): Promise<NWFilter> {
    return new NWFilter(
      await this.#native.defineNWFilter(xml, flagsOf(opts, { validate: 'VIR_NWFILTER_DEFINE_VALIDATE' })),
    );
  }
  /** Looks a filter up by name; rejects with `NO_NWFILTER` if there is none. */
  async lookupNWFilterByName(name: string): Promise<NWFilter> {
    return new NWFilter(await this.#native.lookupNWFilterByName(name));
  }
  /** Looks a filter up by UUID string; rejects with `NO_NWFILTER` if there is none. */
  async lookupNWFilterByUUID(uuid: string): Promise<NWFilter> {
    return new NWFilter(await this.#native.lookupNWFilterByUUID(uuid));
  }
  /** Lists all network filters. */
  async listAllNWFilters(): Promise<NWFilter[]> {
    return (await this.#native.listAllNWFilters()).map((f) => new NWFilter(f));
  }
  /** Binds a filter to a port (`<filterbinding>` XML: owner, portdev, mac, filterref). */
  async createNWFilterBinding(xml: string, opts?: DefineOptions): Promise<NWFilterBinding> {
    return new NWFilterBinding(
      await this.#native.createNWFilterBinding(
        xml,
        flagsOf(opts, { validate: 'VIR_NWFILTER_BINDING_CREATE_VALIDATE' }),
      ),
    );
  }
  /** Looks a binding up by port device (`vnet0`); rejects with `NO_NWFILTER_BINDING` if none. */
  async lookupNWFilterBindingByPortDev(dev: string): Promise<NWFilterBinding> {
    return new NWFilterBinding(await this.#native.lookupNWFilterBindingByPortDev(dev));
  }
  /** Lists all filter bindings (one per filtered port of a running domain). */
  async listAllNWFilterBindings(): Promise<NWFilterBinding[]> {
    return (await this.#native.listAllNWFilterBindings()).map((b) => new NWFilterBinding(b));
  }

  // storage

  /** Defines a persistent storage pool from XML (not built, not started). */
  async definePool(xml: string, opts?: DefineOptions): Promise<StoragePool> {
    return new StoragePool(
      await this.#native.definePool(xml, flagsOf(opts, { validate: 'VIR_STORAGE_POOL_DEFINE_VALIDATE' })),
    );
  }
  /** Looks a pool up by name; rejects with `NO_STORAGE_POOL` if there is none. */
  async lookupPoolByName(name: string): Promise<StoragePool> {
    return new StoragePool(await this.#native.lookupPoolByName(name));
  }
  /** Looks a pool up by UUID string; rejects with `NO_STORAGE_POOL` if there is none. */
  async lookupPoolByUUID(uuid: string): Promise<StoragePool> {
    return new StoragePool(await this.#native.lookupPoolByUUID(uuid));
  }
  /** Lists storage pools; with no filter, all of them. */
  async listAllPools(filter?: PoolListFilter): Promise<StoragePool[]> {
    return (await this.#native.listAllPools(flagsOf(filter, POOL_FILTER))).map((p) => new StoragePool(p));
  }
  /** Looks a volume up by its path in an active pool; rejects with `NO_STORAGE_VOL` if none. */
  async lookupVolumeByPath(path: string): Promise<StorageVolume> {
    return new StorageVolume(await this.#native.lookupVolumeByPath(path));
  }
}

// ---- Domain -------------------------------------------------------------------------------------------

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

// ---- Network ------------------------------------------------------------------------------------------

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

// ---- NWFilter and bindings ------------------------------------------------------------------------

/** A libvirt network filter (ebtables/iptables rules applied to guest interfaces). */
export class NWFilter {
  readonly #native: NativeNWFilter;

  /** @internal Obtained from a {@link Connection}. */
  constructor(native: NativeNWFilter) {
    this.#native = native;
  }

  /** The filter's name. */
  getName(): Promise<string> {
    return this.#native.getName();
  }
  /** The filter's UUID string. */
  getUUID(): Promise<string> {
    return this.#native.getUUID();
  }
  /** The filter XML. */
  getXML(): Promise<string> {
    return this.#native.getXML();
  }
  /** Removes the filter (fails while a binding or another filter uses it). */
  undefine(): Promise<void> {
    return this.#native.undefine();
  }
}

/** A filter bound to one port (guest interface): the rules libvirt installed for it. */
export class NWFilterBinding {
  readonly #native: NativeNWFilterBinding;

  /** @internal Obtained from a {@link Connection}. */
  constructor(native: NativeNWFilterBinding) {
    this.#native = native;
  }

  /** The host-side port device (`vnet0`, ...). */
  getPortDev(): Promise<string> {
    return this.#native.getPortDev();
  }
  /** The name of the bound filter. */
  getFilterName(): Promise<string> {
    return this.#native.getFilterName();
  }
  /** The binding XML (owner, port device, MAC, filter and parameters). */
  getXML(): Promise<string> {
    return this.#native.getXML();
  }
  /** Removes the binding and its firewall rules. */
  delete(): Promise<void> {
    return this.#native.delete();
  }
}

// ---- Storage ----------------------------------------------------------------------------------------------

/** A libvirt storage pool (here: a directory of image files). */
export class StoragePool {
  readonly #native: NativeStoragePool;

  /** @internal Obtained from a {@link Connection}. */
  constructor(native: NativeStoragePool) {
    this.#native = native;
  }

  /** The pool's name. */
  getName(): Promise<string> {
    return this.#native.getName();
  }
  /** The pool's UUID string. */
  getUUID(): Promise<string> {
    return this.#native.getUUID();
  }
  /** Builds the pool's underlying storage (for a dir pool: creates the directory). */
  build(opts?: { overwrite?: boolean; noOverwrite?: boolean }): Promise<void> {
    return this.#native.build(
      flagsOf(opts, {
        overwrite: 'VIR_STORAGE_POOL_BUILD_OVERWRITE',
        noOverwrite: 'VIR_STORAGE_POOL_BUILD_NO_OVERWRITE',
      }),
    );
  }
  /** Starts the pool. */
  create(): Promise<void> {
    return this.#native.create();
  }
  /** Rescans the pool's volumes. */
  refresh(): Promise<void> {
    return this.#native.refresh();
  }
  /** Stops the pool (its data stays). */
  destroy(): Promise<void> {
    return this.#native.destroy();
  }
  /** Deletes the pool's underlying storage (for a dir pool: removes the empty directory). */
  delete(): Promise<void> {
    return this.#native.delete();
  }
  /** Removes the persistent definition. */
  undefine(): Promise<void> {
    return this.#native.undefine();
  }
  /** Whether the pool runs. */
  isActive(): Promise<boolean> {
    return this.#native.isActive();
  }
  /** Whether the pool has a persistent definition. */
  isPersistent(): Promise<boolean> {
    return this.#native.isPersistent();
  }
  /** Whether the pool starts with the daemon. */
  getAutostart(): Promise<boolean> {
    return this.#native.getAutostart();
  }
  /** Sets whether the pool starts with the daemon. */
  setAutostart(on: boolean): Promise<void> {
    return this.#native.setAutostart(on);
  }
  /** The pool XML. */
  getXML(opts?: { inactive?: boolean }): Promise<string> {
    return this.#native.getXML(flagsOf(opts, { inactive: 'VIR_STORAGE_XML_INACTIVE' }));
  }
  /** State and sizes in bytes. */
  async getInfo(): Promise<{
    state: StoragePoolState;
    capacity: number;
    allocation: number;
    available: number;
  }> {
    const i = await this.#native.getInfo();
    return { ...i, state: nameOf(POOL_STATES, i.state, 'state') as StoragePoolState };
  }
  /** Creates a volume from XML (a qcow2 with `<backingStore>` makes a linked clone). */
  async createVolume(
    xml: string,
    opts?: { preallocMetadata?: boolean; validate?: boolean },
  ): Promise<StorageVolume> {
    const flags = flagsOf(opts, {
      preallocMetadata: 'VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA',
      validate: 'VIR_STORAGE_VOL_CREATE_VALIDATE',
    });
    return new StorageVolume(await this.#native.createVolume(xml, flags));
  }
  /** Creates a volume as a full copy of `source` (which may live in another pool). */
  async cloneVolume(
    xml: string,
    source: StorageVolume,
    opts?: { preallocMetadata?: boolean },
  ): Promise<StorageVolume> {
    const flags = flagsOf(opts, { preallocMetadata: 'VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA' });
    return new StorageVolume(await this.#native.cloneVolume(xml, source.nativeHandle, flags));
  }
  /** Looks a volume of this pool up by name; rejects with `NO_STORAGE_VOL` if there is none. */
  async lookupVolumeByName(name: string): Promise<StorageVolume> {
    return new StorageVolume(await this.#native.lookupVolumeByName(name));
  }
  /** Lists this pool's volumes. */
  async listAllVolumes(): Promise<StorageVolume[]> {
    return (await this.#native.listAllVolumes()).map((v) => new StorageVolume(v));
  }
}

/** A volume (disk image) in a storage pool. */
export class StorageVolume {
  /** @internal The native handle (used by {@link StoragePool.cloneVolume}). */
  readonly nativeHandle: NativeStorageVolume;

  /** @internal Obtained from a {@link Connection} or {@link StoragePool}. */
  constructor(native: NativeStorageVolume) {
    this.nativeHandle = native;
  }

  /** The volume's name within its pool. */
  getName(): Promise<string> {
    return this.nativeHandle.getName();
  }
  /** The volume's unique key (for file volumes, the path). */
  getKey(): Promise<string> {
    return this.nativeHandle.getKey();
  }
  /** The volume's path on the host. */
  getPath(): Promise<string> {
    return this.nativeHandle.getPath();
  }
  /** Type and sizes in bytes (capacity: virtual size; allocation: used on disk). */
  async getInfo(): Promise<{ type: StorageVolumeType; capacity: number; allocation: number }> {
    const i = await this.nativeHandle.getInfo();
    return { ...i, type: nameOf(VOLUME_TYPES, i.type, 'type') as StorageVolumeType };
  }
  /** The volume XML. */
  getXML(): Promise<string> {
    return this.nativeHandle.getXML();
  }
  /** Deletes the volume. */
  delete(opts?: { withSnapshots?: boolean }): Promise<void> {
    return this.nativeHandle.delete(
      flagsOf(opts, { withSnapshots: 'VIR_STORAGE_VOL_DELETE_WITH_SNAPSHOTS' }),
    );
  }
  /** Resizes to `bytes` (or by `bytes` with `delta`); shrinking needs `shrink`. */
  resize(bytes: number, opts?: { allocate?: boolean; delta?: boolean; shrink?: boolean }): Promise<void> {
    return this.nativeHandle.resize(
      bytes,
      flagsOf(opts, {
        allocate: 'VIR_STORAGE_VOL_RESIZE_ALLOCATE',
        delta: 'VIR_STORAGE_VOL_RESIZE_DELTA',
        shrink: 'VIR_STORAGE_VOL_RESIZE_SHRINK',
      }),
    );
  }
}
