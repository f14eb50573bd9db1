/**
 * Crash: the worker process is killed (SIGKILL) in the middle of a create and of a destroy, right after
 * a step's side effect and before it could report it; a new worker process picks the workflows up and
 * they finish, with no duplicate domain or volume and nothing left behind.
 */
import { type ChildProcess } from 'node:child_process';
import { startMachineOperation } from '../../../src/client/machine-operations';
import { Machine } from '../../../src/entities/machine';
import { parseDomainXml } from '../../../src/libvirt/xml';
import { libvirtNames } from '../../../src/workflows/shared';
import { NO_HYPERVISOR_TRACE, tracesOf } from '../../support/leftovers';
import { createRequest, destroyIfPresent, seedWorld, type World } from '../../support/machines';
import { startStack, TEST_POOL, type Stack } from '../../support/stack';
import { kill9, startWorker } from '../../support/worker-control';

describe('worker crash in the middle of an operation', () => {
  let stack: Stack;
  let world: World;
  let current: ChildProcess | null = null;

  beforeAll(async () => {
    stack = await startStack({ workers: false });
    world = await seedWorld(stack.dataSource);
  });
  afterAll(async () => {
    if (current && current.exitCode === null && current.signalCode === null) await kill9(current);
    if (!stack) return;
    const { child, reached } = startWorker(stack.hostName);
    await reached('READY');
    for (const r of await stack.dataSource
      .getRepository(Machine)
      .findBy({ departmentId: world.department.id })) {
      await destroyIfPresent(stack, r.id).catch(() => undefined);
    }
    await kill9(child);
    await stack?.stop();
  });

  async function countOf(machineId: string) {
    const conn = await stack.libvirt.get();
    let domains = 0;
    for (const d of await conn.listAllDomains()) {
      const md = parseDomainXml(await d.getXML({ inactive: true })).metadata;
      if (md.machineId === machineId) domains++;
    }
    const pool = await conn.lookupPoolByName(TEST_POOL);
    await pool.refresh();
    const volumes = (await Promise.all((await pool.listAllVolumes()).map((v) => v.getName()))).filter((n) =>
      n.includes(machineId),
    ).length;
    return { domains, volumes };
  }

  it('create: killed after the volume and after the domain were made, it finishes once, without duplicates', async () => {
    for (const hang of ['createVolume:after', 'defineDomain:after']) {
      const a = startWorker(stack.hostName, hang);
      current = a.child;
      await a.reached('READY');
      const req = createRequest(stack, world, { start: true });
      const { handle } = await startMachineOperation(stack.env.client, 'createMachine', req as never);
      await a.reached(`HANG ${hang}`);
      await kill9(a.child);
      const b = startWorker(stack.hostName);
      current = b.child;
      await b.reached('READY');
      expect(await handle.result()).toMatchObject({ status: 'running' });
      expect(await countOf(req.machineId)).toEqual({ domains: 1, volumes: 1 });
      const row = await stack.dataSource.getRepository(Machine).findOneByOrFail({ id: req.machineId });
      expect(row).toMatchObject({ status: 'running', currentOperationId: null });
      await kill9(b.child);
    }
  });

  it('destroy: killed after undefining the domain, it finishes and leaves nothing', async () => {
    const a = startWorker(stack.hostName);
    current = a.child;
    await a.reached('READY');
    const req = createRequest(stack, world, { start: true });
    await (await startMachineOperation(stack.env.client, 'createMachine', req as never)).handle.result();
    await kill9(a.child);

    const b = startWorker(stack.hostName, 'undefineDomain:after');
    current = b.child;
    await b.reached('READY');
    const { handle } = await startMachineOperation(stack.env.client, 'destroyMachine', {
      machineId: req.machineId,
      actorId: null,
      shutdownTimeoutSec: 1,
    });
    await b.reached('HANG undefineDomain:after');
    await kill9(b.child);
    const c = startWorker(stack.hostName);
    current = c.child;
    await c.reached('READY');
    expect(await handle.result()).toMatchObject({ outcome: 'done' });
    expect(await tracesOf(req.machineId, stack)).toEqual({ ...NO_HYPERVISOR_TRACE, row: null });
    expect(await countOf(req.machineId)).toEqual({ domains: 0, volumes: 0 });
    expect(libvirtNames.domain(req.machineId)).toMatch(/^vmflow-/);
    await kill9(c.child);
  });
});
