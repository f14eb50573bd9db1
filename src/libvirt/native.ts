/**
 * Loader and type declarations of the native addon (`native/build/Release/vmflow_libvirt.node`).
 *
 * The addon is loaded lazily, on the first {@link getNative} call, so modules that only import
 * types or the XML helpers work without a built addon. Loading registers libvirt's event loop
 * (once per process, before any connection opens) and hands the {@link LibvirtError} class to
 * the native side, so rejections are real `LibvirtError` instances.
 *
 * These interfaces describe the raw native objects; application code uses the typed classes of
 * `connection.ts` instead.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { LibvirtError } from './errors';

/** Path of the addon relative to the repository root. */
export const ADDON_RELATIVE_PATH = path.join('native', 'build', 'Release', 'vmflow_libvirt.node');

/** A typed parameter value from libvirt (domain stats). */
export type TypedParamValue = number | string | boolean;

/** Raw domain info as returned by the addon (state is libvirt's enum value). */
export interface NativeDomainInfo {
  state: number;
  maxMemoryKiB: number;
  memoryKiB: number;
  vcpus: number;
  cpuTimeNs: number;
}

/** Raw result of `virDomainInterfaceAddresses`. */
export interface NativeInterfaceAddresses {
  name: string;
  hwaddr: string;
  addrs: Array<{ type: number; addr: string; prefix: number }>;
}

/** Raw `virNetworkDHCPLease`. */
export interface NativeDHCPLease {
  iface: string;
  expiryTime: number;
  type: number;
  mac: string;
  iaid: string;
  ipaddr: string;
  prefix: number;
  hostname: string;
  clientid: string;
}

/** The native Domain handle. */
export interface NativeDomain {
  getName(): Promise<string>;
  getUUID(): Promise<string>;
  getID(): Promise<number>;
  start(flags?: number): Promise<void>;
  shutdown(flags?: number): Promise<void>;
  destroy(flags?: number): Promise<void>;
  reboot(flags?: number): Promise<void>;
  reset(flags?: number): Promise<void>;
  suspend(): Promise<void>;
  resume(): Promise<void>;
  undefine(flags?: number): Promise<void>;
  getInfo(): Promise<NativeDomainInfo>;
  getState(): Promise<{ state: number; reason: number }>;
  isActive(): Promise<boolean>;
  isPersistent(): Promise<boolean>;
  getAutostart(): Promise<boolean>;
  setAutostart(on: boolean): Promise<void>;
  getXML(flags?: number): Promise<string>;
  setVcpus(count: number, flags?: number): Promise<void>;
  getVcpus(flags?: number): Promise<number>;
  setMemory(kib: number, flags?: number): Promise<void>;
  setMaxMemory(kib: number): Promise<void>;
  attachDevice(xml: string, flags?: number): Promise<void>;
  detachDevice(xml: string, flags?: number): Promise<void>;
  updateDevice(xml: string, flags?: number): Promise<void>;
  blockResize(disk: string, bytes: number, flags?: number): Promise<void>;
  qemuAgentCommand(command: string, timeoutSec: number, flags?: number): Promise<string>;
  getInterfaceAddresses(source: number): Promise<NativeInterfaceAddresses[]>;
  getStats(stats?: number, flags?: number): Promise<Record<string, TypedParamValue>>;
  managedSave(flags?: number): Promise<void>;
  hasManagedSaveImage(flags?: number): Promise<boolean>;
  managedSaveRemove(flags?: number): Promise<void>;
  getMetadata(type: number, uri: string | null, flags?: number): Promise<string>;
  setMetadata(
    type: number,
    metadata: string | null,
    key: string | null,
    uri: string | null,
    flags?: number,
  ): Promise<void>;
}

/** The native Network handle. */
export interface NativeNetwork {
  getName(): Promise<string>;
  getUUID(): Promise<string>;
  getBridgeName(): Promise<string>;
  create(): Promise<void>;
  destroy(): Promise<void>;
  undefine(): Promise<void>;
  isActive(): Promise<boolean>;
  isPersistent(): Promise<boolean>;
  getAutostart(): Promise<boolean>;
  setAutostart(on: boolean): Promise<void>;
  getXML(flags?: number): Promise<string>;
  update(command: number, section: number, parentIndex: number, xml: string, flags?: number): Promise<void>;
  getDHCPLeases(mac?: string | null): Promise<NativeDHCPLease[]>;
}

/** The native NWFilter handle. */
export interface NativeNWFilter {
  getName(): Promise<string>;
  getUUID(): Promise<string>;
  getXML(flags?: number): Promise<string>;
  undefine(): Promise<void>;
}

/** The native NWFilterBinding handle. */
export interface NativeNWFilterBinding {
  getPortDev(): Promise<string>;
  getFilterName(): Promise<string>;
  getXML(flags?: number): Promise<string>;
  delete(): Promise<void>;
}

/** The native StoragePool handle. */
export interface NativeStoragePool {
  getName(): Promise<string>;
  getUUID(): Promise<string>;
  build(flags?: number): Promise<void>;
  create(flags?: number): Promise<void>;
  refresh(flags?: number): Promise<void>;
  destroy(): Promise<void>;
  delete(flags?: number): Promise<void>;
  undefine(): Promise<void>;
  isActive(): Promise<boolean>;
  isPersistent(): Promise<boolean>;
  getAutostart(): Promise<boolean>;
  setAutostart(on: boolean): Promise<void>;
  getXML(flags?: number): Promise<string>;
  getInfo(): Promise<{ state: number; capacity: number; allocation: number; available: number }>;
  createVolume(xml: string, flags?: number): Promise<NativeStorageVolume>;
  cloneVolume(xml: string, source: NativeStorageVolume, flags?: number): Promise<NativeStorageVolume>;
  lookupVolumeByName(name: string): Promise<NativeStorageVolume>;
  listAllVolumes(): Promise<NativeStorageVolume[]>;
}

/** The native StorageVolume handle. */
export interface NativeStorageVolume {
  getName(): Promise<string>;
  getKey(): Promise<string>;
  getPath(): Promise<string>;
  getXML(flags?: number): Promise<string>;
  delete(flags?: number): Promise<void>;
  getInfo(): Promise<{ type: number; capacity: number; allocation: number }>;
  resize(bytes: number, flags?: number): Promise<void>;
  uploadFile(path: string, fileOffset: number, volumeOffset: number, length: number): Promise<number>;
  downloadFile(path: string, offset: number, length: number): Promise<number>;
}

/** The native Connection handle. */
export interface NativeConnection {
  close(): Promise<void>;
  isAlive(): Promise<boolean>;
  getHostname(): Promise<string>;
  getURI(): Promise<string>;
  getCapabilities(): Promise<string>;
  getDomainCapabilities(virttype: string): Promise<string>;
  getNodeInfo(): Promise<{
    model: string;
    memoryKiB: number;
    cpus: number;
    mhz: number;
    nodes: number;
    sockets: number;
    cores: number;
    threads: number;
  }>;
  getFreeMemory(): Promise<number>;
  getLibVersion(): Promise<string>;
  getVersion(): Promise<string>;
  setKeepAlive(intervalSec: number, count: number): Promise<void>;
  defineDomain(xml: string, flags?: number): Promise<NativeDomain>;
  lookupDomainByName(name: string): Promise<NativeDomain>;
  lookupDomainByUUID(uuid: string): Promise<NativeDomain>;
  lookupDomainByID(id: number): Promise<NativeDomain>;
  listAllDomains(flags?: number): Promise<NativeDomain[]>;
  getAllDomainStats(
    stats?: number,
    flags?: number,
  ): Promise<Array<{ name: string; uuid: string; stats: Record<string, TypedParamValue> }>>;
  onDomainLifecycle(cb: (name: string, uuid: string, event: number, detail: number) => void): Promise<number>;
  offDomainLifecycle(id: number): Promise<void>;
  defineNetwork(xml: string, flags?: number): Promise<NativeNetwork>;
  lookupNetworkByName(name: string): Promise<NativeNetwork>;
  lookupNetworkByUUID(uuid: string): Promise<NativeNetwork>;
  listAllNetworks(flags?: number): Promise<NativeNetwork[]>;
  defineNWFilter(xml: string, flags?: number): Promise<NativeNWFilter>;
  lookupNWFilterByName(name: string): Promise<NativeNWFilter>;
  lookupNWFilterByUUID(uuid: string): Promise<NativeNWFilter>;
  listAllNWFilters(flags?: number): Promise<NativeNWFilter[]>;
  createNWFilterBinding(xml: string, flags?: number): Promise<NativeNWFilterBinding>;
  lookupNWFilterBindingByPortDev(dev: string): Promise<NativeNWFilterBinding>;
  listAllNWFilterBindings(flags?: number): Promise<NativeNWFilterBinding[]>;
  definePool(xml: string, flags?: number): Promise<NativeStoragePool>;
  lookupPoolByName(name: string): Promise<NativeStoragePool>;
  lookupPoolByUUID(uuid: string): Promise<NativeStoragePool>;
  listAllPools(flags?: number): Promise<NativeStoragePool[]>;
  lookupVolumeByPath(path: string): Promise<NativeStorageVolume>;
}

/** Names of the libvirt constants the addon exports (values come from the C headers). */
export type NativeConstantName =
  | 'VIR_CONNECT_RO'
  | 'VIR_DOMAIN_AFFECT_CURRENT'
  | 'VIR_DOMAIN_AFFECT_LIVE'
  | 'VIR_DOMAIN_AFFECT_CONFIG'
  | 'VIR_DOMAIN_VCPU_MAXIMUM'
  | 'VIR_DOMAIN_VCPU_GUEST'
  | 'VIR_DOMAIN_MEM_MAXIMUM'
  | 'VIR_DOMAIN_DEFINE_VALIDATE'
  | 'VIR_DOMAIN_START_PAUSED'
  | 'VIR_DOMAIN_START_AUTODESTROY'
  | 'VIR_DOMAIN_START_FORCE_BOOT'
  | 'VIR_DOMAIN_DESTROY_GRACEFUL'
  | 'VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN'
  | 'VIR_DOMAIN_SHUTDOWN_GUEST_AGENT'
  | 'VIR_DOMAIN_UNDEFINE_MANAGED_SAVE'
  | 'VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA'
  | 'VIR_DOMAIN_UNDEFINE_NVRAM'
  | 'VIR_DOMAIN_UNDEFINE_KEEP_NVRAM'
  | 'VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA'
  | 'VIR_DOMAIN_UNDEFINE_TPM'
  | 'VIR_DOMAIN_UNDEFINE_KEEP_TPM'
  | 'VIR_DOMAIN_XML_SECURE'
  | 'VIR_DOMAIN_XML_INACTIVE'
  | 'VIR_DOMAIN_XML_MIGRATABLE'
  | 'VIR_DOMAIN_DEVICE_MODIFY_FORCE'
  | 'VIR_DOMAIN_QEMU_AGENT_COMMAND_BLOCK'
  | 'VIR_DOMAIN_QEMU_AGENT_COMMAND_DEFAULT'
  | 'VIR_DOMAIN_QEMU_AGENT_COMMAND_NOWAIT'
  | 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE'
  | 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT'
  | 'VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_ARP'
  | 'VIR_DOMAIN_METADATA_DESCRIPTION'
  | 'VIR_DOMAIN_METADATA_TITLE'
  | 'VIR_DOMAIN_METADATA_ELEMENT'
  | 'VIR_CONNECT_LIST_DOMAINS_ACTIVE'
  | 'VIR_CONNECT_LIST_DOMAINS_INACTIVE'
  | 'VIR_CONNECT_LIST_DOMAINS_PERSISTENT'
  | 'VIR_CONNECT_LIST_DOMAINS_TRANSIENT'
  | 'VIR_CONNECT_LIST_DOMAINS_RUNNING'
  | 'VIR_CONNECT_LIST_DOMAINS_PAUSED'
  | 'VIR_CONNECT_LIST_DOMAINS_SHUTOFF'
  | 'VIR_CONNECT_LIST_DOMAINS_OTHER'
  | 'VIR_CONNECT_LIST_DOMAINS_AUTOSTART'
  | 'VIR_CONNECT_LIST_DOMAINS_NO_AUTOSTART'
  | 'VIR_DOMAIN_STATS_STATE'
  | 'VIR_DOMAIN_STATS_CPU_TOTAL'
  | 'VIR_DOMAIN_STATS_BALLOON'
  | 'VIR_DOMAIN_STATS_VCPU'
  | 'VIR_DOMAIN_STATS_INTERFACE'
  | 'VIR_DOMAIN_STATS_BLOCK'
  | 'VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT'
  | 'VIR_DOMAIN_NOSTATE'
  | 'VIR_DOMAIN_RUNNING'
  | 'VIR_DOMAIN_BLOCKED'
  | 'VIR_DOMAIN_PAUSED'
  | 'VIR_DOMAIN_SHUTDOWN'
  | 'VIR_DOMAIN_SHUTOFF'
  | 'VIR_DOMAIN_CRASHED'
  | 'VIR_DOMAIN_PMSUSPENDED'
  | 'VIR_DOMAIN_EVENT_DEFINED'
  | 'VIR_DOMAIN_EVENT_UNDEFINED'
  | 'VIR_DOMAIN_EVENT_STARTED'
  | 'VIR_DOMAIN_EVENT_SUSPENDED'
  | 'VIR_DOMAIN_EVENT_RESUMED'
  | 'VIR_DOMAIN_EVENT_STOPPED'
  | 'VIR_DOMAIN_EVENT_SHUTDOWN'
  | 'VIR_DOMAIN_EVENT_PMSUSPENDED'
  | 'VIR_DOMAIN_EVENT_CRASHED'
  | 'VIR_CONNECT_CLOSE_REASON_ERROR'
  | 'VIR_CONNECT_CLOSE_REASON_EOF'
  | 'VIR_CONNECT_CLOSE_REASON_KEEPALIVE'
  | 'VIR_CONNECT_CLOSE_REASON_CLIENT'
  | 'VIR_NETWORK_DEFINE_VALIDATE'
  | 'VIR_NETWORK_XML_INACTIVE'
  | 'VIR_CONNECT_LIST_NETWORKS_ACTIVE'
  | 'VIR_CONNECT_LIST_NETWORKS_INACTIVE'
  | 'VIR_CONNECT_LIST_NETWORKS_PERSISTENT'
  | 'VIR_CONNECT_LIST_NETWORKS_TRANSIENT'
  | 'VIR_CONNECT_LIST_NETWORKS_AUTOSTART'
  | 'VIR_CONNECT_LIST_NETWORKS_NO_AUTOSTART'
  | 'VIR_NETWORK_UPDATE_COMMAND_MODIFY'
  | 'VIR_NETWORK_UPDATE_COMMAND_DELETE'
  | 'VIR_NETWORK_UPDATE_COMMAND_ADD_LAST'
  | 'VIR_NETWORK_UPDATE_COMMAND_ADD_FIRST'
  | 'VIR_NETWORK_SECTION_BRIDGE'
  | 'VIR_NETWORK_SECTION_DOMAIN'
  | 'VIR_NETWORK_SECTION_IP'
  | 'VIR_NETWORK_SECTION_IP_DHCP_HOST'
  | 'VIR_NETWORK_SECTION_IP_DHCP_RANGE'
  | 'VIR_NETWORK_SECTION_FORWARD'
  | 'VIR_NETWORK_SECTION_FORWARD_INTERFACE'
  | 'VIR_NETWORK_SECTION_FORWARD_PF'
  | 'VIR_NETWORK_SECTION_PORTGROUP'
  | 'VIR_NETWORK_SECTION_DNS_HOST'
  | 'VIR_NETWORK_SECTION_DNS_TXT'
  | 'VIR_NETWORK_SECTION_DNS_SRV'
  | 'VIR_NETWORK_UPDATE_AFFECT_CURRENT'
  | 'VIR_NETWORK_UPDATE_AFFECT_LIVE'
  | 'VIR_NETWORK_UPDATE_AFFECT_CONFIG'
  | 'VIR_IP_ADDR_TYPE_IPV4'
  | 'VIR_IP_ADDR_TYPE_IPV6'
  | 'VIR_NWFILTER_DEFINE_VALIDATE'
  | 'VIR_NWFILTER_BINDING_CREATE_VALIDATE'
  | 'VIR_STORAGE_POOL_DEFINE_VALIDATE'
  | 'VIR_STORAGE_XML_INACTIVE'
  | 'VIR_STORAGE_POOL_BUILD_NEW'
  | 'VIR_STORAGE_POOL_BUILD_NO_OVERWRITE'
  | 'VIR_STORAGE_POOL_BUILD_OVERWRITE'
  | 'VIR_STORAGE_POOL_DELETE_NORMAL'
  | 'VIR_STORAGE_POOL_INACTIVE'
  | 'VIR_STORAGE_POOL_BUILDING'
  | 'VIR_STORAGE_POOL_RUNNING'
  | 'VIR_STORAGE_POOL_DEGRADED'
  | 'VIR_STORAGE_POOL_INACCESSIBLE'
  | 'VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE'
  | 'VIR_CONNECT_LIST_STORAGE_POOLS_INACTIVE'
  | 'VIR_CONNECT_LIST_STORAGE_POOLS_PERSISTENT'
  | 'VIR_CONNECT_LIST_STORAGE_POOLS_AUTOSTART'
  | 'VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA'
  | 'VIR_STORAGE_VOL_CREATE_VALIDATE'
  | 'VIR_STORAGE_VOL_RESIZE_ALLOCATE'
  | 'VIR_STORAGE_VOL_RESIZE_DELTA'
  | 'VIR_STORAGE_VOL_RESIZE_SHRINK'
  | 'VIR_STORAGE_VOL_DELETE_NORMAL'
  | 'VIR_STORAGE_VOL_DELETE_WITH_SNAPSHOTS'
  | 'VIR_STORAGE_VOL_FILE'
  | 'VIR_STORAGE_VOL_BLOCK'
  | 'VIR_STORAGE_VOL_DIR'
  | 'VIR_STORAGE_VOL_NETWORK'
  | 'VIR_STORAGE_VOL_NETDIR'
  | 'VIR_STORAGE_VOL_PLOOP';

/** The addon's exports. */
export interface NativeAddon {
  open(uri: string, flags: number, onClose: (reason: number) => void): Promise<NativeConnection>;
  setErrorClass(cls: typeof LibvirtError): void;
  constants: Readonly<Record<NativeConstantName, number>>;
  /** Live native wrappers (libvirt object handles, connections): for leak tests. */
  debugCounters(): { handles: number; connections: number };
  /** libvirt library version the addon runs against, as major * 1e6 + minor * 1e3 + micro. */
  libraryVersion: number;
}

let addon: NativeAddon | undefined;

/**
 * Finds the addon: `$VMFLOW_LIBVIRT_ADDON` if set, else `native/build/Release/vmflow_libvirt.node`
 * under the repository root (two levels above this file both in `src/libvirt` and `dist/libvirt`).
 */
export function addonPath(): string {
  return process.env.VMFLOW_LIBVIRT_ADDON ?? path.resolve(__dirname, '..', '..', ADDON_RELATIVE_PATH);
}

/**
 * Loads the addon on first use and returns it. Throws a clear error when it was not built.
 */
export function getNative(): NativeAddon {
  if (addon) return addon;
  const file = addonPath();
  if (!existsSync(file)) {
    throw new Error(
      `vmflow's libvirt addon is not built (missing ${file}). Run \`npm run build:native\` ` +
        '(needs libvirt-dev, pkg-config and a C++17 compiler).',
    );
  }
  // A real require: Node caches native modules per process, so the addon initialises once.
  const loadAddon = createRequire(__filename);
  const loaded = loadAddon(file) as NativeAddon;
  loaded.setErrorClass(LibvirtError);
  addon = loaded;
  return loaded;
}
