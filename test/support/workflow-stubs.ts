/**
 * Stubbed activities for the workflow tier (test/workflows): one builder for every suite, so no test
 * copies a fake. The stubs keep a tiny in-memory world (machine rows, operation rows) with the same
 * rules as the real DB activities (`from` statuses, the transition table, idempotent inserts and
 * deletes), record every call in order, and let a test make any call fail or block on a gate it
 * controls.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { CreatePlan, DbActivities, MachineView } from '../../src/activities/db';
import type { HostActivities } from '../../src/activities/host';
import type { DomainHardware, HardwareApplied, LibvirtActivities } from '../../src/activities/libvirt';
import type { NwfilterActivities } from '../../src/activities/nwfilter';
import type { StorageActivities } from '../../src/activities/storage';
import { seedVolumeName, type createSeedActivities } from '../../src/activities/seed';
import type { PlannedImage } from '../../src/activities/db-types';
import { canTransition } from '../../src/entities/machine-status';
import { FailureType, type HostReport, libvirtNames } from '../../src/workflows/shared';
import type { FirewallDbActivities } from '../../src/activities/db-firewall';
import type { NetworkDbActivities } from '../../src/activities/db-network';
import type { NetworkActivities } from '../../src/activities/network';
import { departmentFilterSpec } from '../../src/firewall/compile';
import { DEPARTMENT_CHANGE_FROM } from '../../src/workflows/shared';
import { firewallStubs, stubVmSpec, type FirewallStubOptions } from './firewall-stubs';
import { networkStubs, type NetworkStubOptions } from './network-stubs';
import type { ImageDbActivities } from '../../src/activities/db-images';
import type { ImageHostActivities } from '../../src/activities/images';
import { imageStubs, type ImageStubOptions } from './image-stubs';
import type { GuestActivities } from '../../src/activities/guest';
import { guestStubs, type GuestStubOptions, type GuestWorld } from './guest-stubs';

/** The failure type stubs throw when told to fail without a type. */
export const INJECTED = 'InjectedFault';

/** Storage pool of the stub host. */
export const STUB_POOL = 'vmflow-test-pool';

type DbStubs = DbActivities & NetworkDbActivities & FirewallDbActivities & ImageDbActivities;
type HypervisorStubs = HostActivities &
  LibvirtActivities &
  StorageActivities &
  NwfilterActivities &
  NetworkActivities &
  ImageHostActivities &
  SeedActivities &
  GuestActivities;
type SeedActivities = ReturnType<typeof createSeedActivities>;
type AnyActivity = (...args: never[]) => Promise<unknown>;

/** One recorded activity call. `label` tells calls apart where the name alone does not. */
export interface StubCall {
  /** Activity name, or `<name>:<status>` for the status writes and finishOperation, or `<name>:cancelled`. */
  label: string;
  name: string;
  input: unknown;
}

/** How a stub fails: a non-retryable ApplicationFailure of `type`, or a retryable one `times` times. */
export interface FailureSpec {
  type?: string;
  message?: string;
  /** Fail only the first `times` calls (default: every call). */
  times?: number;
  /** Throw a retryable failure (the activity's retry policy applies). Default: non-retryable. */
  retryable?: boolean;
  /** Fail only calls whose input matches (e.g. one machine's setMachineStatus). */
  when?: (input: never) => boolean;
}

/** A point where a stub waits until the test releases it (or, if it heartbeats, until it is cancelled). */
export interface Gate {
  /** Resolves when the stub reaches the gate. */
  readonly entered: Promise<void>;
  readonly hasEntered: boolean;
  /** Lets the stub go on. */
  release(): void;
}

/** A row of the operations table as the stubs keep it. */
export interface StubOperation {
  type: string;
  status: string;
  error?: string;
  /** What setOperationResult stored. */
  result?: Record<string, unknown>;
}

/** Options of {@link createStubs}. Everything has a default that makes the happy path pass. */
export interface StubOptions {
  /** Host of the machines: its task queue gets the hypervisor stubs. Unique per test. */
  hostName: string;
  /** Machine rows that exist before the workflow runs. */
  machines?: MachineView[];
  /** What getDomainState reports. Default `shutoff`. */
  domainState?: string;
  /** What shutdownDomain reports. Default `done`. */
  shutdownOutcome?: 'done' | 'timeout';
  /** What getDomainHardware reports. */
  domainHardware?: DomainHardware;
  /** What applyLiveHardware reports. Default: everything applied live. */
  hardwareApplied?: (input: { cpu?: number; memoryMiB?: number }) => HardwareApplied;
  /** Calls that fail, by label (`createVolume`, `setMachineStatus:running`) or name. */
  fail?: Record<string, string | FailureSpec>;
  /**
   * Runs when a call with this label starts, before it acts: lets a test change the world in between
   * (another operation racing in) or inspect the input.
   */
  before?: Record<string, (world: StubWorld, input: unknown) => void>;
  /** Options of the network stubs (test/support/network-stubs.ts). */
  network?: NetworkStubOptions;
  /** Options of the firewall stubs (test/support/firewall-stubs.ts). */
  firewall?: FirewallStubOptions;
  /** Options of the image stubs (test/support/image-stubs.ts). */
  image?: ImageStubOptions;
  /** The image planCreate plans the disk from (default: none, an empty disk). */
  planImage?: PlannedImage;
  /** Options of the guest stubs (test/support/guest-stubs.ts). */
  guest?: GuestStubOptions;
}

/**
 * The stubs' state: machine and operation rows in the DB; volumes (name → GiB; a seed ISO counts as 0 GiB),
 * domains and nwfilters
 * (VM and department filters, by name; their content is in the firewall world) on the host, so a test can
 * assert that nothing is left behind.
 */
export interface StubWorld {
  machines: Map<string, MachineView>;
  operations: Map<string, StubOperation>;
  volumes: Map<string, number>;
  domains: Set<string>;
  filters: Set<string>;
}

const HOST_CPUS = 16;
const HOST_MEMORY_MIB = 32768;

/** A machine row with sensible defaults (status `off`, 2 vCPU, 1 GiB, 10 GiB). */
export function machineFixture(
  id: string,
  hostName: string,
  overrides: Partial<MachineView> = {},
): MachineView {
  return {
    id,
    name: `machine ${id}`,
    internalName: libvirtNames.domain(id),
    status: 'off',
    ownerId: 'owner-1',
    departmentId: 'dept-1',
    templateId: 'template-1',
    hostName,
    storagePool: STUB_POOL,
    cpu: 2,
    memoryMiB: 1024,
    storageGiB: 10,
    os: 'linux',
    macAddress: '52:54:00:00:00:01',
    networkName: 'vmflow-default',
    diskPath: `/var/lib/vmflow/${libvirtNames.volume(id)}`,
    filterName: libvirtNames.vmFilter(id),
    departmentFilterName: libvirtNames.departmentFilter('dept-1'),
    linkedClone: false,
    sourceMachineId: null,
    libvirtUuid: `uuid-${id}`,
    currentOperationId: null,
    pendingHardware: null,
    ipAddresses: [],
    guestAgent: 'absent',
    ...overrides,
  };
}

/** A planned image (cloud-init, linked, a seed for alice with a password and a key), with overrides. */
export function imagePlanFixture(overrides: Partial<PlannedImage> = {}): PlannedImage {
  return {
    id: 'image-1',
    path: '/var/lib/vmflow/images/vmflow-image-image-1.qcow2',
    format: 'qcow2',
    firmware: 'bios',
    provisioning: 'cloud-init',
    diskMode: 'linked',
    seed: {
      hostname: 'web-1',
      username: 'alice',
      sshKeys: ['ssh-ed25519 AAAA alice'],
      hasPassword: true,
      hasProductKey: false,
      hasUserData: false,
    },
    ...overrides,
  };
}

/** Domain hardware with defaults matching {@link machineFixture} (running, 2 vCPU of 16, 1 GiB of 2). */
export function hardwareFixture(overrides: Partial<DomainHardware> = {}): DomainHardware {
  return {
    active: true,
    state: 'running',
    config: { cpu: 2, maxCpu: 16, memoryMiB: 1024, maxMemoryMiB: 2048 },
    live: { cpu: 2, memoryMiB: 1024 },
    ...overrides,
  };
}

/** The stubs of one test: activities for both workers, the world, the calls, gates. */
export class Stubs {
  readonly hostName: string;
  readonly world: StubWorld;
  /** Every call except recordStep and releaseMachine, in the order the stubs saw them. */
  readonly calls: StubCall[] = [];
  /** Machines released (the bookkeeping write that ends every operation), in order. */
  readonly releases: Array<{ machineId: string; operationId: string }> = [];
  /** What recordStep (a local activity) received, in order. */
  readonly steps: Array<{ step: string; status: string; error?: string }> = [];
  readonly control: DbStubs;
  readonly hypervisor: HypervisorStubs;
  /** The guest stubs' world (programs started). */
  readonly guest: GuestWorld;
  private readonly gates = new Map<string, GateImpl>();
  private readonly failCounts = new Map<string, number>();

  constructor(private readonly opts: StubOptions) {
    this.hostName = opts.hostName;
    const machines = opts.machines ?? [];
    this.world = {
      machines: new Map(machines.map((m) => [m.id, structuredClone(m)])),
      operations: new Map(),
      volumes: new Map(machines.map((m) => [libvirtNames.volume(m.id), m.storageGiB])),
      domains: new Set(machines.map((m) => m.internalName)),
      filters: new Set(machines.flatMap((m) => [m.filterName, m.departmentFilterName])),
    };
    const network = networkStubs(this, opts);
    const firewall = firewallStubs(this, opts);
    const image = imageStubs(this, opts);
    const guest = guestStubs(opts);
    this.guest = guest.world;
    this.control = this.wrapAll({
      ...this.dbImpl(),
      ...network.control,
      ...firewall.control,
      ...image.control,
    });
    this.hypervisor = this.wrapAll({
      ...this.hypervisorImpl(),
      ...network.hypervisor,
      ...firewall.hypervisor,
      ...image.hypervisor,
      ...guest.hypervisor,
    });
  }

  /**
   * The labels of the calls so far, in order. `aliases` (machine id → name) tags the setMachineStatus
   * calls of those machines, e.g. `setMachineStatus:off@source`.
   */
  labels(aliases: Record<string, string> = {}): string[] {
    return this.calls.map((c) => {
      const machineId = (c.input as { machineId?: string } | undefined)?.machineId;
      return c.name === 'setMachineStatus' && machineId && aliases[machineId]
        ? `${c.label}@${aliases[machineId]}`
        : c.label;
    });
  }

  /** The inputs of the calls with this label. */
  inputs<T = Record<string, unknown>>(label: string): T[] {
    return this.calls.filter((c) => c.label === label).map((c) => c.input as T);
  }

  /** `step:status` for every recorded step. */
  stepLabels(): string[] {
    return this.steps.map((s) => `${s.step}:${s.status}`);
  }

  /**
   * Makes the next call with this label wait until released, heartbeating (as every real activity
   * does). A `cancellable` one throws when it hears of cancellation (recording `<label>:cancelled`), as
   * a storage copy does; otherwise it behaves like a DB write, which finishes whatever happens.
   */
  gate(label: string, { cancellable = true }: { cancellable?: boolean } = {}): Gate {
    const gate = new GateImpl(cancellable);
    this.gates.set(label, gate);
    return gate;
  }

  /** Machine ids whose volume, domain or VM filter still exist on the stub host. */
  leftovers(machineId: string): string[] {
    const w = this.world;
    return [
      ...(w.volumes.has(libvirtNames.volume(machineId)) ? ['volume'] : []),
      ...(w.volumes.has(seedVolumeName(machineId)) ? ['seed'] : []),
      ...(w.domains.has(libvirtNames.domain(machineId)) ? ['domain'] : []),
      ...(w.filters.has(libvirtNames.vmFilter(machineId)) ? ['filter'] : []),
    ];
  }

  /** Releases every gate (tests' clean-up, so no stub outlives its worker). */
  releaseAll(): void {
    for (const g of this.gates.values()) g.release();
  }

  private wrapAll<T extends Record<string, AnyActivity>>(impl: T): T {
    const out: Record<string, AnyActivity> = {};
    for (const [name, fn] of Object.entries(impl)) {
      out[name] = async (...args: never[]) => {
        const input: unknown = args[0];
        if (name === 'recordStep') {
          const s = input as { step: string; status: string; error?: string };
          this.pushSteps([{ name: s.step, ...s }]);
          return fn(...args);
        }
        if (name === 'recordSteps') {
          this.pushSteps((input as { steps: Array<{ name: string; status: string; error?: string }> }).steps);
          return fn(...args);
        }
        if (name === 'releaseMachine') {
          this.releases.push(input as { machineId: string; operationId: string });
          return fn(...args);
        }
        if (name === 'finishOperation') {
          // The closing write carries the last step records and the machine's release (merged bookkeeping).
          const fin = input as {
            operationId: string;
            releaseMachineId?: string | null;
            steps?: Array<{ name: string; status: string; error?: string }>;
          };
          this.pushSteps(fin.steps ?? []);
          if (fin.releaseMachineId)
            this.releases.push({ machineId: fin.releaseMachineId, operationId: fin.operationId });
        }
        const label = labelOf(name, input);
        this.calls.push({ label, name, input });
        this.opts.before?.[label]?.(this.world, input);
        const gate = this.gates.get(label);
        if (gate && !gate.hasEntered)
          await gate.pass(() => this.calls.push({ label: `${label}:cancelled`, name, input }));
        this.maybeFail(label, name, input);
        return fn(...args);
      };
    }
    return out as T;
  }

  private pushSteps(steps: Array<{ name: string; status: string; error?: string }>): void {
    for (const s of steps)
      this.steps.push({ step: s.name, status: s.status, ...(s.error ? { error: s.error } : {}) });
  }

  private linkedClones(machineId: string): number {
    return [...this.world.machines.values()].filter((m) => m.sourceMachineId === machineId && m.linkedClone)
      .length;
  }

  private maybeFail(label: string, name: string, input: unknown): void {
    const key =
      this.opts.fail?.[label] !== undefined ? label : this.opts.fail?.[name] !== undefined ? name : undefined;
    if (!key) return;
    const raw = this.opts.fail![key];
    const spec: FailureSpec = typeof raw === 'string' ? { type: raw } : raw;
    if (spec.when && !spec.when(input as never)) return;
    const n = (this.failCounts.get(key) ?? 0) + 1;
    this.failCounts.set(key, n);
    if (spec.times !== undefined && n > spec.times) return;
    const message = spec.message ?? `injected failure in ${label}`;
    throw ApplicationFailure.create({ type: spec.type ?? INJECTED, message, nonRetryable: !spec.retryable });
  }

  private requireMachine(id: string): MachineView {
    const m = this.world.machines.get(id);
    if (!m)
      throw ApplicationFailure.create({
        type: FailureType.NotFound,
        message: 'machine not found',
        nonRetryable: true,
      });
    return m;
  }

  private planFor(
    machineId: string,
    cpu = 2,
    memoryMiB = 1024,
    storageGiB = 10,
    departmentId = 'dept-1',
  ): CreatePlan {
    const departmentFilterName = libvirtNames.departmentFilter(departmentId);
    return {
      departmentFilterSpecs: [
        { name: departmentFilterName, chain: 'root', filterrefs: [{ filter: 'clean-traffic' }] },
      ],
      vmFilterSpec: stubVmSpec(machineId, departmentId),
      cpu,
      memoryMiB,
      storageGiB,
      os: 'linux',
      internalName: libvirtNames.domain(machineId),
      filterName: libvirtNames.vmFilter(machineId),
      departmentFilterName: libvirtNames.departmentFilter(departmentId),
      networkName: 'vmflow-default',
      host: { name: this.hostName, storagePool: STUB_POOL, cpus: HOST_CPUS, memoryMiB: HOST_MEMORY_MIB },
      ...(this.opts.planImage ? { image: structuredClone(this.opts.planImage) } : {}),
    };
  }

  /** The machine and operation DB stubs (the network and firewall stubs add theirs). */
  private dbImpl(): DbActivities {
    const world = this.world;
    const view = (m: MachineView) => structuredClone(m);
    return {
      beginOperation: async (input) => {
        if (!world.operations.has(input.operationId))
          world.operations.set(input.operationId, { type: input.type, status: 'running' });
      },
      recordStep: async () => undefined,
      setOperationResult: async (input) => {
        const op = world.operations.get(input.operationId);
        if (op && op.status === 'running') op.result = structuredClone(input.result);
      },
      recordSteps: async () => undefined,
      finishOperation: async (input) => {
        const held = input.releaseMachineId ? world.machines.get(input.releaseMachineId) : undefined;
        if (held && held.currentOperationId === input.operationId) held.currentOperationId = null;
        const op = world.operations.get(input.operationId);
        if (op && op.status === 'running') Object.assign(op, { status: input.status, error: input.error });
      },
      planCreate: async (input) =>
        this.planFor(input.machineId, input.cpu, input.memoryMiB, input.storageGiB, input.departmentId),
      planClone: async (input) => {
        const source = this.requireMachine(input.sourceMachineId);
        if (source.status !== 'off') {
          throw ApplicationFailure.create({
            type: FailureType.Refused,
            message: `the source must be off (it is ${source.status})`,
            nonRetryable: true,
          });
        }
        const plan = this.planFor(
          input.machineId,
          source.cpu,
          source.memoryMiB,
          source.storageGiB,
          source.departmentId,
        );
        return {
          source: view(source),
          plan: {
            ...plan,
            departmentFilterName: source.departmentFilterName,
            departmentFilterSpecs: [
              { name: source.departmentFilterName, chain: 'root', filterrefs: [{ filter: 'clean-traffic' }] },
            ],
            vmFilterSpec: {
              ...stubVmSpec(input.machineId),
              filterrefs: [{ filter: source.departmentFilterName }],
            },
          },
        };
      },
      planHardware: async (input) => view(this.requireMachine(input.machineId)),
      insertMachine: async (input) => {
        const existing = world.machines.get(input.machineId);
        if (existing) return view(existing);
        const m = machineFixture(input.machineId, input.hostName, {
          name: input.name,
          status: input.status ?? 'creating',
          ownerId: input.ownerId,
          departmentId: input.departmentId,
          templateId: input.templateId,
          cpu: input.plan.cpu,
          memoryMiB: input.plan.memoryMiB,
          storageGiB: input.plan.storageGiB,
          internalName: input.plan.internalName,
          filterName: input.plan.filterName,
          networkName: input.plan.networkName,
          macAddress: null,
          diskPath: null,
          libvirtUuid: null,
          sourceMachineId: input.sourceMachineId ?? null,
          linkedClone: input.linkedClone ?? false,
          currentOperationId: input.operationId,
        });
        world.machines.set(m.id, m);
        return view(m);
      },
      getMachine: async (machineId) => {
        const m = world.machines.get(machineId);
        return m ? view(m) : null;
      },
      countLinkedClones: async (machineId) => this.linkedClones(machineId),
      planDestroy: async (machineId) => {
        const m = world.machines.get(machineId);
        if (m && this.linkedClones(machineId) > 0) {
          throw ApplicationFailure.create({
            type: FailureType.Refused,
            message: 'this machine backs linked clones: destroy them first',
            nonRetryable: true,
          });
        }
        return m ? view(m) : null;
      },
      setMachineStatus: async (input) => {
        const m = this.requireMachine(input.machineId);
        if (input.onlyIfHeldBy !== undefined && m.currentOperationId !== input.onlyIfHeldBy) return view(m);
        if (m.status !== input.status) {
          if ((input.from && !input.from.includes(m.status)) || !canTransition(m.status, input.status)) {
            throw ApplicationFailure.create({
              type: FailureType.IllegalTransition,
              message: `machine is ${m.status}, cannot become ${input.status}`,
              nonRetryable: true,
              details: [{ status: m.status }],
            });
          }
        }
        Object.assign(m, input.fields ?? {}, { status: input.status });
        if (input.release) m.currentOperationId = null;
        else if (input.operationId) m.currentOperationId = input.operationId;
        return view(m);
      },
      releaseMachine: async (input) => {
        const m = world.machines.get(input.machineId);
        if (m && m.currentOperationId === input.operationId) m.currentOperationId = null;
      },
      failMachine: async (input) => {
        const m = world.machines.get(input.machineId);
        if (m) Object.assign(m, { status: 'failed', lastError: input.error, currentOperationId: null });
      },
      deleteMachine: async (input) => {
        world.machines.delete(input.machineId);
      },
      planDepartmentChange: async (input) => {
        const m = this.requireMachine(input.machineId);
        if (!DEPARTMENT_CHANGE_FROM.includes(m.status)) {
          throw ApplicationFailure.create({
            type: FailureType.IllegalTransition,
            message: `machine is ${m.status}`,
            nonRetryable: true,
            details: [{ status: m.status }],
          });
        }
        const departmentFilterName = libvirtNames.departmentFilter(input.departmentId);
        return {
          machine: view(m),
          noop: m.departmentId === input.departmentId,
          departmentFilterName,
          departmentFilterSpecs: [
            departmentFilterSpec({
              departmentId: input.departmentId,
              policy: 'ALLOW_ALL',
              rules: [],
              includes: [],
            }),
          ],
          vmFilterSpec: stubVmSpec(m.id, input.departmentId),
          pruneCandidates: m.departmentId === input.departmentId ? [] : [m.departmentFilterName],
        };
      },
      setMachineDepartment: async (input) => {
        const m = this.requireMachine(input.machineId);
        if (input.onlyIfHeldBy !== undefined && m.currentOperationId !== input.onlyIfHeldBy) return view(m);
        m.departmentId = input.departmentId;
        m.departmentFilterName = libvirtNames.departmentFilter(input.departmentId);
        return view(m);
      },
    };
  }

  /** The host, domain and storage stubs (the network and firewall stubs add the network and nwfilter ones). */
  private hypervisorImpl(): HostActivities & LibvirtActivities & StorageActivities & SeedActivities {
    const o = this.opts;
    const w = this.world;
    const noop = async () => undefined;
    const report: HostReport = {
      hostname: this.hostName,
      uri: 'test:///stub',
      libvirtVersion: '9.0.0',
      cpus: HOST_CPUS,
      memoryMiB: HOST_MEMORY_MIB,
      freeMemoryMiB: HOST_MEMORY_MIB / 2,
    };
    return {
      describeHost: async () => report,
      defineDomain: async (plan) => {
        w.domains.add(plan.internalName);
        return { uuid: `uuid-${plan.machineId}`, mac: '52:54:00:aa:bb:cc' };
      },
      undefineDomain: async (input) => void w.domains.delete(input.internalName),
      getDomainState: async () => o.domainState ?? 'shutoff',
      startDomain: noop,
      shutdownDomain: async () => o.shutdownOutcome ?? 'done',
      forceOffDomain: noop,
      rebootDomain: noop,
      resetDomain: noop,
      suspendDomain: noop,
      resumeDomain: noop,
      getDomainHardware: async () => structuredClone(o.domainHardware ?? hardwareFixture()),
      configureDomainHardware: noop,
      applyLiveHardware: async (input) =>
        o.hardwareApplied?.(input) ?? {
          live: {
            ...(input.cpu !== undefined ? { cpu: input.cpu } : {}),
            ...(input.memoryMiB !== undefined ? { memoryMiB: input.memoryMiB } : {}),
          },
          pending: {},
        },
      restoreDomainHardware: async () => ({ vcpusStillPlugged: 0 }),
      createVolume: async (input) => {
        if (!w.volumes.has(input.name)) w.volumes.set(input.name, input.capacityGiB);
        return { path: `/var/lib/vmflow/${input.name}` };
      },
      deleteVolume: async (input) => void w.volumes.delete(input.name),
      getVolumeCapacity: async (input) => w.volumes.get(input.name) ?? null,
      growDisk: async (input) =>
        void w.volumes.set(input.name, Math.max(w.volumes.get(input.name) ?? 0, input.capacityGiB)),
      writeSeed: async (input) => {
        const volume = seedVolumeName(input.machineId);
        w.volumes.set(volume, 0);
        return { volume, path: `/var/lib/vmflow/${volume}`, sizeBytes: 368_640 };
      },
      deleteSeed: async (input) => void w.volumes.delete(seedVolumeName(input.machineId)),
    };
  }
}

/** Builds the stubs of one test. */
export function createStubs(opts: StubOptions): Stubs {
  return new Stubs(opts);
}

function labelOf(name: string, input: unknown): string {
  if (name === 'setMachineStatus' || name === 'setImageStatus' || name === 'finishOperation')
    return `${name}:${(input as { status: string }).status}`;
  return name;
}

class GateImpl implements Gate {
  readonly entered: Promise<void>;
  hasEntered = false;
  private markEntered!: () => void;
  private released = false;
  private readonly done: Promise<void>;
  private releaseFn!: () => void;

  constructor(private readonly cancellable: boolean) {
    this.entered = new Promise((r) => (this.markEntered = r));
    this.done = new Promise((r) => (this.releaseFn = r));
  }

  release(): void {
    this.released = true;
    this.releaseFn();
  }

  async pass(onCancelled: () => void): Promise<void> {
    this.hasEntered = true;
    this.markEntered();
    if (this.released) return;
    const ctx = Context.current();
    ctx.heartbeat();
    // Heartbeating is how an activity hears of cancellation (the worker's throttle is set low in tests).
    const timer = setInterval(() => ctx.heartbeat(), 50);
    try {
      await Promise.race(this.cancellable ? [this.done, ctx.cancelled] : [this.done]);
    } catch (err) {
      onCancelled();
      throw err;
    } finally {
      clearInterval(timer);
    }
  }
}
