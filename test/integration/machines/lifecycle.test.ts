/**
 * Each machine workflow's happy path on the real stack, with libvirt's and the database's state checked
 * afterwards: create, power (every action), hardware update (off and live), clone (full and linked),
 * destroy.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { WorkflowFailedError } from '@temporalio/client';
import { Machine } from '../../../src/entities/machine';
import { Operation } from '../../../src/entities/operation';
import { parseDomainXml } from '../../../src/libvirt/xml';
import { libvirtNames } from '../../../src/workflows/shared';
import { NO_HYPERVISOR_TRACE, tracesOf } from '../../support/leftovers';
import {
  createMachine,
  destroyIfPresent,
  domainOf,
  eventsOf,
  runMachineOperation,
  seedWorld,
  type World,
} from '../../support/machines';
import { startStack, TEST_POOL, type Stack } from '../../support/stack';

describe('machine lifecycle on the real stack', () => {
  let stack: Stack;
  let world: World;
  const made: string[] = [];
  const machines = () => stack.dataSource.getRepository(Machine);
  const power = (machineId: string, action: string, extra: Record<string, unknown> = {}) =>
    runMachineOperation(stack.env.client, 'powerMachine', {
      machineId,
      actorId: world.owner.id,
      action,
      ...extra,
    } as never);

  beforeAll(async () => {
    stack = await startStack();
    world = await seedWorld(stack.dataSource);
  });
  afterAll(async () => {
    for (const id of made.reverse()) await destroyIfPresent(stack, id).catch(() => undefined);
    await stack?.stop();
  });

  it('creates a machine: volume, filters, domain with escaped title, row off with UUID and MAC, events', async () => {
    const name = `web <01> & "quotes" ]]> 'x'`;
    const vm = await createMachine(stack, world, { name });
    made.push(vm.machineId);
    expect(vm.result.status).toBe('off');
    const row = await machines().findOneByOrFail({ id: vm.machineId });
    expect(row).toMatchObject({
      status: 'off',
      name,
      cpu: 1,
      memoryMiB: 64,
      storageGiB: 1,
      currentOperationId: null,
    });
    expect(row.libvirtUuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(row.macAddress).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    const dom = await domainOf(stack, vm.machineId);
    expect(await dom.getUUID()).toBe(row.libvirtUuid);
    const xml = parseDomainXml(await dom.getXML({ inactive: true }));
    expect(xml.title).toBe(name);
    expect(xml.metadata.machineId).toBe(vm.machineId);
    expect(xml.interfaces[0]).toMatchObject({
      mac: row.macAddress,
      filterref: { filter: libvirtNames.vmFilter(vm.machineId) },
    });
    expect(xml.graphics).toMatchObject({ type: 'vnc', listen: '127.0.0.1' });
    expect(await dom.isActive()).toBe(false);
    const traces = await tracesOf(vm.machineId, stack);
    expect(traces).toMatchObject({ domain: true, volume: true, vmFilter: true });
    const conn = await stack.libvirt.get();
    const vmFilterXml = await (await conn.lookupNWFilterByName(libvirtNames.vmFilter(vm.machineId))).getXML();
    expect(vmFilterXml).toContain(`filter='${world.department.filterName}'`);
    const op = await stack.dataSource
      .getRepository(Operation)
      .findOneByOrFail({ machineId: vm.machineId, type: 'create' });
    expect(op.status).toBe('succeeded');
    expect(op.steps.filter((s) => s.status === 'completed').map((s) => s.name)).toEqual([
      'validate',
      'record',
      'createVolume',
      'ensureDepartmentFilter',
      'createVmFilter',
      'defineDomain',
      'finalize',
    ]);
    const actions = (await eventsOf(stack.dataSource, vm.machineId)).map((e) => `${e.resource}:${e.action}`);
    expect(actions[0]).toBe('vms:progress');
    expect(actions).toContain('vms:create');
    expect(actions.at(-1)).toBe('vms:progress');
  });

  it('creates and starts a machine, then runs every power action', async () => {
    const vm = await createMachine(stack, world, { start: true });
    made.push(vm.machineId);
    const dom = await domainOf(stack, vm.machineId);
    expect((await dom.getState()).state).toBe('running');
    expect((await machines().findOneByOrFail({ id: vm.machineId })).status).toBe('running');

    await power(vm.machineId, 'suspend');
    expect((await dom.getState()).state).toBe('paused');
    expect((await machines().findOneByOrFail({ id: vm.machineId })).status).toBe('suspended');
    await power(vm.machineId, 'resume');
    expect((await dom.getState()).state).toBe('running');
    await power(vm.machineId, 'reboot');
    await power(vm.machineId, 'reset');
    expect((await dom.getState()).state).toBe('running');
    // No OS answers ACPI here: a graceful shutdown times out, and says so; the machine stays running.
    const shutdown = await power(vm.machineId, 'shutdown', { shutdownTimeoutSec: 2 });
    expect(shutdown).toMatchObject({ outcome: 'timeout', status: 'running' });
    expect((await machines().findOneByOrFail({ id: vm.machineId })).status).toBe('running');
    await power(vm.machineId, 'poweroff');
    expect((await dom.getState()).state).toBe('shutoff');
    expect((await machines().findOneByOrFail({ id: vm.machineId })).status).toBe('off');
    await power(vm.machineId, 'start');
    expect((await dom.getState()).state).toBe('running');
    const actions = (await eventsOf(stack.dataSource, vm.machineId)).map((e) => e.action);
    for (const a of ['power_on', 'suspend', 'resume', 'reboot', 'reset', 'power_off'])
      expect(actions).toContain(a);

    // An action the status does not allow is refused and touches nothing.
    await expect(power(vm.machineId, 'resume')).rejects.toBeInstanceOf(WorkflowFailedError);
    expect((await dom.getState()).state).toBe('running');
    await power(vm.machineId, 'poweroff');
  });

  it('updates hardware while off (config) and while running (live within the maximum, pending beyond)', async () => {
    const vm = await createMachine(stack, world);
    made.push(vm.machineId);
    await runMachineOperation(stack.env.client, 'updateMachineHardware', {
      machineId: vm.machineId,
      actorId: world.owner.id,
      cpu: 2,
      memoryMiB: 96,
      storageGiB: 2,
    });
    const dom = await domainOf(stack, vm.machineId);
    let cfg = parseDomainXml(await dom.getXML({ inactive: true }));
    expect(cfg).toMatchObject({ vcpus: 2, memoryMiB: 96 });
    const pool = await (await stack.libvirt.get()).lookupPoolByName(TEST_POOL);
    const vol = await pool.lookupVolumeByName(libvirtNames.volume(vm.machineId));
    expect((await vol.getInfo()).capacity).toBe(2 * 1024 ** 3);
    expect(await machines().findOneByOrFail({ id: vm.machineId })).toMatchObject({
      cpu: 2,
      memoryMiB: 96,
      storageGiB: 2,
      status: 'off',
    });

    await power(vm.machineId, 'start');
    expect(parseDomainXml(await dom.getXML()).vcpus).toBe(2);
    // Removing a vCPU needs the guest's cooperation: the decrease waits for the next boot, recorded as pending.
    await runMachineOperation(stack.env.client, 'updateMachineHardware', {
      machineId: vm.machineId,
      actorId: null,
      cpu: 1,
    });
    expect(parseDomainXml(await dom.getXML()).vcpus).toBe(2);
    cfg = parseDomainXml(await dom.getXML({ inactive: true }));
    expect(cfg.vcpus).toBe(1);
    expect(await machines().findOneByOrFail({ id: vm.machineId })).toMatchObject({
      cpu: 1,
      pendingHardware: { cpu: 1 },
    });
    // Memory within the running maximum is applied live as the balloon target (a guest without a balloon
    // driver, like this OS-less one, keeps what it has: libvirt goes on reporting the old size).
    await runMachineOperation(stack.env.client, 'updateMachineHardware', {
      machineId: vm.machineId,
      actorId: null,
      memoryMiB: 80,
    });
    expect(parseDomainXml(await dom.getXML({ inactive: true })).memoryMiB).toBe(80);
    expect(await machines().findOneByOrFail({ id: vm.machineId })).toMatchObject({
      memoryMiB: 80,
      pendingHardware: { cpu: 1 },
    });
    // Beyond the maximum memory: persisted for the next boot and recorded as pending.
    const beyond = cfg.maxMemoryMiB + 64;
    await runMachineOperation(stack.env.client, 'updateMachineHardware', {
      machineId: vm.machineId,
      actorId: null,
      memoryMiB: beyond,
    });
    cfg = parseDomainXml(await dom.getXML({ inactive: true }));
    expect(cfg).toMatchObject({ memoryMiB: beyond, maxMemoryMiB: beyond });
    const row = await machines().findOneByOrFail({ id: vm.machineId });
    expect(row).toMatchObject({
      status: 'running',
      memoryMiB: beyond,
      pendingHardware: { cpu: 1, memoryMiB: beyond },
    });
    // A disk never shrinks: refused, and nothing changes.
    await expect(
      runMachineOperation(stack.env.client, 'updateMachineHardware', {
        machineId: vm.machineId,
        actorId: null,
        storageGiB: 1,
      }),
    ).rejects.toThrow(WorkflowFailedError);
    expect((await vol.getInfo()).capacity).toBe(2 * 1024 ** 3);
    await power(vm.machineId, 'poweroff');
    expect((await machines().findOneByOrFail({ id: vm.machineId })).pendingHardware).toBeNull();
    // After a cold boot the new config is live; a vCPU increase then hot-plugs live.
    await power(vm.machineId, 'start');
    expect(parseDomainXml(await dom.getXML())).toMatchObject({ vcpus: 1, memoryMiB: beyond });
    await runMachineOperation(stack.env.client, 'updateMachineHardware', {
      machineId: vm.machineId,
      actorId: null,
      cpu: 2,
    });
    expect(parseDomainXml(await dom.getXML()).vcpus).toBe(2);
    expect((await machines().findOneByOrFail({ id: vm.machineId })).pendingHardware).toBeNull();
    await power(vm.machineId, 'poweroff');
  });

  it('clones fully and linked; protects a linked source; destroys everything without a trace', async () => {
    const src = await createMachine(stack, world);
    const full = await runMachineOperation(stack.env.client, 'cloneMachine', {
      sourceMachineId: src.machineId,
      machineId: randomUUID(),
      name: 'full copy',
      linked: false,
      ownerId: world.owner.id,
      actorId: null,
    });
    const linked = await runMachineOperation(stack.env.client, 'cloneMachine', {
      sourceMachineId: src.machineId,
      machineId: randomUUID(),
      name: 'linked copy',
      linked: true,
      ownerId: world.owner.id,
      actorId: null,
    });
    made.push(src.machineId, full.machineId, linked.machineId);
    const srcRow = await machines().findOneByOrFail({ id: src.machineId });
    const fullRow = await machines().findOneByOrFail({ id: full.machineId });
    const linkedRow = await machines().findOneByOrFail({ id: linked.machineId });
    expect(srcRow.status).toBe('off');
    expect(fullRow).toMatchObject({
      status: 'off',
      linkedClone: false,
      sourceMachineId: src.machineId,
      departmentId: srcRow.departmentId,
    });
    expect(linkedRow).toMatchObject({ status: 'off', linkedClone: true });
    expect(new Set([srcRow.macAddress, fullRow.macAddress, linkedRow.macAddress]).size).toBe(3);
    expect(new Set([srcRow.libvirtUuid, fullRow.libvirtUuid, linkedRow.libvirtUuid]).size).toBe(3);
    const info = (p: string) =>
      JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', p], { encoding: 'utf8' }));
    expect(info(linkedRow.diskPath!)['backing-filename']).toBe(srcRow.diskPath);
    expect(info(fullRow.diskPath!)['backing-filename']).toBeUndefined();

    // The source backs a linked clone: destroy and start are refused while it exists.
    await expect(
      runMachineOperation(stack.env.client, 'destroyMachine', { machineId: src.machineId, actorId: null }),
    ).rejects.toThrow(WorkflowFailedError);
    await expect(power(src.machineId, 'start')).rejects.toThrow(WorkflowFailedError);
    expect((await machines().findOneByOrFail({ id: src.machineId })).status).toBe('off');

    for (const id of [linked.machineId, full.machineId, src.machineId]) {
      await runMachineOperation(stack.env.client, 'destroyMachine', {
        machineId: id,
        actorId: null,
        shutdownTimeoutSec: 1,
      });
      expect(await tracesOf(id, stack)).toEqual({ ...NO_HYPERVISOR_TRACE, row: null });
      expect((await eventsOf(stack.dataSource, id)).map((e) => e.action)).toContain('delete');
    }
  });

  it('destroys a running machine (graceful shutdown times out, then forced off) and a second destroy is a no-op', async () => {
    const vm = await createMachine(stack, world, { start: true });
    const res = await runMachineOperation(stack.env.client, 'destroyMachine', {
      machineId: vm.machineId,
      actorId: null,
      shutdownTimeoutSec: 1,
    });
    expect(res.outcome).toBe('done');
    expect(await tracesOf(vm.machineId, stack)).toEqual({ ...NO_HYPERVISOR_TRACE, row: null });
    const again = await runMachineOperation(stack.env.client, 'destroyMachine', {
      machineId: vm.machineId,
      actorId: null,
    });
    expect(again.outcome).toBe('noop');
  });
});
