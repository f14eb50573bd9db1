/**
 * /api/images on the real stack (MariaDB, Temporal, libvirtd): an upload streamed to staging, imported by
 * the importImage workflow into a volume whose bytes equal the upload; a wrong sha256, a fault at each step
 * and a body over the limit leave no volume and no staging file; bad input is a 400 naming the field;
 * admins manage images and users see only the ready images their departments may use; a used image
 * cannot be deleted (409), an unused one is deleted with its volume. A client that disconnects mid-body and a
 * chunked body that grows past the limit leave nothing; an import cancelled mid-upload removes the volume and
 * the staging file. After every test: no volume of a deleted image, no staging file of an ended operation.
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { type Department } from '../../../src/entities/department';
import { Image } from '../../../src/entities/image';
import { type User } from '../../../src/entities/user';
import { LibvirtErrorCode } from '../../../src/libvirt/errors';
import { libvirtNames } from '../../../src/workflows/shared';
import { startApi, type ApiHarness } from '../../support/api-harness';
import { operationEnded } from '../../support/api-operations';
import { seedDepartment, seedTemplate, seedUser } from '../../support/db';
import { waitFor } from '../../support/machines';
import { startStack, TEST_POOL, type Stack } from '../../support/stack';
import { MachineTemplate } from '../../../src/entities/machine-template';
import { Operation } from '../../../src/entities/operation';
import { imageLeftovers, NO_IMAGE_LEFTOVERS } from '../../support/leftovers';

const MAX = 4 * 1024 * 1024;

describe('/api/images on the real stack', () => {
  let stack: Stack;
  let h: ApiHarness;
  let admin: User;
  let alice: User;
  let deptA: Department;
  let deptB: Department;
  let staging: string;
  let work: string;
  let qcow2: Buffer;
  let qcow2Sha: string;
  const made: string[] = [];
  /** The API's log lines (pino JSON). */
  const logs: Array<{ level: number; msg: string; imageId?: string; err?: unknown }> = [];

  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
  const op = (id: string) => operationEnded(h, admin, id);
  const create = async (body: Record<string, unknown> = {}) => {
    const r = await h.call('POST', '/api/images', {
      as: admin,
      body: {
        name: `img-${randomUUID().slice(0, 8)}`,
        osFamily: 'linux',
        format: 'qcow2',
        sha256: qcow2Sha,
        // This suite's host: the test database holds the hosts of every suite that ran before.
        hostName: stack.hostName,
        ...body,
      },
    });
    expect(r.status).toBe(201);
    made.push(r.body.id);
    return r.body as { id: string; status: string; volumeName: string };
  };
  const upload = async (id: string, body: Buffer, as: User = admin) => {
    const res = await fetch(`${h.url}/api/images/${id}/content`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${h.token(as)}`, 'content-type': 'application/octet-stream' },
      body,
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  const volumeOf = async (name: string) => {
    const pool = await (await stack.libvirt.get()).lookupPoolByName(TEST_POOL);
    return pool.lookupVolumeByName(name).catch((e: { code?: number }) => {
      if (e.code === LibvirtErrorCode.NO_STORAGE_VOL) return null;
      throw e;
    });
  };
  const row = (id: string) => stack.dataSource.getRepository(Image).findOneOrFail({ where: { id } });
  const stagingFiles = () => readdirSync(staging);

  beforeAll(async () => {
    stack = await startStack();
    staging = mkdtempSync(path.join(tmpdir(), 'vmflow-staging-'));
    work = mkdtempSync(path.join(tmpdir(), 'vmflow-images-'));
    h = await startApi(stack, {
      images: { stagingDir: staging, maxBytes: MAX },
      logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) }),
    });
    admin = await seedUser(stack.dataSource, 'ADMIN');
    alice = await seedUser(stack.dataSource);
    deptA = await seedDepartment(stack.dataSource, [[alice, 'MEMBER']]);
    deptB = await seedDepartment(stack.dataSource);
    const file = path.join(work, 'src.qcow2');
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', file, '16M']);
    qcow2 = readFileSync(file);
    qcow2Sha = sha(qcow2);
  });
  afterAll(async () => {
    for (const id of made) {
      await volumeOf(libvirtNames.imageVolume(id))
        .then((v) => v?.delete())
        .catch(() => undefined);
    }
    await stack?.dataSource
      .getRepository(Image)
      .delete(made.length ? made.map((id) => ({ id })) : { id: '-' });
    await h?.close();
    await stack?.stop();
    rmSync(staging, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  afterEach(async () => {
    expect(await imageLeftovers(made, { ...stack, stagingDir: staging })).toEqual(NO_IMAGE_LEFTOVERS);
  });

  /** A PUT of the content written by hand: `headers` as given (no Content-Length: chunked). */
  const rawPut = (id: string, headers: Record<string, string> = {}) => {
    const req = http.request(`${h.url}/api/images/${id}/content`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${h.token(admin)}`,
        'content-type': 'application/octet-stream',
        ...headers,
      },
    });
    const answer = new Promise<{ status: number; body: { errors?: unknown } }>((resolve, reject) => {
      req.on('response', (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined }));
      });
      req.on('error', reject);
    });
    return { req, answer };
  };
  const operationsOf = (imageId: string) =>
    stack.dataSource.getRepository(Operation).count({ where: { resourceId: imageId } });

  it('imports an upload: the volume holds exactly the uploaded bytes, the staging file is gone', async () => {
    const img = await create();
    expect(img.status).toBe('pending');
    const r = await upload(img.id, qcow2);
    expect(r.status).toBe(202);
    const done = await op(r.body.operation.id);
    expect(done.status).toBe('succeeded');
    const i = await row(img.id);
    expect(i).toMatchObject({ status: 'ready', format: 'qcow2', virtualSizeBytes: 16 * 1024 * 1024 });
    expect(i.sizeBytes).toBe(qcow2.length);
    expect(i.volumeName).toBe(libvirtNames.imageVolume(img.id));
    const vol = (await volumeOf(i.volumeName))!;
    expect(await vol.getPath()).toBe(i.path);
    const back = path.join(work, 'back.img');
    await vol.downloadFile(back);
    expect(sha(readFileSync(back))).toBe(qcow2Sha);
    expect(stagingFiles()).toEqual([]);
    expect(done.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual(
      expect.arrayContaining([
        'verifySha256:completed',
        'createVolume:completed',
        'upload:completed',
        'inspect:completed',
        'finalize:completed',
      ]),
    );
  });

  it('a wrong sha256 fails the import: image failed with the reason, no volume, no staging file', async () => {
    const img = await create({ sha256: 'a'.repeat(64) });
    const r = await upload(img.id, qcow2);
    expect(r.status).toBe(202);
    expect((await op(r.body.operation.id)).status).toBe('failed');
    const i = await row(img.id);
    expect(i.status).toBe('failed');
    expect(i.lastError).toMatch(/sha256 mismatch/);
    expect(await volumeOf(i.volumeName)).toBeNull();
    expect(stagingFiles()).toEqual([]);
  });

  it('content that is not the declared format fails after the upload and removes the volume', async () => {
    const raw = Buffer.alloc(64 * 1024, 7);
    const img = await create({ sha256: sha(raw) });
    const r = await upload(img.id, raw);
    expect((await op(r.body.operation.id)).status).toBe('failed');
    const i = await row(img.id);
    expect(i.lastError).toMatch(/not the declared qcow2/);
    expect(await volumeOf(i.volumeName)).toBeNull();
    expect(stagingFiles()).toEqual([]);
  });

  it.each(['createImageVolume', 'uploadImageContent', 'inspectImageVolume', 'setImageStatus:ready'])(
    'a fault at %s leaves no volume, no staging file, and the image failed',
    async (step) => {
      const img = await create();
      stack.faults.arm(step, 'after');
      try {
        const r = await upload(img.id, qcow2);
        expect(r.status).toBe(202);
        expect((await op(r.body.operation.id)).status).toBe('failed');
      } finally {
        stack.faults.clear();
      }
      const i = await row(img.id);
      expect(i.status).toBe('failed');
      expect(i.lastError).toMatch(/injected fault/);
      expect(i.currentOperationId).toBeNull();
      expect(await volumeOf(i.volumeName)).toBeNull();
      expect(stagingFiles()).toEqual([]);
      // A failed image takes a new upload, which succeeds.
      const again = await upload(img.id, qcow2);
      expect((await op(again.body.operation.id)).status).toBe('succeeded');
      expect((await row(img.id)).status).toBe('ready');
    },
  );

  it('a body over the limit is a 413; nothing is staged, the image still waits for its content', async () => {
    const img = await create();
    const r = await upload(img.id, Buffer.alloc(MAX + 1));
    expect(r.status).toBe(413);
    expect(stagingFiles()).toEqual([]);
    expect((await row(img.id)).status).toBe('pending');
  });

  it('a client that disconnects mid-body: nothing staged, no operation, the image still pending, a warning', async () => {
    const img = await create();
    const { req, answer } = rawPut(img.id, { 'content-length': String(MAX) });
    answer.catch(() => undefined); // the client goes away: it gets no answer
    req.write(Buffer.alloc(256 * 1024, 1));
    await waitFor(async () => stagingFiles().length > 0, 'the upload to reach its staging file');
    req.destroy();

    const warned = await waitFor(
      async () => logs.find((l) => l.imageId === img.id && /upload interrupted/.test(l.msg)),
      'the interruption to be logged',
    );
    expect(warned.level).toBe(40); // warn
    expect(logs.filter((l) => l.level >= 50)).toEqual([]);
    await waitFor(async () => stagingFiles().length === 0, 'the partial file to be removed');
    expect(await row(img.id)).toMatchObject({ status: 'pending', currentOperationId: null });
    expect(await operationsOf(img.id)).toBe(0);
    expect(await volumeOf(libvirtNames.imageVolume(img.id))).toBeNull();
  });

  it('a chunked body (no Content-Length) that grows past the limit is a 413; nothing is left', async () => {
    const img = await create();
    const { req, answer } = rawPut(img.id);
    const chunk = Buffer.alloc(256 * 1024, 2);
    for (let sent = 0; sent <= MAX; sent += chunk.length) if (!req.write(chunk)) await once(req, 'drain');
    req.end();

    const r = await answer;
    expect(req.getHeader('content-length')).toBeUndefined();
    expect(r.status).toBe(413);
    expect(r.body.errors).toEqual([{ field: '(body)', message: `at most ${MAX} bytes` }]);
    expect(stagingFiles()).toEqual([]);
    expect(await row(img.id)).toMatchObject({ status: 'pending', currentOperationId: null });
    expect(await operationsOf(img.id)).toBe(0);
    expect(await volumeOf(libvirtNames.imageVolume(img.id))).toBeNull();
  });

  it('an import cancelled mid-upload: no volume, no staging file, the image failed with the reason', async () => {
    const img = await create();
    // The first segment is in the volume; the upload then waits there until it hears of the cancellation.
    const hung = new Promise<void>((resolve) => (stack.faults.onHang = () => resolve()));
    stack.faults.arm('uploadSegment', 'after', { hang: true });
    try {
      const r = await upload(img.id, qcow2);
      expect(r.status).toBe(202);
      await hung;
      expect(await volumeOf(libvirtNames.imageVolume(img.id))).not.toBeNull();
      const cancel = await h.call('POST', `/api/operations/${r.body.operation.id}/cancel`, { as: admin });
      expect(cancel.status).toBe(202);
      const done = await op(r.body.operation.id);
      expect(done.status).toBe('cancelled');
      expect(done.steps.map((s: { name: string; status: string }) => `${s.name}:${s.status}`)).toEqual(
        expect.arrayContaining(['upload:failed', 'createVolume:compensated']),
      );
    } finally {
      stack.faults.clear();
      stack.faults.onHang = () => undefined;
    }
    expect(await row(img.id)).toMatchObject({
      status: 'failed',
      lastError: 'import failed: operation cancelled',
      currentOperationId: null,
    });
    expect(await volumeOf(libvirtNames.imageVolume(img.id))).toBeNull();
    expect(stagingFiles()).toEqual([]);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['no sha256 for an upload', { sha256: undefined }, 'sha256'],
    ['a malformed sha256', { sha256: 'xyz' }, 'sha256'],
    ['an unknown OS family', { osFamily: 'beos' }, 'osFamily'],
    ['an unknown format', { format: 'vmdk' }, 'format'],
    ['cloud-init on windows', { osFamily: 'windows', provisioning: 'cloud-init' }, 'provisioning'],
    ['a vmflow volume to register', { register: { volume: 'vmflow-x' } }, 'register.volume'],
  ])('%s is a 400 naming the field and makes nothing', async (_what, over, field) => {
    const before = await stack.dataSource.getRepository(Image).count();
    const r = await h.call('POST', '/api/images', {
      as: admin,
      body: {
        name: `bad-${randomUUID().slice(0, 8)}`,
        osFamily: 'linux',
        format: 'qcow2',
        sha256: qcow2Sha,
        ...over,
      },
    });
    expect(r.status).toBe(400);
    expect(r.headers.get('content-type')).toMatch(/problem\+json/);
    expect(r.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    expect(await stack.dataSource.getRepository(Image).count()).toBe(before);
  });

  it('admins manage images; users see only ready images their departments may use', async () => {
    const denied = await h.call('POST', '/api/images', {
      as: alice,
      body: { name: 'nope', osFamily: 'linux', format: 'qcow2', sha256: qcow2Sha },
    });
    expect(denied.status).toBe(403);
    const forA = await create({ departmentIds: [deptA.id] });
    const forB = await create({ departmentIds: [deptB.id] });
    const pending = await create({ departmentIds: null });
    for (const id of [forA.id, forB.id])
      expect((await op((await upload(id, qcow2)).body.operation.id)).status).toBe('succeeded');
    const list = await h.call('GET', '/api/images?limit=100', { as: alice });
    const ids = list.body.items.map((i: { id: string }) => i.id);
    expect(ids).toContain(forA.id);
    expect(ids).not.toContain(forB.id);
    expect(ids).not.toContain(pending.id);
    expect((await h.call('GET', `/api/images/${forB.id}`, { as: alice })).status).toBe(404);
    expect((await upload(pending.id, qcow2, alice)).status).toBe(404);
    expect((await h.call('DELETE', `/api/images/${forA.id}`, { as: alice })).status).toBe(403);
  });

  it('registers an existing volume without copying it; deleting it leaves the volume', async () => {
    const pool = await (await stack.libvirt.get()).lookupPoolByName(TEST_POOL);
    const name = `test-register-${randomUUID().slice(0, 8)}.qcow2`;
    const vol = await pool.createVolume(
      `<volume><name>${name}</name><capacity unit='bytes'>${8 * 1024 * 1024}</capacity><target><format type='qcow2'/></target></volume>`,
    );
    try {
      const r = await h.call('POST', '/api/images', {
        as: admin,
        body: {
          name: `reg-${randomUUID().slice(0, 8)}`,
          osFamily: 'linux',
          format: 'qcow2',
          hostName: stack.hostName,
          register: { volume: name },
        },
      });
      expect(r.status).toBe(202);
      made.push(r.body.image.id);
      expect((await op(r.body.operation.id)).status).toBe('succeeded');
      const i = await row(r.body.image.id);
      expect(i).toMatchObject({
        status: 'ready',
        origin: 'register',
        volumeName: name,
        virtualSizeBytes: 8 * 1024 * 1024,
      });
      expect(i.sha256).toBe(sha(readFileSync(await vol.getPath())));
      const del = await h.call('DELETE', `/api/images/${i.id}`, { as: admin });
      expect((await op(del.body.operation.id)).status).toBe('succeeded');
      expect(await stack.dataSource.getRepository(Image).exists({ where: { id: i.id } })).toBe(false);
      expect(await volumeOf(name)).not.toBeNull();
    } finally {
      await vol.delete().catch(() => undefined);
    }
  });

  it('deleting a used image is a 409 naming the users; an unused one goes with its volume', async () => {
    const img = await create();
    expect((await op((await upload(img.id, qcow2)).body.operation.id)).status).toBe('succeeded');
    const tpl = await seedTemplate(stack.dataSource, { imageId: img.id });
    const refused = await h.call('DELETE', `/api/images/${img.id}`, { as: admin });
    expect(refused.status).toBe(409);
    expect(refused.body.templates).toEqual([{ id: tpl.id, name: tpl.name }]);
    await stack.dataSource.getRepository(MachineTemplate).delete({ id: tpl.id });
    const del = await h.call('DELETE', `/api/images/${img.id}`, { as: admin });
    expect(del.status).toBe(202);
    expect((await op(del.body.operation.id)).status).toBe('succeeded');
    expect(await stack.dataSource.getRepository(Image).exists({ where: { id: img.id } })).toBe(false);
    expect(await volumeOf(libvirtNames.imageVolume(img.id))).toBeNull();
  });
});
