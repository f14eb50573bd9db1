/**
 * Machines from images on the real stack, without booting them (a small blank qcow2 image): the disk is
 * an overlay on the image (linked: nothing copied) or a standalone copy (full), grown to the asked size;
 * the seed is written and mounted; a clone gets its own seed (its own instance id and host name); a fault
 * at each new step (disk from the image, seed, the domain that mounts it) leaves nothing behind; the API
 * refuses what cannot work (an image that is not ready, provisioning that does not fit the image or a
 * template without one) before any work starts, naming the field.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { type FaultPhase } from '../../../src/activities/faults';
import { type Department } from '../../../src/entities/department';
import { Machine } from '../../../src/entities/machine';
import { type User } from '../../../src/entities/user';
import { libvirtNames } from '../../../src/workflows/shared';
import { startApi, type ApiHarness } from '../../support/api-harness';
import { deleteAndWait, operationEnded } from '../../support/api-operations';
import { seedDepartment, seedUser } from '../../support/db';
import { NO_HYPERVISOR_TRACE, tracesOf } from '../../support/leftovers';
import { runMachineOperation } from '../../support/machines';
import { startStack, TEST_POOL, type Stack } from '../../support/stack';

const PHASES: FaultPhase[] = ['before', 'after'];

describe('machines from images (not booted)', () => {
  let stack: Stack;
  let h: ApiHarness;
  let admin: User;
  let alice: User;
  let dept: Department;
  let work: string;
  let imageId: string;
  let imagePath: string;
  let linkedTemplate: string;
  let fullTemplate: string;
  const machines: string[] = [];

  const operation = (id: string) => operationEnded(h, admin, id);
  const template = async (body: Record<string, unknown>) => {
    const r = await h.call('POST', '/api/templates', {
      as: admin,
      body: {
        name: `t-${randomUUID().slice(0, 8)}`,
        cpu: 1,
        memory: 256,
        storage: 1,
        os: 'debian-12',
        ...body,
      },
    });
    return r;
  };
  const create = async (body: Record<string, unknown>) => {
    const r = await h.call('POST', '/api/machines', {
      as: alice,
      body: { name: `vm ${randomUUID().slice(0, 6)}`, departmentId: dept.id, ...body },
    });
    if (r.status === 202) machines.push(r.body.machine.id);
    return r;
  };
  const seedOf = async (machineId: string) => {
    const pool = await (await stack.libvirt.get()).lookupPoolByName(TEST_POOL);
    return pool.lookupVolumeByName(`vmflow-seed-${machineId}.iso`).catch(() => null);
  };
  const qemuInfo = (file: string) =>
    JSON.parse(execFileSync('qemu-img', ['info', '-U', '--output=json', file], { encoding: 'utf8' })) as {
      'virtual-size': number;
      'actual-size': number;
      'backing-filename'?: string;
    };
  const isoFile = (iso: string, file: string) =>
    execFileSync('isoinfo', ['-i', iso, '-J', '-x', `/${file}`], { encoding: 'utf8' });

  beforeAll(async () => {
    stack = await startStack();
    h = await startApi(stack);
    admin = await seedUser(stack.dataSource, 'ADMIN');
    alice = await seedUser(stack.dataSource);
    dept = await seedDepartment(stack.dataSource, [[alice, 'MEMBER']]);
    work = mkdtempSync(path.join(tmpdir(), 'vmflow-image-machines-'));
    const file = path.join(work, 'blank.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, '512M']);
    const bytes = readFileSync(file);
    const img = await h.call('POST', '/api/images', {
      as: admin,
      body: {
        name: `blank-${randomUUID().slice(0, 8)}`,
        osFamily: 'linux',
        format: 'qcow2',
        hostName: stack.hostName,
        firmware: 'bios',
        provisioning: 'cloud-init',
        sha256: createHash('sha256').update(bytes).digest('hex'),
      },
    });
    expect(img.status).toBe(201);
    imageId = img.body.id;
    const put = await fetch(`${h.url}/api/images/${imageId}/content`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${h.token(admin)}`, 'content-type': 'application/octet-stream' },
      body: bytes,
    });
    expect(put.status).toBe(202);
    const op = await operation(((await put.json()) as { operation: { id: string } }).operation.id);
    expect(op.status).toBe('succeeded');
    imagePath = (await h.call('GET', `/api/images/${imageId}`, { as: admin })).body.path;
    linkedTemplate = (await template({ imageId, diskMode: 'linked' })).body.id;
    fullTemplate = (await template({ imageId, diskMode: 'full' })).body.id;
  });

  afterAll(async () => {
    stack?.faults.clear();
    for (const id of machines.reverse()) await deleteAndWait(h, admin, `/api/machines/${id}`);
    for (const t of [linkedTemplate, fullTemplate])
      if (t) await h.call('DELETE', `/api/templates/${t}`, { as: admin });
    if (imageId) await deleteAndWait(h, admin, `/api/images/${imageId}`);
    await h?.close();
    await stack?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('makes a linked disk an overlay on the image (nothing copied), grown to the size asked, with a seed mounted', async () => {
    const r = await create({
      templateId: linkedTemplate,
      storage: 2,
      username: 'alice',
      hostname: 'linked-1',
    });
    expect(r.status).toBe(202);
    expect((await operation(r.body.operation.id)).status).toBe('succeeded');
    const id = r.body.machine.id as string;
    const row = await stack.dataSource.getRepository(Machine).findOneByOrFail({ id });
    expect(row.imageId).toBe(imageId);
    expect(row.provisioning).toMatchObject({ hostname: 'linked-1', username: 'alice', hasPassword: false });
    const disk = qemuInfo(row.diskPath!);
    expect(disk['backing-filename']).toBe(imagePath);
    expect(disk['virtual-size']).toBe(2 * 1024 ** 3);
    expect(disk['actual-size']).toBeLessThan(2 * 1024 * 1024); // the overlay only, not the image
    const seed = (await seedOf(id))!;
    expect(seed).not.toBeNull();
    expect(isoFile(await seed.getPath(), 'meta-data')).toContain(id);
    const xml = await (
      await (await stack.libvirt.get()).lookupDomainByName(libvirtNames.domain(id))
    ).getXML();
    expect(xml).toContain(await seed.getPath());
    expect(xml).toMatch(/<target dev='hdc' bus='ide'\/>/);
    expect(xml).toContain("name='org.qemu.guest_agent.0'");
  });

  it('makes a full disk a standalone copy of the image', async () => {
    const r = await create({ templateId: fullTemplate, storage: 1 });
    expect(r.status).toBe(202);
    expect((await operation(r.body.operation.id)).status).toBe('succeeded');
    const row = await stack.dataSource.getRepository(Machine).findOneByOrFail({ id: r.body.machine.id });
    const disk = qemuInfo(row.diskPath!);
    expect(disk['backing-filename']).toBeUndefined();
    expect(disk['virtual-size']).toBe(1024 ** 3);
  });

  it('gives a clone its own seed: its own instance id and host name', async () => {
    const src = await create({ templateId: linkedTemplate, username: 'alice', hostname: 'origin' });
    expect((await operation(src.body.operation.id)).status).toBe('succeeded');
    const r = await h.call('POST', `/api/machines/${src.body.machine.id}/clone`, {
      as: alice,
      body: { name: `clone ${randomUUID().slice(0, 6)}`, linked: true, hostname: 'copy-1' },
    });
    expect(r.status).toBe(202);
    machines.push(r.body.machine.id);
    expect((await operation(r.body.operation.id)).status).toBe('succeeded');
    const iso = await (await seedOf(r.body.machine.id))!.getPath();
    expect(isoFile(iso, 'meta-data')).toContain(r.body.machine.id);
    expect(isoFile(iso, 'user-data')).toMatch(/hostname: copy-1/);
    expect(isoFile(iso, 'user-data')).toMatch(/name: alice/);
  });

  const steps = ['createVolume', 'writeSeed', 'defineDomain', 'startDomain'];
  it.each(steps.flatMap((s) => PHASES.map((p) => [s, p] as const)))(
    'fails at %s (%s): no disk, no seed, no domain; a failed row that destroy removes',
    async (step, phase) => {
      stack.faults.arm(step, phase);
      const machineId = randomUUID();
      const req = {
        operationId: randomUUID(),
        machineId,
        name: `fault ${randomUUID().slice(0, 6)}`,
        templateId: linkedTemplate,
        departmentId: dept.id,
        ownerId: alice.id,
        actorId: alice.id,
        hostName: stack.hostName,
        start: true,
        provisioning: {
          hostname: 'f',
          sshKeys: [],
          hasPassword: false,
          hasProductKey: false,
          hasUserData: false,
        },
      };
      await expect(runMachineOperation(stack.env.client, 'createMachine', req as never)).rejects.toThrow(
        WorkflowFailedError,
      );
      stack.faults.clear();
      const traces = await tracesOf(machineId, stack);
      expect({ ...traces, row: undefined }).toEqual({ ...NO_HYPERVISOR_TRACE, row: undefined });
      expect(await seedOf(machineId)).toBeNull();
      expect(traces.row).toMatchObject({ status: 'failed' });
      await runMachineOperation(stack.env.client, 'destroyMachine', { machineId, actorId: null });
      expect((await tracesOf(machineId, stack)).row).toBeNull();
    },
  );

  it('refuses provisioning that does not fit, before any work, naming the field', async () => {
    const noImage = (await template({})).body.id as string;
    const cases: Array<[Record<string, unknown>, number, string]> = [
      [{ templateId: linkedTemplate, productKey: 'ABCDE-ABCDE-ABCDE-ABCDE-ABCDE' }, 422, 'productKey'],
      [{ templateId: linkedTemplate, username: 'root' }, 400, 'username'],
      [{ templateId: linkedTemplate, hostname: '-bad-' }, 400, 'hostname'],
      [{ templateId: linkedTemplate, userData: 'users: [x]' }, 400, 'userData'],
      [{ templateId: linkedTemplate, userData: 'a: [' }, 400, 'userData'],
      [{ templateId: noImage, username: 'alice' }, 422, 'username'],
      [{ templateId: linkedTemplate, storage: 1, cpu: 1 }, 0, ''], // fits: the control case
    ];
    const before = await stack.dataSource.getRepository(Machine).count();
    for (const [body, status, field] of cases) {
      const r = await create(body);
      if (status === 0) {
        expect(r.status).toBe(202);
        await operation(r.body.operation.id);
        continue;
      }
      expect({ body, status: r.status }).toEqual({ body, status });
      expect(r.headers.get('content-type')).toContain('application/problem+json');
      expect(r.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    }
    expect(await stack.dataSource.getRepository(Machine).count()).toBe(before + 1);
    await h.call('DELETE', `/api/templates/${noImage}`, { as: admin });
  });

  it('refuses a template whose image is bigger than its disk, or not ready', async () => {
    const big = await template({ imageId, storage: 1 });
    expect(big.status).toBe(201); // 512 MiB fits in 1 GiB
    await h.call('DELETE', `/api/templates/${big.body.id}`, { as: admin });
    const pending = await h.call('POST', '/api/images', {
      as: admin,
      body: {
        name: `p-${randomUUID().slice(0, 8)}`,
        osFamily: 'linux',
        format: 'qcow2',
        sha256: 'a'.repeat(64),
      },
    });
    const notReady = await template({ imageId: pending.body.id });
    expect(notReady.status).toBe(422);
    expect(notReady.body.errors[0].field).toBe('imageId');
    await h.call('DELETE', `/api/images/${pending.body.id}`, { as: admin });
  });
});
