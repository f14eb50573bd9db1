/**
 * Everything the API and tests need to talk to workflows: task-queue names, inputs/outputs, and the
 * signal/query/update definitions. The only module of src/workflows that code outside it imports.
 */
import { defineQuery } from '@temporalio/workflow';
import type { MachineStatus } from '../entities/machine-status';

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
};

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
  /** The user's guest password / product key, sealed. Never in clear text in history. */
  guestSecrets?: SealedSecretRef;
}

/** Input of cloneMachine. */
export interface CloneMachineInput extends OperationContext {
  sourceMachineId: string;
  machineId: string;
  name: string;
  linked: boolean;
  ownerId: string;
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

/** The statuses a hardware change starts from. */
export const HARDWARE_FROM: readonly MachineStatus[] = ['off', 'running', 'suspended'];

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
