/** Domain lifecycle and connection-close events (`native/src/events.cc`). */

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
export const CLOSE_REASONS: readonly CloseReason[] = ['error', 'eof', 'keepalive', 'client'];

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
