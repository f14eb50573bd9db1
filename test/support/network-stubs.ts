/**
 * Network stubs for the workflow tier, plugged into {@link Stubs} (test/support/workflow-stubs.ts): the
 * control (DB) and hypervisor activities of the network workflows, over a small in-memory world of their
 * own (network rows; libvirt networks with their DHCP ranges and leases; where each NIC is). Validation is
 * the real, pure src/networks/validate.ts; the rules of the real activities (from statuses, holds, the
 * in-use refusals, idempotent adds and removes) are kept.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { MachineView } from '../../src/activities/db';
import type { NetworkDbActivities, NetworkView } from '../../src/activities/db-network';
import type { DomainOnNetwork, NetworkActivities } from '../../src/activities/network';
import type { HostCapabilities } from '../../src/entities/host';
import type { DhcpHostSpec, NetworkSpec } from '../../src/libvirt/xml';
import {
  designNetwork,
  findConflicts,
  networkSpecOf,
  planNetworkUpdate,
  qosProblem,
  type NetworkProblem,
} from '../../src/networks/validate';
import { FailureType, HARDWARE_FROM, libvirtNames } from '../../src/workflows/shared';
import type { StubOptions, Stubs } from './workflow-stubs';

/** A libvirt network of the stub host. */
export interface StubLibvirtNetwork {
  name: string;
  uuid: string;
  active: boolean;
  autostart: boolean;
  spec: NetworkSpec;
  ranges: Array<{ start: string; end: string }>;
  hosts: DhcpHostSpec[];
}

/** Options of the network stubs (part of {@link StubOptions}). */
export interface NetworkStubOptions {
  /** Network rows that exist before the workflow runs. */
  networks?: NetworkView[];
  /** libvirt networks of the stub host that exist before (e.g. the default network's subnet). */
  libvirtNetworks?: StubLibvirtNetwork[];
  /** What networkDomains reports, for any network (default: none). */
  domains?: DomainOnNetwork[];
  /** What the stub host can do (default: no QoS). */
  capabilities?: HostCapabilities;
  /** The new definition of a redefine fails to start: the stub puts the old one back and fails. */
  redefineStartFails?: boolean;
  /** moveMachineInterface reports the running NIC could not move live. */
  liveMoveUnsupported?: boolean;
}

/** The network stubs' state, for assertions (see {@link networkWorld}). */
export interface NetworkWorld {
  rows: Map<string, NetworkView>;
  libvirt: Map<string, StubLibvirtNetwork>;
  /** machine id → the network its NIC is on (set by moveMachineInterface). */
  nics: Map<string, string>;
}

const worlds = new WeakMap<Stubs, NetworkWorld>();

/** The network world of a test's stubs. */
export function networkWorld(stubs: Stubs): NetworkWorld {
  const w = worlds.get(stubs);
  if (!w) throw new Error('these stubs have no network world');
  return w;
}

/** A network row with defaults: an active nat network on 10.252.<n>.0/24 with a DHCP range. */
export function networkFixture(
  id: string,
  hostName: string,
  overrides: Partial<NetworkView> = {},
  n = 1,
): NetworkView {
  return {
    id,
    name: `net ${id}`,
    description: null,
    internalName: libvirtNames.network(id),
    bridgeName: libvirtNames.bridge(id),
    hostId: `host-id-${hostName}`,
    hostName,
    departmentId: null,
    mode: 'nat',
    cidr: `10.252.${n}.0/24`,
    gateway: `10.252.${n}.1`,
    dhcpStart: `10.252.${n}.100`,
    dhcpEnd: `10.252.${n}.200`,
    staticHosts: null,
    forwardDev: null,
    vlanId: null,
    bandwidth: null,
    qosApplied: false,
    status: 'active',
    lastError: null,
    currentOperationId: null,
    ...overrides,
  };
}

/** The libvirt network that matches a row (running, autostart, its range and leases). */
export function libvirtFixture(row: NetworkView): StubLibvirtNetwork {
  return {
    name: row.internalName,
    uuid: row.id,
    active: true,
    autostart: true,
    spec: networkSpecOf(row, {
      networkId: row.id,
      internalName: row.internalName,
      bridgeName: row.bridgeName,
    }),
    ranges: row.dhcpStart && row.dhcpEnd ? [{ start: row.dhcpStart, end: row.dhcpEnd }] : [],
    hosts: [...(row.staticHosts ?? [])],
  };
}

const fail = (type: string, message: string, details?: Record<string, unknown>) =>
  ApplicationFailure.create({ type, message, nonRetryable: true, details: details ? [details] : undefined });

function failWith(problems: NetworkProblem[]): never {
  const first = problems[0]!;
  const type =
    first.kind === 'taken'
      ? FailureType.NameTaken
      : first.kind === 'unsupported'
        ? FailureType.Unsupported
        : FailureType.Validation;
  throw fail(type, problems.map((p) => `${p.field}: ${p.message}`).join('; '), { field: first.field });
}

const cidrsOf = (spec: NetworkSpec) =>
  spec.ip ? [`${spec.ip.address.replace(/\.\d+$/, '.0')}/${spec.ip.prefix ?? 24}`] : [];

/** The network part of the stubs: activities for both queues. */
export function networkStubs(stubs: Stubs, opts: StubOptions) {
  const o = opts.network ?? {};
  const world: NetworkWorld = {
    rows: new Map((o.networks ?? []).map((n) => [n.id, structuredClone(n)])),
    libvirt: new Map((o.libvirtNetworks ?? []).map((n) => [n.name, structuredClone(n)])),
    nics: new Map(),
  };
  worlds.set(stubs, world);
  const machines = () => [...stubs.world.machines.values()];
  const attached = (internalName: string) =>
    machines()
      .filter((m) => m.networkName === internalName)
      .map((m) => ({ id: m.id, name: m.name, status: m.status }));
  const view = (n: NetworkView) => structuredClone(n);
  const row = (id: string) => {
    const n = world.rows.get(id);
    if (!n) throw fail(FailureType.NotFound, 'network not found', { field: 'networkId' });
    return n;
  };
  const ours = (ref: { networkId: string; internalName: string }) => {
    const net = world.libvirt.get(ref.internalName);
    if (net && net.uuid !== ref.networkId)
      throw fail(
        FailureType.Refused,
        `libvirt network ${ref.internalName} is not vmflow's network ${ref.networkId}`,
      );
    return net ?? null;
  };
  const mustHave = (ref: { networkId: string; internalName: string }) => {
    const net = ours(ref);
    if (!net)
      throw fail(FailureType.NotFound, `libvirt network ${ref.internalName} does not exist on this host`);
    return net;
  };
  const hostNetworks = (exceptName?: string) =>
    [...world.libvirt.values()]
      .filter((n) => n.name !== exceptName)
      .map((n) => ({
        label: `libvirt network ${n.name}`,
        cidrs: cidrsOf(n.spec),
        bridgeName: n.spec.bridgeName,
      }));

  const control: NetworkDbActivities = {
    planNetwork: async (input) => {
      const designed = designNetwork({ ...input });
      if (!designed.ok) failWith(designed.problems);
      const { design } = designed;
      const existing = world.rows.get(input.networkId);
      if (existing && !(existing.status === 'creating' && existing.currentOperationId === input.operationId))
        throw fail(FailureType.NameTaken, 'a network with this id already exists', { field: 'networkId' });
      const bridgeName = design.bridgeName ?? libvirtNames.bridge(input.networkId);
      const problems: NetworkProblem[] = [];
      if ([...world.rows.values()].some((r) => r.name === input.name && r.id !== input.networkId))
        problems.push({ field: 'name', message: `a network named "${input.name}" exists`, kind: 'taken' });
      const others = [...world.rows.values()]
        .filter((r) => r.id !== input.networkId)
        .map((r) => ({
          label: `network "${r.name}"`,
          cidrs: r.cidr ? [r.cidr] : [],
          bridgeName: r.bridgeName,
        }));
      problems.push(...findConflicts({ cidr: design.cidr, bridgeName }, others));
      const qos = qosProblem(design.bandwidth, o.capabilities ?? { qos: false, qosReason: 'stub kernel' });
      if (qos) problems.push(qos);
      if (problems.length) failWith(problems);
      const internalName = libvirtNames.network(input.networkId);
      return {
        networkId: input.networkId,
        name: input.name,
        description: input.description ?? null,
        internalName,
        bridgeName,
        hostName: stubs.hostName,
        departmentId: input.departmentId ?? null,
        design,
        spec: networkSpecOf(design, { networkId: input.networkId, internalName, bridgeName }),
      };
    },
    insertNetwork: async ({ operationId, plan }) => {
      const existing = world.rows.get(plan.networkId);
      if (existing) return view(existing);
      const n: NetworkView = {
        ...plan.design,
        id: plan.networkId,
        name: plan.name,
        description: plan.description,
        internalName: plan.internalName,
        bridgeName: plan.bridgeName,
        hostId: `host-id-${plan.hostName}`,
        hostName: plan.hostName,
        departmentId: plan.departmentId,
        qosApplied: plan.design.bandwidth !== null,
        status: 'creating',
        lastError: null,
        currentOperationId: operationId,
      };
      world.rows.set(n.id, n);
      return view(n);
    },
    getNetwork: async (networkId) => {
      const n = world.rows.get(networkId);
      return n ? view(n) : null;
    },
    setNetworkStatus: async (input) => {
      const n = row(input.networkId);
      if (input.onlyIfHeldBy !== undefined && n.currentOperationId !== input.onlyIfHeldBy) return view(n);
      if (n.status !== input.status && input.from && !input.from.includes(n.status))
        throw fail(
          FailureType.IllegalTransition,
          `network is ${n.status}, expected ${input.from.join(' or ')}`,
          {
            status: n.status,
          },
        );
      if (input.requireUnused && attached(n.internalName).length)
        throw fail(FailureType.InUse, 'machines are still attached', { machines: attached(n.internalName) });
      Object.assign(n, input.fields ?? {}, { status: input.status });
      n.currentOperationId = input.release ? null : input.operationId;
      return view(n);
    },
    releaseNetwork: async (input) => {
      const n = world.rows.get(input.networkId);
      if (n && n.currentOperationId === input.operationId) n.currentOperationId = null;
    },
    deleteNetworkRecord: async (input) => {
      const n = world.rows.get(input.networkId);
      if (!n || (input.onlyIfHeldBy !== undefined && n.currentOperationId !== input.onlyIfHeldBy)) return;
      world.rows.delete(input.networkId);
    },
    planNetworkChange: async (input) => {
      const network = view(row(input.networkId));
      if (network.status !== 'active')
        throw fail(FailureType.IllegalTransition, `the network is ${network.status}`, {
          status: network.status,
        });
      const {
        networkId: _id,
        operationId: _op,
        actorId: _a,
        idempotencyKey: _k,
        departmentId: _d,
        ...change
      } = input;
      const planned = planNetworkUpdate(network, change);
      if (!planned.ok) failWith(planned.problems);
      const { plan } = planned;
      if (plan.redefine.includes('bandwidth')) {
        const qos = qosProblem(
          plan.next.bandwidth,
          o.capabilities ?? { qos: false, qosReason: 'stub kernel' },
        );
        if (qos) failWith([qos]);
      }
      if (plan.redefine.length) {
        const running = attached(network.internalName).filter((m) => !['off', 'failed'].includes(m.status));
        if (running.length)
          throw fail(FailureType.Refused, 'running machines use the network', { machines: running });
      }
      return {
        network,
        plan,
        spec: networkSpecOf(plan.next, {
          networkId: network.id,
          internalName: network.internalName,
          bridgeName: network.bridgeName,
        }),
      };
    },
    planNetworkDelete: async ({ networkId }) => {
      const n = world.rows.get(networkId);
      if (!n) return null;
      const users = attached(n.internalName);
      if (users.length) throw fail(FailureType.InUse, 'the network is still in use', { machines: users });
      return view(n);
    },
    planMachineNetwork: async (input) => {
      const m = stubs.world.machines.get(input.machineId);
      if (!m) throw fail(FailureType.NotFound, 'machine not found', { field: 'machineId' });
      if (!HARDWARE_FROM.includes(m.status))
        throw fail(FailureType.IllegalTransition, `the machine is ${m.status}`, { status: m.status });
      const n = row(input.networkId);
      if (n.status !== 'active') throw fail(FailureType.Refused, `the network is ${n.status}`);
      return { machine: structuredClone(m) as MachineView, network: view(n) };
    },
    machinesOnNetwork: async ({ internalName }) => attached(internalName),
  };

  const hypervisor: NetworkActivities = {
    listHostNetworks: async () =>
      [...world.libvirt.values()].map((n) => ({
        name: n.name,
        uuid: n.uuid,
        bridgeName: n.spec.bridgeName ?? null,
        cidrs: cidrsOf(n.spec),
        active: n.active,
      })),
    checkHostNetwork: async (input) => {
      const [problem] = findConflicts(
        { cidr: input.cidr, bridgeName: input.bridgeName },
        hostNetworks(input.internalName),
      );
      if (problem)
        throw fail(
          problem.kind === 'taken' ? FailureType.NameTaken : FailureType.Validation,
          `${problem.field}: ${problem.message}`,
          {
            field: problem.field,
          },
        );
    },
    defineNetwork: async (input) => {
      if (!ours(input)) {
        world.libvirt.set(input.internalName, {
          name: input.internalName,
          uuid: input.networkId,
          active: false,
          autostart: false,
          spec: structuredClone(input.spec),
          ranges: input.spec.ip?.dhcp
            ? [{ start: input.spec.ip.dhcp.start, end: input.spec.ip.dhcp.end }]
            : [],
          hosts: [...(input.spec.ip?.dhcp?.hosts ?? [])],
        });
      }
      return { bridgeName: input.spec.bridgeName ?? null };
    },
    startNetwork: async (input) => void (mustHave(input).active = true),
    stopNetwork: async (input) => {
      const n = ours(input);
      if (n) n.active = false;
    },
    setNetworkAutostart: async (input) => void (mustHave(input).autostart = input.on),
    undefineNetwork: async (input) => {
      if (ours(input)) world.libvirt.delete(input.internalName);
    },
    getNetworkState: async (input) => {
      const n = ours(input);
      return n
        ? { exists: true, active: n.active, autostart: n.autostart, xml: JSON.stringify(n) }
        : { exists: false, active: false, autostart: false, xml: null };
    },
    addDhcpRange: async (input) => {
      const n = mustHave(input);
      if (!n.ranges.some((r) => r.start === input.range.start && r.end === input.range.end))
        n.ranges.push({ ...input.range });
    },
    removeDhcpRange: async (input) => {
      const n = mustHave(input);
      n.ranges = n.ranges.filter((r) => !(r.start === input.range.start && r.end === input.range.end));
    },
    addDhcpHost: async (input) => {
      const n = mustHave(input);
      if (!n.hosts.some((h) => h.mac === input.host.mac)) n.hosts.push({ ...input.host });
    },
    removeDhcpHost: async (input) => {
      const n = mustHave(input);
      n.hosts = n.hosts.filter((h) => h.mac !== input.host.mac);
    },
    redefineNetwork: async (input) => {
      const n = mustHave(input);
      const previous = structuredClone(n);
      n.spec = structuredClone(input.spec);
      n.ranges = input.spec.ip?.dhcp
        ? [{ start: input.spec.ip.dhcp.start, end: input.spec.ip.dhcp.end }]
        : [];
      n.hosts = [...(input.spec.ip?.dhcp?.hosts ?? [])];
      if (input.active && o.redefineStartFails) {
        world.libvirt.set(n.name, { ...previous, active: true });
        throw fail(FailureType.Refused, 'the new definition did not start; the previous one runs again');
      }
      n.active = input.active;
    },
    restoreNetwork: async (input) => {
      const previous = JSON.parse(input.xml) as StubLibvirtNetwork;
      world.libvirt.set(previous.name, { ...previous, active: input.active });
    },
    networkDomains: async () => structuredClone(o.domains ?? []),
    moveMachineInterface: async (input) => {
      const m = stubs.world.machines.get(input.machineId);
      const previous = world.nics.get(input.machineId) ?? m?.networkName ?? null;
      world.nics.set(input.machineId, input.network);
      const running = (opts.domainState ?? 'shutoff') === 'running';
      return {
        previous,
        live: running && !o.liveMoveUnsupported,
        pendingUntilBoot: running && !!o.liveMoveUnsupported,
      };
    },
  };
  return { control, hypervisor };
}
