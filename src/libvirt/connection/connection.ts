/**
 * vmflow's typed, Promise-based libvirt API over the native addon (`native/`).
 *
 * Every method runs its libvirt call on a libuv worker thread and resolves on the JS thread;
 * every failure rejects with a {@link LibvirtError}. Objects (domains, networks, ...) release
 * their libvirt reference when garbage-collected; each keeps its connection alive. After
 * `Connection.close()` every call on the connection or on its objects rejects with
 * `LibvirtErrorCode.INVALID_CONN`.
 *
 * This module: the connection (`native/src/connection.cc`), which opens every other object.
 */
import { type NativeConnection, type NativeConstantName, type TypedParamValue, getNative } from '../native';
import { type DefineOptions, constant, flagsOf } from './common';
import { type DomainStatsGroup, Domain, statsMask } from './domain';
import {
  type CloseReason,
  type DomainLifecycleEvent,
  CLOSE_REASONS,
  DOMAIN_EVENT_DETAILS,
  DOMAIN_EVENT_TYPES,
} from './events';
import { Network } from './network';
import { NWFilter } from './nwfilter';
import { NWFilterBinding } from './nwfilter-binding';
import { StoragePool } from './storage-pool';
import { StorageVolume } from './storage-volume';

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

/** One entry of {@link Connection.getAllDomainStats}: typed parameters flattened (`state.state`, `cpu.time`, ...). */
export interface DomainStatsRecord {
  name: string;
  uuid: string;
  stats: Record<string, TypedParamValue>;
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
  /** The domain capabilities XML for x86_64 domains of `virttype` (libvirt's default emulator and machine). */
  getDomainCapabilities(virttype: 'kvm' | 'qemu'): Promise<string> {
    return this.#native.getDomainCapabilities(virttype);
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
