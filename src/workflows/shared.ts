/**
 * Everything the API and tests need to talk to workflows: task-queue names, inputs/outputs, and the
 * signal/query/update definitions. The only module of src/workflows that code outside it imports.
 */
import { defineQuery } from '@temporalio/workflow';
import type { MachineStatus } from '../entities/machine-status';
import type { Provisioning } from '../guests/provisioning';

/** Workflows and DB/event activities run here. */
export const CONTROL_TASK_QUEUE = 'vmflow-control';

/** Hypervisor activities (libvirt, storage, nwfilter, guest agent) run on the task queue of their host. */
export function hostTaskQueue(hostName: string): string {
  return `host-${hostName}`;
}

/** The workflow id of every mutating operation on a VM: one operation per VM at a time (DESIGN decision 6). */
export function machineWorkflowId(machineId: string): string {
  return `vm-${machineId}`;
}

/**
 * Deterministic libvirt names, derived from ids: user text never becomes a libvirt name, and every
 * activity can find (or skip) what an earlier attempt made.
 */
export const libvirtNames = {
  domain: (machineId: string) => `vmflow-${machineId}`,
  volume: (machineId: string) => `vmflow-${machineId}.qcow2`,
  vmFilter: (machineId: string) => `vmflow-vm-${machineId}`,
  departmentFilter: (departmentId: string) => `vmflow-dept-${departmentId}`,
  /** A reusable (custom) filter. */
  customFilter: (filterId: string) => `vmflow-fw-${filterId}`,
  /** A virtual network. */
  network: (networkId: string) => `vmflow-net-${networkId}`,
  /** The kernel bridge of a network vmflow creates: 14 characters (the kernel allows 15). */
  bridge: (networkId: string) => `vfbr${networkId.replace(/-/g, '').slice(0, 10)}`,
  /** The volume of an uploaded OS image (a registered image keeps its volume's own name). */
  imageVolume: (imageId: string) => `vmflow-image-${imageId}`,
};

/** Prefixes of every libvirt object vmflow owns (sweeps and leak checks match on them). */
export const LIBVIRT_PREFIXES = {
  filter: ['vmflow-vm-', 'vmflow-dept-', 'vmflow-fw-'],
  network: 'vmflow-net-',
  bridge: 'vfbr',
} as const;

/** The workflow id of every operation on an image (import, registration, delete): one at a time per image. */
export function imageWorkflowId(imageId: string): string {
  return `image-${imageId}`;
}

/** The workflow id of every operation on a network: one at a time per network. */
export function networkWorkflowId(networkId: string): string {
  return `network-${networkId}`;
}

/**
 * The workflow id of a firewall change. Changes are serialized per scope: a department (its own filter and
 * the filters of its machines) or a custom filter. A second change of the same scope waits for the first.
 */
export function firewallWorkflowId(scopeId: string): string {
  return `firewall-${scopeId}`;
}

/** The workflow id of a flush of every filter (or of one department's). */
export function flushWorkflowId(departmentId?: string | null): string {
  return departmentId ? `firewall-flush-${departmentId}` : 'firewall-flush';
}

/** Input of {@link pingHost}: which host's queue to reach. */
export interface PingHostInput {
  hostName: string;
}

/** What a host reports about itself through its libvirt connection. */
export interface HostReport {
  hostname: string;
  uri: string;
  libvirtVersion: string;
  cpus: number;
  memoryMiB: number;
  freeMemoryMiB: number;
}

/** One recorded step of an operation. */
export interface StepRecord {
  name: string;
  status: 'started' | 'completed' | 'failed' | 'compensating' | 'compensated';
  at: string;
  error?: string;
}

/**
 * Query: the steps of an operation, as recorded so far. Cancel an operation with Temporal's own
 * cancellation (API, CLI or Web UI): its compensations run and the VM ends in a clean state.
 */
export const progressQuery = defineQuery<StepRecord[]>('progress');

/**
 * Failure types raised by activities (ApplicationFailure.type) that callers match on. Permanent ones are
 * non-retryable. The API maps them to HTTP statuses.
 */
export const FailureType = {
  /** Input is malformed (field named in details). → 400 */
  Validation: 'ValidationError',
  /** A referenced object does not exist. → 404 */
  NotFound: 'NotFoundError',
  /** The caller may not do this. → 403/404 */
  Forbidden: 'ForbiddenError',
  /** A valid request the domain refuses (disk shrink, source not off, capacity). → 422 */
  Refused: 'RefusedError',
  /** The machine is not in a status that allows this operation. → 409 */
  IllegalTransition: 'IllegalTransitionError',
  /** A name is taken. → 409 */
  NameTaken: 'NameTakenError',
  /** The resource is still used (a network with machines attached, a filter included elsewhere): details name the users. → 409 */
  InUse: 'InUseError',
  /** The host cannot do this (e.g. QoS on a kernel without the qdiscs). → 422 */
  Unsupported: 'UnsupportedError',
  /** The operation was cancelled; compensations ran. */
  Cancelled: 'OperationCancelledError',
} as const;

/** What every machine operation input carries. */
export interface OperationContext {
  /** Operation id (uuid), chosen by the caller: keys the operation row and its events. */
  operationId: string;
  /** The user on whose behalf it runs (null = the system, e.g. reconciliation). */
  actorId: string | null;
  idempotencyKey?: string | null;
}

/** A sealed secret (see src/secrets.ts): safe in workflow history. */
export interface SealedSecretRef {
  v: 1;
  iv: string;
  tag: string;
  data: string;
}

/** Input of createMachine. Sizes: memory in MiB, storage in GiB. */
export interface CreateMachineInput extends OperationContext {
  machineId: string;
  name: string;
  templateId: string;
  departmentId: string;
  ownerId: string;
  cpu?: number;
  memoryMiB?: number;
  storageGiB?: number;
  /** Host to place it on; default: the first registered host. */
  hostName?: string;
  /** Libvirt network; default: the department's, else the host's default vmflow network. */
  networkName?: string;
  start?: boolean;
  /** The user's guest password, product key and user data, sealed. Never in clear text in history. */
  guestSecrets?: SealedSecretRef;
  /** First-boot provisioning in clear (host name, user, SSH keys); for a template with an image. */
  provisioning?: Provisioning;
}

/** Input of cloneMachine. */
export interface CloneMachineInput extends OperationContext {
  sourceMachineId: string;
  machineId: string;
  name: string;
  linked: boolean;
  ownerId: string;
  /** The clone's host name, for a source made from an image (default: derived from its name). */
  hostname?: string;
}

/** Input of destroyMachine. */
export interface DestroyMachineInput extends OperationContext {
  machineId: string;
  /** Seconds to wait for a graceful shutdown before forcing off. */
  shutdownTimeoutSec?: number;
}

/** Input of updateMachineHardware. */
export interface UpdateHardwareInput extends OperationContext {
  machineId: string;
  cpu?: number;
  memoryMiB?: number;
  storageGiB?: number;
}

export const POWER_ACTIONS = [
  'start',
  'shutdown',
  'poweroff',
  'reboot',
  'reset',
  'suspend',
  'resume',
] as const;
export type PowerAction = (typeof POWER_ACTIONS)[number];

/** The statuses each power action starts from: one table for the workflow and the API. */
export const POWER_FROM: Readonly<Record<PowerAction, readonly MachineStatus[]>> = {
  start: ['off'],
  shutdown: ['running'],
  poweroff: ['running', 'suspended'],
  reboot: ['running'],
  reset: ['running'],
  suspend: ['running'],
  resume: ['suspended'],
};

/** The statuses a hardware change (and a move to another network) starts from. */
export const HARDWARE_FROM: readonly MachineStatus[] = ['off', 'running', 'suspended'];

/** The statuses a department change starts from: one table for the workflow, the plan activity and the API. */
export const DEPARTMENT_CHANGE_FROM: readonly MachineStatus[] = ['off', 'running', 'suspended'];

/** Input of powerMachine. */
export interface PowerMachineInput extends OperationContext {
  machineId: string;
  action: PowerAction;
  /** For shutdown: seconds to wait for the guest before reporting `timeout`. */
  shutdownTimeoutSec?: number;
}

/** What a finished machine operation returns. */
export interface MachineOperationResult {
  machineId: string;
  status: string;
  /** For shutdown: whether the guest stopped in time. */
  outcome?: 'done' | 'timeout' | 'noop';
}

/** Hardware limits a machine must stay within (the host's capacity narrows them further). */
export const HARDWARE_LIMITS = {
  cpu: { min: 1, max: 64 },
  memoryMiB: { min: 32, max: 1024 * 1024 },
  storageGiB: { min: 1, max: 16 * 1024 },
} as const;

/** Names of machines: printable, no control characters, 1–100 characters. */
export const MACHINE_NAME_MAX = 100;

// ---------------------------------------------------------------------------------------------
// Networks (src/workflows/create-network.ts, update-network.ts, delete-network.ts)
// ---------------------------------------------------------------------------------------------

export type NetworkModeName = 'nat' | 'route' | 'bridge' | 'isolated';

/** QoS in libvirt's units: average/peak in KiB/s, burst in KiB (see src/libvirt/xml/common.ts). */
export interface NetworkBandwidth {
  inbound?: { average: number; peak?: number; burst?: number };
  outbound?: { average: number; peak?: number; burst?: number };
}

/** A static DHCP lease. */
export interface StaticHost {
  mac: string;
  ip: string;
  name?: string;
}

/** Input of createNetwork. */
export interface CreateNetworkInput extends OperationContext {
  networkId: string;
  name: string;
  description?: string;
  mode: NetworkModeName;
  /** Subnet, e.g. `10.20.0.0/24` (not in bridge mode). */
  cidr?: string;
  /** The host's address on the network (default: the first host address of the subnet). */
  gateway?: string;
  dhcpStart?: string;
  dhcpEnd?: string;
  staticHosts?: StaticHost[];
  /** bridge mode: the existing host bridge. Other modes: generated (`libvirtNames.bridge`). */
  bridgeName?: string;
  forwardDev?: string;
  departmentId?: string | null;
  vlanId?: number;
  bandwidth?: NetworkBandwidth;
  /** Host to define it on; default: the first registered host. */
  hostName?: string;
}

/** What an update of a network asks to change: only the fields given change. `null` removes (bandwidth, DHCP). */
export interface NetworkChange {
  dhcpStart?: string | null;
  dhcpEnd?: string | null;
  /** The full list of static leases (replaces the current one). */
  staticHosts?: StaticHost[];
  bandwidth?: NetworkBandwidth | null;
  /** Changing the subnet or gateway redefines the network (refused while running machines use it). */
  cidr?: string;
  gateway?: string;
}

/** Input of updateNetwork: the network and what to change in it. */
export interface UpdateNetworkInput extends OperationContext, NetworkChange {
  networkId: string;
  /** The network's department (null: shared), recorded so the operation's progress events reach its room. */
  departmentId?: string | null;
}

/** Input of deleteNetwork. */
export interface DeleteNetworkInput extends OperationContext {
  networkId: string;
  /** The network's department (null: shared), recorded so the operation's progress events reach its room. */
  departmentId?: string | null;
}

/** What a finished network operation returns. */
export interface NetworkOperationResult {
  networkId: string;
  status: string;
  /** How an update was applied: live through virNetworkUpdate, or by a safe redefine. */
  applied?: 'live' | 'redefined' | 'noop';
}

/** Input of changeMachineNetwork (workflow id `vm-<machineId>`): moves the machine's NIC to another network. */
export interface ChangeMachineNetworkInput extends OperationContext {
  machineId: string;
  networkId: string;
}

// ---------------------------------------------------------------------------------------------
// Firewall (src/workflows/firewall-change.ts, flush-filters.ts, change-machine-department.ts)
// ---------------------------------------------------------------------------------------------

export const SERVICE_ACTIONS = ['USE', 'PROVIDE'] as const;
export type ServiceActionName = (typeof SERVICE_ACTIONS)[number];
export const FIREWALL_PRESETS = ['ALLOW_ALL', 'BLOCK_ALL', 'ALLOW_OUTBOUND', 'ALLOW_INTERNET'] as const;
export type FirewallPreset = (typeof FIREWALL_PRESETS)[number];

/** One change of the firewall, as the API asks for it. Validated again by the workflow's first step. */
export type FirewallChange =
  | { type: 'addRule'; filterId: string; ruleId: string; rule: Record<string, unknown> }
  | { type: 'updateRule'; filterId: string; ruleId: string; rule: Record<string, unknown> }
  | { type: 'deleteRule'; filterId: string; ruleId: string }
  /** Which custom filters a filter includes (applyFilterToVM adds one to a VM filter). */
  | { type: 'setIncludes'; filterId: string; includes: string[] }
  | { type: 'setPolicy'; departmentId: string; policy: FirewallPreset }
  /** `enabled: null` clears a VM's own setting (it then follows its department). */
  | {
      type: 'toggleService';
      scope: 'vm' | 'department';
      scopeId: string;
      serviceId: string;
      action: ServiceActionName;
      enabled: boolean | null;
    };

/** Input of firewallChange (workflow id `firewallWorkflowId(scopeId)`). */
export interface FirewallChangeInput extends OperationContext {
  /** The serialization scope: the department concerned, or the custom filter. */
  scopeId: string;
  change: FirewallChange;
}

/** Input of flushFilters: push the DB's filters to libvirt (one department's, or all). */
export interface FlushFiltersInput extends OperationContext {
  departmentId?: string | null;
}

/** What a firewall change or flush did in libvirt. */
export interface FirewallResult {
  /** libvirt filters (re)defined because their content differed, in the order they were pushed. */
  pushed: string[];
  /** Filters that were already equal to the DB. */
  unchanged: string[];
}

/** Input of changeMachineDepartment (workflow id `vm-<machineId>`): the VM's filter then references the new department's. */
export interface ChangeMachineDepartmentInput extends OperationContext {
  machineId: string;
  departmentId: string;
}

// ---------------------------------------------------------------------------------------------
// Images (src/workflows/import-image.ts, register-image.ts, delete-image.ts)
// ---------------------------------------------------------------------------------------------

/** Input of importImage (workflow id `image-<imageId>`): the uploaded file, staged where the host can read it. */
export interface ImportImageInput extends OperationContext {
  imageId: string;
  /** The host whose pool receives the volume (and whose worker reads the staging file). */
  hostName: string;
  /** The staging file the API wrote (IMAGE_STAGING_DIR); the workflow removes it whatever happens. */
  stagingPath: string;
  /** sha256 (hex) of the bytes the API received; must equal the image's. */
  receivedSha256: string;
  sizeBytes: number;
  /** Bytes per upload activity heartbeat / resume point (default 64 MiB). */
  segmentBytes?: number;
}

/** Input of registerImage: the image row names the existing volume (hostName, pool, volumeName). */
export interface RegisterImageInput extends OperationContext {
  imageId: string;
}

/** Input of deleteImage. */
export interface DeleteImageInput extends OperationContext {
  imageId: string;
}

/** What a finished image operation returns. */
export interface ImageOperationResult {
  imageId: string;
  status: string;
}

// ---- guest commands and reads (docs/guest-commands.md) ----------------------------------------------

/** Failure types of guest reads and commands, as the API maps them. */
export const GuestFailureType = {
  /** The machine is not running, or the agent is not connected (or lies about its id). → 503 */
  Unavailable: 'GuestUnavailableError',
  /** The agent did not answer in time. → 504 */
  Timeout: 'GuestTimeoutError',
  /** The agent answered with an error (details: `{code}`: not-found, denied, invalid, unsupported, failed…). */
  Command: 'GuestCommandError',
} as const;

/** What can be read from a running guest: QEMU guest agent information, or lists from vmflow's agent. */
export type GuestReadKind = 'info' | 'processes' | 'services' | 'applications';

/** Input of readGuest (workflow id `guest-read-<machineId>-<uuid>`: a read, not an operation). */
export interface ReadGuestInput {
  hostName: string;
  machineId: string;
  internalName: string;
  what: GuestReadKind;
  /** The bound on the guest's answer (the API answers 504 past it). */
  timeoutMs: number;
}

/**
 * What readGuest gives: the guest's answer, or why there is none (a {@link GuestFailureType} and its message).
 * A guest that cannot answer is an expected outcome of a read, not a failed workflow or activity.
 */
export type GuestReadOutcome =
  { ok: true; value: unknown } | { ok: false; type: string; message: string; code?: string };

/** The most bytes of a guest exec's standard input. */
export const GUEST_EXEC_MAX_STDIN_BYTES = 64 * 1024;
/** The most bytes of each output stream (stdout, stderr) kept from a guest exec: the rest is cut. */
export const GUEST_EXEC_MAX_OUTPUT_BYTES = 64 * 1024;
/** Bounds of a guest exec's `timeoutS`. */
export const GUEST_EXEC_TIMEOUT_S = { min: 1, max: 600, default: 30 } as const;

/** Input of guestExec (workflow id `vm-<machineId>`): a program run through the QEMU guest agent. */
export interface GuestExecInput extends OperationContext {
  machineId: string;
  /** The program's path in the guest (no shell: arguments are passed as they are). */
  command: string;
  args: string[];
  timeoutS: number;
  /** The program's standard input, sealed by the API (a secret: never in the operation row or in clear in history). */
  stdin?: SealedSecretRef;
}

/** What a guest exec gave (stored as the operation's result). */
export interface GuestExecResult {
  /** Null when the program did not exit in time (it was killed) or died of a signal. */
  exitCode: number | null;
  /** The signal that ended it, when one did. */
  signal: number | null;
  timedOut: boolean;
  /** UTF-8 (invalid bytes replaced), at most {@link GUEST_EXEC_MAX_OUTPUT_BYTES} bytes each. */
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
}

/** Input of guestKillProcess (workflow id `vm-<machineId>`): a signal through vmflow's agent. */
export interface GuestKillInput extends OperationContext {
  machineId: string;
  pid: number;
  signal: 'TERM' | 'KILL';
}

/** Service actions through vmflow's agent. */
export type GuestServiceAction = 'start' | 'stop' | 'restart';

/** Input of guestServiceAction (workflow id `vm-<machineId>`). */
export interface GuestServiceInput extends OperationContext {
  machineId: string;
  name: string;
  action: GuestServiceAction;
}

/** What a finished guest command returns (its `result` is also stored on the operation). */
export interface GuestCommandOutcome<R = Record<string, unknown>> {
  machineId: string;
  result: R;
}
