/**
 * Failure at every step of every network workflow, before and after the step's side effect (the fault
 * injector in the activity deps), on the real stack: afterwards libvirt and the database are as they were
 * before the operation (a failed create leaves no libvirt network, bridge, dnsmasq or row; a failed update
 * leaves the live and persistent definitions and the row exactly as they were; a failed move leaves the
 * NIC where it was), and a failed delete is finished by deleting again, leaving nothing.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { type FaultPhase } from '../../../src/activities/faults';
import { Machine } from '../../../src/entities/machine';
import { Network } from '../../../src/entities/network';
import { parseDomainXml } from '../../../src/libvirt/xml';
import { libvirtNames, networkWorkflowId } from '../../../src/workflows/shared';
import {
  createMachine,
  destroyIfPresent,
  domainOf,
  runMachineOperation,
  seedWorld,
  waitFor,
  type World,
} from '../../support/machines';
import {
  NO_NETWORK_TRACE,
  definitionsOf,
  networkTraces,
  rangesOf,
  removeNetwork,
  runNetworkOperation,
  subnets,
} from '../../support/networks';
import { startStack, type Stack } from '../../support/stack';
import { startKeyedWorkflow } from '../../../src/client/machine-operations';

const PHASES: FaultPhase[] = ['before', 'after'];
const cases = (steps: string[]) => steps.flatMap((s) => PHASES.map((p) => [s, p] as const));
const nextSubnet = subnets(254, 10);

describe('network saga faults on the real stack', () => {
  let stack: Stack;
  let world: World;
  const made: string[] = [];
  const rows = () => stack.dataSource.getRepository(Network);

  const create = async () => {
    const s = await nextSubnet(stack);
    const networkId = randomUUID();
    made.push(networkId);
    await runNetworkOperation(stack.env.client, 'createNetwork', {
      networkId,
      name: `fault ${networkId.slice(0, 8)}`,
      mode: 'nat',
      cidr: s.cidr,
      dhcpStart: s.dhcpStart,
      dhcpEnd: s.dhcpEnd,
      staticHosts: [{ mac: '52:54:00:25:40:01', ip: s.at(10), name: 'old' }],
      hostName: stack.hostName,
    });
    return { networkId, s };
  };

  /** Everything an update may change: both definitions (all ranges, leases) and the row. */
  const snapshot = async (networkId: string) => {
    const d = await definitionsOf(stack, networkId);
    const row = await rows().findOneByOrFail({ id: networkId });
    return {
      live: d.live,
      config: d.config,
      liveRanges: rangesOf(d.liveXml ?? ''),
      configRanges: rangesOf(d.configXml),
      row: { ...row, updatedAt: null },
    };
  };

  beforeAll(async () => {
    stack = await startStack();
    world = await seedWorld(stack.dataSource);
  });
  afterEach(() => stack.faults.clear());
  afterAll(async () => {
    for (const m of await stack.dataSource
      .getRepository(Machine)
      .findBy({ departmentId: world.department.id }))
      await destroyIfPresent(stack, m.id).catch(() => undefined);
    for (const id of made) await removeNetwork(stack, id).catch(() => undefined);
    await stack?.stop();
  });

  describe('createNetwork', () => {
    const steps = [
      'planNetwork',
      'checkHostNetwork',
      'insertNetwork',
      'defineNetwork',
      'startNetwork',
      'setNetworkAutostart',
      'setNetworkStatus:active',
    ];
    it.each(cases(steps))(
      'fails at %s (%s): no libvirt network, bridge, dnsmasq or row',
      async (step, phase) => {
        stack.faults.arm(step, phase);
        const s = await nextSubnet(stack);
        const networkId = randomUUID();
        made.push(networkId);
        await expect(
          runNetworkOperation(stack.env.client, 'createNetwork', {
            networkId,
            name: `cf ${networkId.slice(0, 8)}`,
            mode: 'nat',
            cidr: s.cidr,
            dhcpStart: s.dhcpStart,
            dhcpEnd: s.dhcpEnd,
            hostName: stack.hostName,
          }),
        ).rejects.toThrow(WorkflowFailedError);
        expect(await networkTraces(stack, networkId)).toEqual({ ...NO_NETWORK_TRACE, row: null });
      },
    );

    it('cancelled while the network starts: nothing is left', async () => {
      stack.faults.arm('startNetwork', 'after', { hang: true });
      const hung = new Promise<void>((resolve) => (stack.faults.onHang = () => resolve()));
      const s = await nextSubnet(stack);
      const networkId = randomUUID();
      made.push(networkId);
      const handle = await startKeyedWorkflow(stack.env.client, {
        workflow: 'createNetwork',
        workflowId: networkWorkflowId(networkId),
        input: {
          operationId: randomUUID(),
          actorId: null,
          networkId,
          name: `cc ${networkId.slice(0, 8)}`,
          mode: 'nat',
          cidr: s.cidr,
          hostName: stack.hostName,
        } as never,
        type: 'create_network',
        resourceId: networkId,
        resourceKind: 'network',
      });
      await hung;
      expect((await networkTraces(stack, networkId)).active).toBe(true);
      await handle.cancel();
      await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
      expect(await networkTraces(stack, networkId)).toEqual({ ...NO_NETWORK_TRACE, row: null });
    });
  });

  describe('updateNetwork (live edits)', () => {
    const steps = [
      'planNetworkChange',
      'setNetworkStatus:updating',
      'addDhcpRange',
      'removeDhcpRange',
      'removeDhcpHost',
      'addDhcpHost',
      'setNetworkStatus:active',
    ];
    let net: Awaited<ReturnType<typeof create>>;
    beforeAll(async () => {
      net = await create();
    });
    it.each(cases(steps))(
      'fails at %s (%s): live and persistent XML and row exactly as before',
      async (step, phase) => {
        const before = await snapshot(net.networkId);
        stack.faults.arm(step, phase);
        await expect(
          runNetworkOperation(stack.env.client, 'updateNetwork', {
            networkId: net.networkId,
            dhcpStart: net.s.at(20),
            dhcpEnd: net.s.at(30),
            staticHosts: [{ mac: '52:54:00:25:40:01', ip: net.s.at(11), name: 'new' }],
          }),
        ).rejects.toThrow(WorkflowFailedError);
        expect(await snapshot(net.networkId)).toEqual(before);
        expect(await networkTraces(stack, net.networkId)).toMatchObject({ active: true, bridge: true });
      },
    );
  });

  describe('updateNetwork (redefine)', () => {
    const steps = [
      'planNetworkChange',
      'checkHostNetwork',
      'setNetworkStatus:updating',
      'redefineNetwork',
      'setNetworkStatus:active',
    ];
    let net: Awaited<ReturnType<typeof create>>;
    beforeAll(async () => {
      net = await create();
    });
    it.each([...cases(steps), ['restartNetwork', 'before'] as const])(
      'fails at %s (%s): the old definition runs, the row is as before',
      async (step, phase) => {
        const before = await snapshot(net.networkId);
        stack.faults.arm(step, phase);
        const t = await nextSubnet(stack);
        await expect(
          runNetworkOperation(stack.env.client, 'updateNetwork', {
            networkId: net.networkId,
            cidr: t.cidr,
            dhcpStart: t.dhcpStart,
            dhcpEnd: t.dhcpEnd,
            staticHosts: [],
          }),
        ).rejects.toThrow(WorkflowFailedError);
        expect(await snapshot(net.networkId)).toEqual(before);
        expect(await networkTraces(stack, net.networkId)).toMatchObject({ active: true, bridge: true });
      },
    );
  });

  describe('deleteNetwork', () => {
    const steps = [
      'planNetworkDelete',
      'setNetworkStatus:deleting',
      'stopNetwork',
      'undefineNetwork',
      'deleteNetworkRecord',
    ];
    it.each(cases(steps))(
      'fails at %s (%s): untouched if nothing was removed yet; deleting again finishes',
      async (step, phase) => {
        const { networkId } = await create();
        stack.faults.arm(step, phase);
        await expect(runNetworkOperation(stack.env.client, 'deleteNetwork', { networkId })).rejects.toThrow(
          WorkflowFailedError,
        );
        const row = await rows().findOneBy({ id: networkId });
        const removing = !(step === 'planNetworkDelete' || step === 'setNetworkStatus:deleting');
        if (!removing) {
          expect(row).toMatchObject({ status: 'active', currentOperationId: null, lastError: null });
          expect(await networkTraces(stack, networkId)).toMatchObject({
            libvirt: true,
            active: true,
            bridge: true,
          });
        } else if (row) {
          expect(row).toMatchObject({ status: 'failed', currentOperationId: null });
          expect(row.lastError).toContain(`injected fault at ${step}:${phase}`);
        }
        await runNetworkOperation(stack.env.client, 'deleteNetwork', { networkId });
        expect(await networkTraces(stack, networkId)).toEqual({ ...NO_NETWORK_TRACE, row: null });
      },
    );
  });

  describe('changeMachineNetwork (running machine)', () => {
    const steps = [
      'planMachineNetwork',
      'setMachineStatus:updating',
      'moveMachineInterface',
      'setMachineStatus:running',
    ];
    let a: Awaited<ReturnType<typeof create>>;
    let b: Awaited<ReturnType<typeof create>>;
    let vm: Awaited<ReturnType<typeof createMachine>>;
    beforeAll(async () => {
      a = await create();
      b = await create();
      vm = await createMachine(stack, world, { networkName: libvirtNames.network(a.networkId), start: true });
    });
    it.each(cases(steps))(
      'fails at %s (%s): the NIC (live and config) and the row are as before',
      async (step, phase) => {
        const dom = await domainOf(stack, vm.machineId);
        const nic = async () => ({
          live: parseDomainXml(await dom.getXML()).interfaces,
          config: parseDomainXml(await dom.getXML({ inactive: true })).interfaces,
          bridge: (await dom.getXML()).match(/<source network='[^']+'[^>]*bridge='([^']+)'/)?.[1],
        });
        const before = {
          nic: await nic(),
          row: {
            ...(await stack.dataSource.getRepository(Machine).findOneByOrFail({ id: vm.machineId })),
            updatedAt: null,
          },
        };
        expect(before.nic.bridge).toBe(libvirtNames.bridge(a.networkId));
        stack.faults.arm(step, phase);
        await expect(
          runMachineOperation(stack.env.client, 'changeMachineNetwork', {
            machineId: vm.machineId,
            networkId: b.networkId,
            actorId: null,
          }),
        ).rejects.toThrow(WorkflowFailedError);
        expect(await nic()).toEqual(before.nic);
        const row = await waitFor(async () => {
          const r = await stack.dataSource.getRepository(Machine).findOneByOrFail({ id: vm.machineId });
          return r.currentOperationId === null && r;
        }, 'the machine to be released');
        expect({ ...row, updatedAt: null }).toEqual(before.row);
      },
    );
  });
});
