/**
 * vmflow's typed, Promise-based libvirt API over the native addon (`native/`): one module per class, named
 * like its `native/src/*.cc` counterpart. Import from here (`src/libvirt/connection`), not from the files.
 */
export { LibvirtError, LibvirtErrorCode, isLibvirtError } from '../errors';
export type { AffectOptions, DefineOptions } from './common';
export {
  Connection,
  type DomainListFilter,
  type DomainStatsRecord,
  type NetworkListFilter,
  type NodeInfo,
  type PoolListFilter,
} from './connection';
export {
  AgentTimeout,
  DOMAIN_STATES,
  Domain,
  type DomainInfo,
  type DomainState,
  type DomainStatsGroup,
  type DomainUndefineOptions,
  type GuestIPAddress,
  type GuestInterface,
} from './domain';
export {
  DOMAIN_EVENT_DETAILS,
  DOMAIN_EVENT_TYPES,
  type CloseReason,
  type DomainLifecycleEvent,
  type DomainLifecycleEventType,
} from './events';
export { Network, type DHCPLease, type NetworkUpdateCommand, type NetworkUpdateSection } from './network';
export { NWFilter } from './nwfilter';
export { NWFilterBinding } from './nwfilter-binding';
export { StoragePool, type StoragePoolState } from './storage-pool';
export { StorageVolume, type StorageVolumeType } from './storage-volume';
