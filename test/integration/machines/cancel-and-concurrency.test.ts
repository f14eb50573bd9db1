/**
 * Cancellation in the middle of a create and of a clone (compensations run, nothing is left), one
 * operation per VM at a time (a second one gets a typed conflict naming the running one), and ten
 * creates in parallel on one host.
 */
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { OperationConflictError, startMachineOperation } from '../../../src/client/machine-operations';
import { Machine } from '../../../src/entities/machine';
import { Operation } from '../../../src/entities/operation';
import { NO_HYPERVISOR_TRACE, tracesOf } from '../../support/leftovers';
import {
  createMachine,
  createRequest,
  destroyIfPresent,
  runMachineOperation,
  seedWorld,
  waitFor,
  type World,
} from '../../support/machines';
import { startStack, type Stack } from '../../support/stack';

describe('cancel and concurrency on the real stack', () => {
  let stack: Stack;
  let world: World;
  const machines = () => stack.dataSource.getRepository(Machine);
  const hung = () => new Promise<string>((resolve) => (stack.faults.onHang = resolve));

  beforeAll(async () => {
    stack = await startStack();
    world = await seedWorld(stack.dataSource);
  });
  afterEach(() => stack.faults.clear());
  afterAll(async () => {
    const rows = await machines().findBy({ departmentId: world.department.id });
    for (const r of rows.sort((a, b) => Number(b.linkedClone) - Number(a.linkedClone)))
      await destroyIfPresent(stack, r.id).catch(() => undefined);
    await stack?.stop();
  });

  it.each([
    ['createVolume', 'after'],
    ['defineDomain', 'after'],
  ] as const)(
    'cancelling a create hung at %s (%s) removes everything, the row included',
    async (step, phase) => {
      stack.faults.arm(step, phase, { hang: true });
      const reached = hung();
      const req = createRequest(stack, world, { start: true });
      const { handle, operationId } = await startMachineOperation(
        stack.env.client,
        'createMachine',
        req as never,
      );
      expect(await reached).toBe(`${step}:${phase}`);
      await handle.cancel();
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(await tracesOf(req.machineId, stack)).toEqual({ ...NO_HYPERVISOR_TRACE, row: null });
      const op = await stack.dataSource.getRepository(Operation).findOneByOrFail({ id: operationId });
      expect(op.status).toBe('cancelled');
      expect(op.steps.some((s) => s.status === 'compensated')).toBe(true);
    },
  );

  it('cancelling a clone mid-copy removes the clone and unlocks the source', async () => {
    const source = await createMachine(stack, world);
    stack.faults.arm('createVolume', 'after', { hang: true });
    const reached = hung();
    const machineId = randomUUID();
    const { handle } = await startMachineOperation(stack.env.client, 'cloneMachine', {
      sourceMachineId: source.machineId,
      machineId,
      name: 'to be cancelled',
      linked: false,
      ownerId: world.owner.id,
      actorId: null,
    });
    await reached;
    expect((await machines().findOneByOrFail({ id: source.machineId })).status).toBe('cloning');
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow(WorkflowFailedError);
    expect(await tracesOf(machineId, stack)).toEqual({ ...NO_HYPERVISOR_TRACE, row: null });
    expect(await machines().findOneByOrFail({ id: source.machineId })).toMatchObject({
      status: 'off',
      currentOperationId: null,
    });
  });

  it('refuses a second operation on a VM while one runs, naming the running operation', async () => {
    const vm = await createMachine(stack, world);
    stack.faults.arm('startDomain', 'before', { hang: true });
    const reached = hung();
    const first = await startMachineOperation(stack.env.client, 'powerMachine', {
      machineId: vm.machineId,
      actorId: null,
      action: 'start',
    });
    await reached;
    const second = await startMachineOperation(stack.env.client, 'destroyMachine', {
      machineId: vm.machineId,
      actorId: null,
    }).catch((e) => e);
    expect(second).toBeInstanceOf(OperationConflictError);
    expect(second).toMatchObject({
      resourceKind: 'machine',
      resourceId: vm.machineId,
      runningOperationId: first.operationId,
      runningType: 'power',
    });
    expect((await machines().findOneByOrFail({ id: vm.machineId })).status).toBe('starting');
    await first.handle.cancel();
    await expect(first.handle.result()).rejects.toThrow(WorkflowFailedError);
    expect(await machines().findOneByOrFail({ id: vm.machineId })).toMatchObject({
      status: 'off',
      currentOperationId: null,
    });
  });

  it('runs 10 creates in parallel on one host, all succeeding with distinct resources', async () => {
    const reqs = Array.from({ length: 10 }, (_, i) => createRequest(stack, world, { name: `parallel ${i}` }));
    const results = await Promise.all(
      reqs.map((r) => runMachineOperation(stack.env.client, 'createMachine', r as never)),
    );
    expect(results.map((r) => r.status)).toEqual(Array(10).fill('off'));
    const rows = await Promise.all(reqs.map((r) => machines().findOneByOrFail({ id: r.machineId })));
    expect(new Set(rows.map((r) => r.macAddress)).size).toBe(10);
    for (const r of reqs)
      expect(await tracesOf(r.machineId, stack)).toMatchObject({
        domain: true,
        volume: true,
        vmFilter: true,
      });
    await Promise.all(
      reqs.map((r) =>
        runMachineOperation(stack.env.client, 'destroyMachine', { machineId: r.machineId, actorId: null }),
      ),
    );
    for (const r of reqs)
      expect(await tracesOf(r.machineId, stack)).toEqual({ ...NO_HYPERVISOR_TRACE, row: null });
  });

  it('a create with a taken name fails with a typed error and creates nothing', async () => {
    const first = await createMachine(stack, world, { name: 'twin' });
    const req = createRequest(stack, world, { name: 'twin' });
    const err = await runMachineOperation(stack.env.client, 'createMachine', req as never).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(((err as WorkflowFailedError).cause as { type?: string }).type).toBe('NameTakenError');
    expect(await tracesOf(req.machineId, stack)).toEqual({ ...NO_HYPERVISOR_TRACE, row: null });
    await waitFor(
      async () => (await machines().findOneBy({ id: first.machineId }))?.status === 'off',
      'first machine off',
    );
  });
});
