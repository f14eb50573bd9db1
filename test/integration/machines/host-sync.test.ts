/**
 * State from the hypervisor: what happens outside vmflow (a VM started, paused or killed with virsh, a
 * guest that powers itself off) reaches the machine's status and emits the matching event; a worker
 * that starts reconciles statuses that drifted while nobody listened.
 */
import { Host } from '../../../src/entities/host';
import { Machine } from '../../../src/entities/machine';
import { startHypervisorWatch } from '../../../src/worker/host-sync';
import {
  createMachine,
  destroyIfPresent,
  domainOf,
  eventsOf,
  seedWorld,
  waitFor,
  type World,
} from '../../support/machines';
import { startStack, type Stack } from '../../support/stack';

describe('hypervisor events and reconciliation', () => {
  let stack: Stack;
  let world: World;
  let hostId: string;
  const made: string[] = [];
  const statusOf = async (id: string) =>
    (await stack.dataSource.getRepository(Machine).findOneByOrFail({ id })).status;

  beforeAll(async () => {
    stack = await startStack();
    world = await seedWorld(stack.dataSource);
    hostId = (await stack.dataSource.getRepository(Host).findOneByOrFail({ name: stack.hostName })).id;
  });
  afterAll(async () => {
    for (const id of made) await destroyIfPresent(stack, id).catch(() => undefined);
    await stack?.stop();
  });

  it('follows a VM started, paused, resumed and killed outside vmflow', async () => {
    const vm = await createMachine(stack, world);
    made.push(vm.machineId);
    const watch = await startHypervisorWatch(stack, hostId);
    try {
      const dom = await domainOf(stack, vm.machineId);
      await dom.start();
      await waitFor(async () => (await statusOf(vm.machineId)) === 'running', 'status running');
      await dom.suspend();
      await waitFor(async () => (await statusOf(vm.machineId)) === 'suspended', 'status suspended');
      await dom.resume();
      await waitFor(async () => (await statusOf(vm.machineId)) === 'running', 'status running again');
      await dom.destroy();
      await waitFor(async () => (await statusOf(vm.machineId)) === 'off', 'status off');
      const actions = (await eventsOf(stack.dataSource, vm.machineId)).map((e) => e.action);
      for (const a of ['power_on', 'suspend', 'resume', 'power_off']) expect(actions).toContain(a);
    } finally {
      await watch.stop();
    }
  });

  it('reconciles a status that drifted while no worker listened, and leaves machines in an operation alone', async () => {
    const vm = await createMachine(stack, world);
    made.push(vm.machineId);
    const dom = await domainOf(stack, vm.machineId);
    await dom.start();
    expect(await statusOf(vm.machineId)).toBe('off');
    const watch = await startHypervisorWatch(stack, hostId);
    try {
      expect(await statusOf(vm.machineId)).toBe('running');
      // A machine an operation holds is the operation's to change.
      await stack.dataSource
        .getRepository(Machine)
        .update({ id: vm.machineId }, { currentOperationId: vm.machineId });
      await dom.destroy();
      expect(await watch.reconcile()).toBe(0);
      expect(await statusOf(vm.machineId)).toBe('running');
      await stack.dataSource
        .getRepository(Machine)
        .update({ id: vm.machineId }, { currentOperationId: null });
      await watch.reconcile();
      expect(await statusOf(vm.machineId)).toBe('off');
    } finally {
      await watch.stop();
    }
  });
});
