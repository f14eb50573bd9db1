import { type DataSource, type EntityManager, Not } from 'typeorm';
import { Department } from '../entities/department';
import { Host } from '../entities/host';
import { type MachineStatus } from '../entities/machine-status';
import { Network, type NetworkStatus } from '../entities/network';
import { type NetworkSpec } from '../libvirt/xml';
import {
  designNetwork,
  findConflicts,
  networkSpecOf,
  planNetworkUpdate,
  qosProblem,
  type CurrentNetwork,
  type NetworkDesign,
  type NetworkProblem,
  type UpdatePlan,
  givenFields,
  NETWORK_CHANGE_FIELDS,
} from '../networks/validate';
import {
  FailureType,
  HARDWARE_FROM,
  libvirtNames,
  type ChangeMachineNetworkInput,
  type CreateNetworkInput,
  type UpdateNetworkInput,
} from '../workflows/shared';
import { createDbActivities, type MachineView } from './db';
import { isDuplicate, permanent } from './failures';
import { currentWorkflowId, publishEvent } from './events';
import { designOf, machinesOn, vmflowNetworksOn, type AttachedMachine } from '../networks/queries';
import { assertFrom, heldByAnother, holdAfter, lockExisting, lockRow, releaseHold } from './db-hold';
import { resolveHost } from './db-plans';

/** Dependencies of the network database activities. */
export interface NetworkDbActivityDeps {
  dataSource: DataSource;
}

/** A network as workflows see it. */
export interface NetworkView extends NetworkDesign {
  id: string;
  name: string;
  description: string | null;
  internalName: string;
  /** The kernel bridge (generated, or the host bridge in bridge mode). */
  bridgeName: string;
  hostId: string;
  hostName: string;
  departmentId: string | null;
  qosApplied: boolean;
  status: NetworkStatus;
  lastError: string | null;
  currentOperationId: string | null;
}

/** Everything createNetwork needs, validated and resolved. */
export interface NetworkPlan {
  networkId: string;
  name: string;
  description: string | null;
  internalName: string;
  bridgeName: string;
  hostName: string;
  departmentId: string | null;
  design: NetworkDesign;
  /** What defineNetwork gets (its XML comes from buildNetworkXml). */
  spec: NetworkSpec;
}

/** What updateNetwork applies: the plan of src/networks/validate.ts and the spec of a redefine. */
export interface NetworkChangePlan {
  network: NetworkView;
  plan: UpdatePlan;
  /** The full new spec (used by a redefine). */
  spec: NetworkSpec;
}

/** The fields of a network row an update changes (and its undo puts back). */
export type NetworkFields = Partial<
  Pick<
    Network,
    'cidr' | 'gateway' | 'dhcpStart' | 'dhcpEnd' | 'staticHosts' | 'bandwidth' | 'qosApplied' | 'lastError'
  >
>;

/** Machine statuses in which a guest may be running on its network (a redefine would cut it off). */
const OFF: MachineStatus[] = ['off', 'failed'];

/** Fails with the first problem's type and field; every problem is in the details. */
function failWith(problems: NetworkProblem[]): never {
  const first = problems[0]!;
  const type =
    first.kind === 'taken'
      ? FailureType.NameTaken
      : first.kind === 'unsupported'
        ? FailureType.Unsupported
        : FailureType.Validation;
  const message = problems.map((p) => `${p.field}: ${p.message}`).join('; ');
  throw permanent(type, message, {
    field: first.field,
    errors: problems.map(({ field, message: m }) => ({ field, message: m })),
  });
}

async function loadNetworkView(m: EntityManager, networkId: string): Promise<NetworkView | null> {
  const row = await m.findOne(Network, { where: { id: networkId } });
  if (!row) return null;
  const host = await m.findOne(Host, { where: { id: row.hostId } });
  return {
    ...designOf(row),
    id: row.id,
    name: row.name,
    description: row.description,
    internalName: row.internalName,
    bridgeName: row.bridgeName,
    hostId: row.hostId,
    hostName: host?.name ?? '',
    departmentId: row.departmentId,
    qosApplied: Boolean(row.qosApplied),
    status: row.status,
    lastError: row.lastError,
    currentOperationId: row.currentOperationId,
  };
}

/** The fields of a network that events and API responses carry. */
export function publicNetwork(v: NetworkView): Record<string, unknown> {
  return {
    id: v.id,
    name: v.name,
    description: v.description,
    mode: v.mode,
    cidr: v.cidr,
    gateway: v.gateway,
    dhcpStart: v.dhcpStart,
    dhcpEnd: v.dhcpEnd,
    staticHosts: v.staticHosts,
    bridgeName: v.bridgeName,
    forwardDev: v.forwardDev,
    vlanId: v.vlanId,
    bandwidth: v.bandwidth,
    qosApplied: v.qosApplied,
    departmentId: v.departmentId,
    hostName: v.hostName,
    internalName: v.internalName,
    status: v.status,
    currentOperationId: v.currentOperationId,
  };
}

/** Database activities of the network workflows. Run on the control task queue. Each one is idempotent. */
export function createNetworkDbActivities({ dataSource }: NetworkDbActivityDeps) {
  const tx = <T>(fn: (m: EntityManager) => Promise<T>) => dataSource.transaction(fn);
  const machineDb = createDbActivities({ dataSource });

  /** Writes a `networks:<action>` event in the caller's transaction (routed by the network's department). */
  const networkEvent = (
    m: EntityManager,
    view: NetworkView,
    action: string,
    e: {
      operationId: string;
      actorId: string | null | undefined;
      payload?: Record<string, unknown>;
      /** Tells an undo's event apart from the forward write it reverts (same action and status). */
      undo?: boolean;
    },
  ) =>
    publishEvent(m, {
      resource: 'networks',
      action,
      resourceId: view.id,
      payload: { network: publicNetwork(view), operationId: e.operationId, ...(e.payload ?? {}) },
      actorId: e.actorId ?? null,
      workflowId: currentWorkflowId(),
      departmentId: view.departmentId,
      dedupeKey: `${e.operationId}:networks:${action}:${view.status}${e.undo ? ':undo' : ''}`,
    });

  /** Throws unless a row with this id is absent or this very operation's half-made one. */
  const assertOwnRetry = (row: Network | null, operationId: string) => {
    if (row && !(row.status === 'creating' && row.currentOperationId === operationId))
      throw permanent(FailureType.NameTaken, 'a network with this id already exists', { field: 'networkId' });
  };

  return {
    /**
     * Validates a create request (src/networks/validate.ts), and against the database: the department
     * exists, the name and bridge are free, the subnet overlaps no other vmflow network of the host, the
     * host can shape traffic if bandwidth is asked for. Resolves the host and the libvirt names.
     */
    async planNetwork(input: CreateNetworkInput): Promise<NetworkPlan> {
      const designed = designNetwork({ ...input });
      if (!designed.ok) failWith(designed.problems);
      const { design } = designed;
      const m = dataSource.manager;
      const host = await resolveHost(m, input.hostName);
      if (input.departmentId && !(await m.exists(Department, { where: { id: input.departmentId } })))
        throw permanent(FailureType.NotFound, 'department not found', { field: 'departmentId' });
      const mine = await m.findOne(Network, { where: { id: input.networkId } });
      assertOwnRetry(mine, input.operationId);
      const bridgeName = design.bridgeName ?? libvirtNames.bridge(input.networkId);
      const problems: NetworkProblem[] = [];
      const named = await m.findOne(Network, { where: { name: input.name } });
      if (named && named.id !== input.networkId)
        problems.push({ field: 'name', message: `a network named "${input.name}" exists`, kind: 'taken' });
      problems.push(
        ...findConflicts(
          { cidr: design.cidr, bridgeName },
          await vmflowNetworksOn(m, host.id, input.networkId),
        ),
      );
      const bridgeTaken = await m.findOne(Network, { where: { bridgeName, id: Not(input.networkId) } });
      if (bridgeTaken && !problems.some((p) => p.field === 'bridgeName'))
        problems.push({
          field: 'bridgeName',
          message: `bridge ${bridgeName} is already used by network "${bridgeTaken.name}"`,
          kind: 'taken',
        });
      const qos = qosProblem(design.bandwidth, host.capabilities);
      if (qos) problems.push(qos);
      // Conflicts first (409), then what the host cannot do (422), then the rest (400).
      const order = { taken: 0, unsupported: 1, invalid: 2 } as const;
      if (problems.length) failWith(problems.sort((a, b) => order[a.kind] - order[b.kind]));
      const internalName = libvirtNames.network(input.networkId);
      return {
        networkId: input.networkId,
        name: input.name,
        description: input.description ?? null,
        internalName,
        bridgeName,
        hostName: host.name,
        departmentId: input.departmentId ?? null,
        design,
        spec: networkSpecOf(design, { networkId: input.networkId, internalName, bridgeName }),
      };
    },

    /** Inserts the network row in status `creating`, held by the operation (idempotent by id). */
    async insertNetwork(input: {
      operationId: string;
      actorId: string | null;
      plan: NetworkPlan;
    }): Promise<NetworkView> {
      const { plan } = input;
      const view = await tx(async (m) => {
        const existing = await m.findOne(Network, { where: { id: plan.networkId } });
        assertOwnRetry(existing, input.operationId);
        if (!existing) {
          const host = await m.findOneOrFail(Host, { where: { name: plan.hostName } });
          try {
            await m.insert(Network, {
              id: plan.networkId,
              name: plan.name,
              description: plan.description,
              internalName: plan.internalName,
              bridgeName: plan.bridgeName,
              hostId: host.id,
              mode: plan.design.mode,
              cidr: plan.design.cidr,
              gateway: plan.design.gateway,
              dhcpStart: plan.design.dhcpStart,
              dhcpEnd: plan.design.dhcpEnd,
              staticHosts: plan.design.staticHosts,
              forwardDev: plan.design.forwardDev,
              departmentId: plan.departmentId,
              vlanId: plan.design.vlanId,
              bandwidth: plan.design.bandwidth,
              qosApplied: plan.design.bandwidth !== null,
              status: 'creating',
              lastError: null,
              currentOperationId: input.operationId,
            } as Partial<Network>);
          } catch (err) {
            if (isDuplicate(err))
              throw permanent(
                FailureType.NameTaken,
                `a network named "${plan.name}" or with bridge ${plan.bridgeName} exists`,
                {
                  field: 'name',
                },
              );
            throw err;
          }
        }
        return (await loadNetworkView(m, plan.networkId))!;
      });
      return view;
    },

    /** Loads a network (null when it does not exist). */
    async getNetwork(networkId: string): Promise<NetworkView | null> {
      return loadNetworkView(dataSource.manager, networkId);
    },

    /**
     * Moves a network to a status (only from `from`, when given), records fields alongside and emits
     * `networks:<action>` (default `update`). With `onlyIfHeldBy`, changes nothing unless that operation
     * holds the network (how an undo reverts only its own operation's change). With `requireUnused`,
     * refuses (InUseError, naming them) while machine rows name the network, in the same transaction.
     */
    async setNetworkStatus(input: {
      operationId: string;
      actorId?: string | null;
      networkId: string;
      status: NetworkStatus;
      from?: NetworkStatus[];
      fields?: NetworkFields;
      action?: string;
      release?: boolean;
      onlyIfHeldBy?: string;
      requireUnused?: boolean;
    }): Promise<NetworkView> {
      const view = await tx(async (m) => {
        const row = await lockExisting(m, Network, input.networkId, 'network', 'networkId');
        if (heldByAnother(row, input.onlyIfHeldBy)) return (await loadNetworkView(m, row.id))!;
        assertFrom('network', row.status, input.status, input.from);
        if (input.requireUnused) {
          const attached = await machinesOn(m, row.internalName);
          if (attached.length)
            throw permanent(
              FailureType.InUse,
              `machines are still attached: ${attached.map((a) => a.name).join(', ')}`,
              {
                machines: attached,
              },
            );
        }
        const patch: Partial<Network> = {
          status: input.status,
          ...(input.fields ?? {}),
          ...holdAfter(input.operationId, input.release),
        };
        await m.update(Network, { id: row.id }, patch);
        const view = (await loadNetworkView(m, row.id))!;
        await networkEvent(m, view, input.action ?? 'update', {
          operationId: input.operationId,
          actorId: input.actorId,
          payload: { previousStatus: row.status },
          undo: input.onlyIfHeldBy !== undefined,
        });
        return view;
      });
      return view;
    },

    /**
     * Ends an operation's hold on a network (currentOperationId), if it still has it: the last write of
     * every network operation, so its undos can tell their own changes apart until then.
     */
    async releaseNetwork(input: { networkId: string; operationId: string }): Promise<void> {
      await releaseHold(dataSource, Network, input.networkId, input.operationId);
    },

    /**
     * Deletes the network row (idempotent). With `onlyIfHeldBy` (the undo of a create), only a row this
     * operation still holds. Emits `networks:delete` unless the row was never announced (`creating`).
     */
    async deleteNetworkRecord(input: {
      operationId: string;
      actorId: string | null;
      networkId: string;
      onlyIfHeldBy?: string;
    }): Promise<void> {
      await tx(async (m) => {
        const row = await lockRow(m, Network, input.networkId);
        if (!row) return;
        if (heldByAnother(row, input.onlyIfHeldBy)) return;
        const view = (await loadNetworkView(m, row.id))!;
        await m.delete(Network, { id: row.id });
        if (row.status !== 'creating')
          await networkEvent(m, { ...view, status: 'deleting' }, 'delete', {
            operationId: input.operationId,
            actorId: input.actorId,
          });
      });
    },

    /**
     * Validates an update against the network it changes (src/networks/validate.ts): the merged network
     * valid as a whole, its new subnet clear of the host's other vmflow networks, bandwidth only where the
     * host can shape traffic, and a redefine (subnet, gateway, bandwidth) refused while machines that may
     * be running use the network. Returns the network, what to apply, and the full new spec.
     */
    async planNetworkChange(input: UpdateNetworkInput): Promise<NetworkChangePlan> {
      const m = dataSource.manager;
      const network = await loadNetworkView(m, input.networkId);
      if (!network) throw permanent(FailureType.NotFound, 'network not found', { field: 'networkId' });
      if (network.status !== 'active')
        throw permanent(FailureType.IllegalTransition, `the network is ${network.status}, not active`, {
          status: network.status,
        });
      const current: CurrentNetwork = { ...network, name: network.name };
      const planned = planNetworkUpdate(current, givenFields(input, NETWORK_CHANGE_FIELDS));
      if (!planned.ok) failWith(planned.problems);
      const { plan } = planned;
      const problems: NetworkProblem[] = [];
      if (plan.next.cidr !== network.cidr)
        problems.push(
          ...findConflicts(
            { cidr: plan.next.cidr, bridgeName: null },
            await vmflowNetworksOn(m, network.hostId, network.id),
          ),
        );
      if (plan.redefine.includes('bandwidth')) {
        const host = await m.findOne(Host, { where: { id: network.hostId } });
        const qos = qosProblem(plan.next.bandwidth, host?.capabilities);
        if (qos) problems.push(qos);
      }
      if (problems.length) failWith(problems);
      if (plan.redefine.length) {
        const running = (await machinesOn(m, network.internalName)).filter((a) => !OFF.includes(a.status));
        if (running.length)
          throw permanent(
            FailureType.Refused,
            `changing the ${plan.redefine.join(', ')} restarts the network, which would cut off running machines: ${running
              .map((r) => r.name)
              .join(', ')}; stop them first`,
            { field: plan.redefine[0] === 'bandwidth' ? 'bandwidth' : 'cidr', machines: running },
          );
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

    /**
     * Validates a delete: the network exists (null: nothing to do), no machine row and no department
     * default names it (InUseError naming them).
     */
    async planNetworkDelete(input: { networkId: string }): Promise<NetworkView | null> {
      const m = dataSource.manager;
      const network = await loadNetworkView(m, input.networkId);
      if (!network) return null;
      const machines = await machinesOn(m, network.internalName);
      const departments = await m.find(Department, {
        where: { networkName: network.internalName },
        select: { id: true, name: true },
      });
      if (machines.length || departments.length) {
        const what = [
          ...(machines.length ? [`machines ${machines.map((x) => x.name).join(', ')}`] : []),
          ...(departments.length
            ? [`the default of departments ${departments.map((d) => d.name).join(', ')}`]
            : []),
        ];
        throw permanent(FailureType.InUse, `the network is still in use: ${what.join('; ')}`, {
          machines,
          departments: departments.map((d) => ({ id: d.id, name: d.name })),
        });
      }
      return network;
    },

    /**
     * Validates moving a machine to a network: the machine is off, running or suspended; the network is
     * active, on the machine's host, and shared or of the machine's department.
     */
    async planMachineNetwork(
      input: ChangeMachineNetworkInput,
    ): Promise<{ machine: MachineView; network: NetworkView }> {
      const machine = await machineDb.getMachine(input.machineId);
      if (!machine) throw permanent(FailureType.NotFound, 'machine not found', { field: 'machineId' });
      if (!HARDWARE_FROM.includes(machine.status))
        throw permanent(FailureType.IllegalTransition, `the machine is ${machine.status}`, {
          status: machine.status,
        });
      const network = await loadNetworkView(dataSource.manager, input.networkId);
      if (!network) throw permanent(FailureType.NotFound, 'network not found', { field: 'networkId' });
      if (network.status !== 'active')
        throw permanent(FailureType.Refused, `the network is ${network.status}, not active`, {
          field: 'networkId',
        });
      if (network.hostName !== machine.hostName)
        throw permanent(
          FailureType.Refused,
          `the network is on host ${network.hostName}, the machine on ${machine.hostName}`,
          {
            field: 'networkId',
          },
        );
      if (network.departmentId && network.departmentId !== machine.departmentId)
        throw permanent(
          FailureType.Forbidden,
          "the network belongs to another department than the machine's",
          {
            field: 'networkId',
          },
        );
      return { machine, network };
    },

    /** The machines whose row names a libvirt network (any status). */
    async machinesOnNetwork(input: { internalName: string }): Promise<AttachedMachine[]> {
      return machinesOn(dataSource.manager, input.internalName);
    },
  };
}

export type NetworkDbActivities = ReturnType<typeof createNetworkDbActivities>;
