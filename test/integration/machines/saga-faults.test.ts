/**
 * Failure at every step of every saga, before and after the step's side effect (the fault injector in
 * the activity deps): afterwards nothing is left on the hypervisor, and the database holds only what the
 * contract says (a failed create/clone keeps its `failed` row with the reason; a failed update leaves the
 * machine exactly as it was; a failed destroy leaves a `failed` row that a second destroy finishes).
 */
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { type FaultPhase } from '../../../src/activities/faults';
import { Machine } from '../../../src/entities/machine';
import { parseDomainXml } from '../../../src/libvirt/xml';
import { libvirtNames } from '../../../src/workflows/shared';
import { NO_HYPERVISOR_TRACE, tracesOf } from '../../support/leftovers';
import {
  createMachine,
  createRequest,
  destroyIfPresent,
  domainOf,
  runMachineOperation,
  seedWorld,
  type World,
} from '../../support/machines';
import { startStack, TEST_POOL, type Stack } from '../../support/stack';

const PHASES: FaultPhase[] = ['before', 'after'];
const cases = (steps: string[]) => steps.flatMap((s) => PHASES.map((p) => [s, p] as const));

describe('saga faults on the real stack', () => {
  let stack: Stack;
  let world: World;
  const machines = () => stack.dataSource.getRepository(Machine);

  beforeAll(async () => {
    stack = await startStack();
    world = await seedWorld(stack.dataSource);
  });
  afterEach(() => stack.faults.clear());
  afterAll(async () => {
    const rows = await machines().findBy({ departmentId: world.department.id });
    for (const r of rows.filter((r) => r.linkedClone))
      await destroyIfPresent(stack, r.id).catch(() => undefined);
    for (const r of rows.filter((r) => !r.linkedClone))
      await destroyIfPresent(stack, r.id).catch(() => undefined);
    await stack?.stop();
  });

  describe('createMachine (with start)', () => {
    const steps = [
      'planCreate',
      'insertMachine',
      'createVolume',
      'ensureDepartmentFilter',
      'ensureVmFilter',
      'defineDomain',
      'startDomain',
      'setMachineStatus:running',
    ];
    it.each(cases(steps))('fails at %s (%s): nothing is left but a failed row', async (step, phase) => {
      stack.faults.arm(step, phase);
      const req = createRequest(stack, world, { start: true });
      await expect(runMachineOperation(stack.env.client, 'createMachine', req as never)).rejects.toThrow(
        WorkflowFailedError,
      );
      const traces = await tracesOf(req.machineId, stack);
      expect({ ...traces, row: undefined }).toEqual({ ...NO_HYPERVISOR_TRACE, row: undefined });
      const rowExpected = step !== 'planCreate' && !(step === 'insertMachine' && phase === 'before');
      if (rowExpected) {
        expect(traces.row).toMatchObject({ status: 'failed', currentOperationId: null });
        expect(traces.row!.lastError).toContain(`injected fault at ${step}:${phase}`);
        await runMachineOperation(stack.env.client, 'destroyMachine', {
          machineId: req.machineId,
          actorId: null,
        });
      }
      expect((await tracesOf(req.machineId, stack)).row).toBeNull();
    });
  });

  describe('cloneMachine', () => {
    const steps = [
      'planClone',
      'setMachineStatus:cloning',
      'insertMachine',
      'createVolume',
      'ensureDepartmentFilter',
      'ensureVmFilter',
      'defineDomain',
      'setMachineStatus:off',
    ];
    let source: Awaited<ReturnType<typeof createMachine>>;
    beforeAll(async () => {
      source = await createMachine(stack, world);
    });
    it.each(
      cases(steps).flatMap(
        ([s, p]) =>
          [
            [s, p, false],
            [s, p, true],
          ] as const,
      ),
    )(
      'fails at %s (%s, linked=%s): the clone leaves nothing, the source is off and intact',
      async (step, phase, linked) => {
        stack.faults.arm(step, phase);
        const machineId = randomUUID();
        await expect(
          runMachineOperation(stack.env.client, 'cloneMachine', {
            sourceMachineId: source.machineId,
            machineId,
            name: `clone ${machineId.slice(0, 6)}`,
            linked,
            ownerId: world.owner.id,
            actorId: null,
          }),
        ).rejects.toThrow(WorkflowFailedError);
        const traces = await tracesOf(machineId, stack);
        expect({ ...traces, row: undefined }).toEqual({ ...NO_HYPERVISOR_TRACE, row: undefined });
        if (traces.row) {
          expect(traces.row.status).toBe('failed');
          await runMachineOperation(stack.env.client, 'destroyMachine', { machineId, actorId: null });
        }
        expect(await machines().findOneByOrFail({ id: source.machineId })).toMatchObject({
          status: 'off',
          currentOperationId: null,
        });
        expect(await tracesOf(source.machineId, stack)).toMatchObject({
          domain: true,
          volume: true,
          vmFilter: true,
        });
      },
    );
  });

  describe('updateMachineHardware', () => {
    const steps = [
      'planHardware',
      'setMachineStatus:updating',
      'configureDomainHardware',
      'growDisk',
      'setMachineStatus:off',
    ];
    let vm: Awaited<ReturnType<typeof createMachine>>;
    beforeAll(async () => {
      vm = await createMachine(stack, world);
    });
    it.each(cases(steps))('fails at %s (%s): the machine is exactly as before', async (step, phase) => {
      const dom = await domainOf(stack, vm.machineId);
      const pool = await (await stack.libvirt.get()).lookupPoolByName(TEST_POOL);
      const vol = await pool.lookupVolumeByName(libvirtNames.volume(vm.machineId));
      const before = {
        xml: parseDomainXml(await dom.getXML({ inactive: true })),
        row: await machines().findOneByOrFail({ id: vm.machineId }),
        capacity: (await vol.getInfo()).capacity,
      };
      stack.faults.arm(step, phase);
      const grow = step === 'growDisk' || step === 'setMachineStatus:off';
      await expect(
        runMachineOperation(stack.env.client, 'updateMachineHardware', {
          machineId: vm.machineId,
          actorId: null,
          cpu: before.xml.vcpus + 1,
          memoryMiB: before.xml.memoryMiB + 32,
          ...(grow ? { storageGiB: before.row.storageGiB + 1 } : {}),
        }),
      ).rejects.toThrow(WorkflowFailedError);
      const after = parseDomainXml(await dom.getXML({ inactive: true }));
      expect({
        vcpus: after.vcpus,
        maxVcpus: after.maxVcpus,
        memoryMiB: after.memoryMiB,
        maxMemoryMiB: after.maxMemoryMiB,
      }).toEqual({
        vcpus: before.xml.vcpus,
        maxVcpus: before.xml.maxVcpus,
        memoryMiB: before.xml.memoryMiB,
        maxMemoryMiB: before.xml.maxMemoryMiB,
      });
      const row = await machines().findOneByOrFail({ id: vm.machineId });
      expect({ ...row, updatedAt: null, storageGiB: null }).toEqual({
        ...before.row,
        updatedAt: null,
        storageGiB: null,
      });
      // A disk that grew cannot shrink back: the row then records its real size.
      const capacity = (await vol.getInfo()).capacity;
      expect(row.storageGiB * 1024 ** 3).toBe(capacity);
      if (!(step === 'growDisk' && phase === 'after') && step !== 'setMachineStatus:off')
        expect(capacity).toBe(before.capacity);
    });
  });

  describe('updateMachineHardware (running machine)', () => {
    const steps = ['configureDomainHardware', 'applyLiveHardware', 'setMachineStatus:running'];
    let vm: Awaited<ReturnType<typeof createMachine>>;
    beforeAll(async () => {
      vm = await createMachine(stack, world, { start: true });
    });
    it.each(cases(steps))('fails at %s (%s): config and row are exactly as before', async (step, phase) => {
      const dom = await domainOf(stack, vm.machineId);
      const before = {
        xml: parseDomainXml(await dom.getXML({ inactive: true })),
        row: await machines().findOneByOrFail({ id: vm.machineId }),
      };
      stack.faults.arm(step, phase);
      await expect(
        runMachineOperation(stack.env.client, 'updateMachineHardware', {
          machineId: vm.machineId,
          actorId: null,
          memoryMiB: before.xml.memoryMiB + 32,
        }),
      ).rejects.toThrow(WorkflowFailedError);
      const after = parseDomainXml(await dom.getXML({ inactive: true }));
      expect({ memoryMiB: after.memoryMiB, maxMemoryMiB: after.maxMemoryMiB, vcpus: after.vcpus }).toEqual({
        memoryMiB: before.xml.memoryMiB,
        maxMemoryMiB: before.xml.maxMemoryMiB,
        vcpus: before.xml.vcpus,
      });
      expect((await dom.getState()).state).toBe('running');
      const row = await machines().findOneByOrFail({ id: vm.machineId });
      expect({ ...row, updatedAt: null }).toEqual({ ...before.row, updatedAt: null });
    });
  });

  describe('destroyMachine (running machine)', () => {
    const steps = [
      'setMachineStatus:destroying',
      'forceOffDomain',
      'undefineDomain',
      'deleteVolume',
      'removeVmFilter',
      'deleteMachine',
    ];
    it.each(cases(steps))('fails at %s (%s): a second destroy finishes the job', async (step, phase) => {
      const vm = await createMachine(stack, world, { start: true });
      stack.faults.arm(step, phase);
      await expect(
        runMachineOperation(stack.env.client, 'destroyMachine', {
          machineId: vm.machineId,
          actorId: null,
          shutdownTimeoutSec: 1,
        }),
      ).rejects.toThrow(WorkflowFailedError);
      const row = await machines().findOneBy({ id: vm.machineId });
      if (row && step !== 'setMachineStatus:destroying') expect(row.status).toBe('failed');
      await runMachineOperation(stack.env.client, 'destroyMachine', {
        machineId: vm.machineId,
        actorId: null,
        shutdownTimeoutSec: 1,
      });
      expect(await tracesOf(vm.machineId, stack)).toEqual({ ...NO_HYPERVISOR_TRACE, row: null });
    });
  });

  describe('powerMachine start', () => {
    const steps = ['setMachineStatus:starting', 'startDomain', 'setMachineStatus:running'];
    let vm: Awaited<ReturnType<typeof createMachine>>;
    beforeAll(async () => {
      vm = await createMachine(stack, world);
    });
    it.each(cases(steps))('fails at %s (%s): the machine is off again', async (step, phase) => {
      stack.faults.arm(step, phase);
      await expect(
        runMachineOperation(stack.env.client, 'powerMachine', {
          machineId: vm.machineId,
          actorId: null,
          action: 'start',
        }),
      ).rejects.toThrow(WorkflowFailedError);
      expect((await (await domainOf(stack, vm.machineId)).getState()).state).toBe('shutoff');
      expect(await machines().findOneByOrFail({ id: vm.machineId })).toMatchObject({
        status: 'off',
        currentOperationId: null,
      });
    });
  });
});
