/**
 * Idempotency: every activity, run twice with the same input, gives the same result and leaves the same
 * state (what a retry after a lost response does). The activities are called directly, outside Temporal,
 * against the real libvirtd and MariaDB.
 */
import { randomUUID } from 'node:crypto';
import { createControlActivities, createHypervisorActivities } from '../../../src/activities';
import { Event } from '../../../src/entities/event';
import { Machine } from '../../../src/entities/machine';
import { Operation } from '../../../src/entities/operation';
import { parseDomainXml } from '../../../src/libvirt/xml';
import { libvirtNames, type CreateMachineInput } from '../../../src/workflows/shared';
import { NO_HYPERVISOR_TRACE, tracesOf } from '../../support/leftovers';
import { seedWorld, type World } from '../../support/machines';
import { startStack, type Stack } from '../../support/stack';

describe('every activity is idempotent', () => {
  let stack: Stack;
  let world: World;
  let hv: ReturnType<typeof createHypervisorActivities>;
  let db: ReturnType<typeof createControlActivities>;

  beforeAll(async () => {
    stack = await startStack({ workers: false });
    world = await seedWorld(stack.dataSource);
    const deps = { libvirt: stack.libvirt, dataSource: stack.dataSource, secrets: stack.secrets };
    hv = createHypervisorActivities(deps);
    db = createControlActivities(deps);
  });
  afterAll(async () => {
    await stack?.stop();
  });

  /** Runs `fn` twice; both results must be equal, and `state` must read the same after each. */
  async function twice<T>(
    what: string,
    fn: () => Promise<T>,
    state: () => Promise<unknown> = async () => null,
  ): Promise<T> {
    const r1 = await fn();
    const s1 = await state();
    const r2 = await fn();
    const s2 = await state();
    expect({ what, result: r2 }).toEqual({ what, result: r1 });
    expect({ what, state: s2 }).toEqual({ what, state: s1 });
    return r1;
  }

  it('runs the whole life of a machine with each activity twice', async () => {
    const machineId = randomUUID();
    const operationId = randomUUID();
    const at = new Date().toISOString();
    const input: CreateMachineInput = {
      operationId,
      actorId: world.owner.id,
      machineId,
      name: 'twice',
      templateId: world.template.id,
      departmentId: world.department.id,
      ownerId: world.owner.id,
      hostName: stack.hostName,
    };
    const rowState = async () => {
      const r = await stack.dataSource.getRepository(Machine).findOneBy({ id: machineId });
      return r && { ...r, updatedAt: null };
    };
    const eventCount = () => stack.dataSource.getRepository(Event).countBy({ resourceId: machineId });
    const opState = () => stack.dataSource.getRepository(Operation).findOneBy({ id: operationId });
    const traces = () => tracesOf(machineId, stack);
    const ref = { internalName: libvirtNames.domain(machineId), machineId };
    const domState = async () => {
      const d = await (await stack.libvirt.get()).lookupDomainByName(ref.internalName);
      const x = parseDomainXml(await d.getXML({ inactive: true }));
      return {
        state: (await d.getState()).state,
        vcpus: x.vcpus,
        memoryMiB: x.memoryMiB,
        maxMemoryMiB: x.maxMemoryMiB,
      };
    };

    await twice(
      'beginOperation',
      () => db.beginOperation({ operationId, type: 'create', machineId, actorId: null, input: {}, at }),
      opState,
    );
    const plan = await twice('planCreate', () => db.planCreate(input));
    await twice(
      'recordStep',
      () => db.recordStep({ operationId, machineId, step: 'validate', status: 'completed', at }),
      async () => [await opState(), await eventCount()],
    );
    await twice(
      'insertMachine',
      () => db.insertMachine({ ...input, hostName: plan.host.name, plan }).then((v) => ({ ...v })),
      async () => [await rowState(), await eventCount()],
    );
    const volume = { pool: plan.host.storagePool, name: libvirtNames.volume(machineId) };
    const { path } = await twice(
      'createVolume',
      () => hv.createVolume({ ...volume, capacityGiB: 1 }),
      traces,
    );
    await twice(
      'ensureDepartmentFilter',
      () => hv.ensureDepartmentFilter({ name: plan.departmentFilterName }),
      traces,
    );
    await twice(
      'ensureVmFilter',
      () => hv.ensureVmFilter({ name: plan.filterName, departmentFilter: plan.departmentFilterName }),
      traces,
    );
    const domainPlan = {
      ...ref,
      operationId,
      title: 'twice',
      cpu: 1,
      memoryMiB: 64,
      diskPath: path,
      networkName: plan.networkName,
      filterName: plan.filterName,
    };
    await twice('defineDomain', () => hv.defineDomain(domainPlan), traces);
    await twice(
      'setMachineStatus',
      () =>
        db
          .setMachineStatus({ operationId, machineId, status: 'off', from: ['creating'], release: true })
          .then((v) => v.status),
      async () => [await rowState(), await eventCount()],
    );
    await twice('startDomain', () => hv.startDomain(ref), domState);
    await twice('suspendDomain', () => hv.suspendDomain(ref), domState);
    await twice('resumeDomain', () => hv.resumeDomain(ref), domState);
    await twice(
      'configureDomainHardware',
      () => hv.configureDomainHardware({ ...ref, cpu: 2, memoryMiB: 96 }),
      domState,
    );
    await twice('applyLiveHardware', () => hv.applyLiveHardware({ ...ref, cpu: 2, memoryMiB: 96 }), domState);
    const before = await hv.getDomainHardware(ref);
    await twice(
      'restoreDomainHardware',
      () => hv.restoreDomainHardware({ ...ref, prev: { ...before, config: { ...before.config, cpu: 1 } } }),
      domState,
    );
    await twice(
      'growDisk',
      () => hv.growDisk({ ...volume, internalName: ref.internalName, capacityGiB: 2 }),
      () => hv.getVolumeCapacity(volume),
    );
    await twice('forceOffDomain', () => hv.forceOffDomain(ref), domState);
    await twice('undefineDomain', () => hv.undefineDomain(ref), traces);
    await twice('deleteVolume', () => hv.deleteVolume(volume), traces);
    await twice('removeVmFilter', () => hv.removeVmFilter({ name: plan.filterName }), traces);
    await twice(
      'deleteMachine',
      () => db.deleteMachine({ operationId, actorId: null, machineId }),
      async () => [await rowState(), await eventCount()],
    );
    await twice(
      'finishOperation',
      () => db.finishOperation({ operationId, status: 'succeeded', at }),
      opState,
    );
    expect(await traces()).toEqual({ ...NO_HYPERVISOR_TRACE, row: null });
  });
});
