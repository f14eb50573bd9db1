/**
 * Machines that boot the project's guest image, end to end on the real stack (HTTP API, Temporal dev
 * server, MariaDB, libvirtd + QEMU; TCG where KVM cannot boot Linux — the worker's probe decides):
 *   - the image build, fresh (the cached build's own record) and cached (measured now);
 *   - create-from-image (linked, cloud-init seed with a user and an SSH key, started) until the QEMU guest
 *     agent answers, p50 and p95 over BENCH_GUESTS machines (default 5), one at a time;
 *   - the baseline of the same run: create of an empty-disk machine (same size, started) until running;
 *   - what a linked disk allocates right after create, against the image's size;
 *   - destroy of the booted guest (graceful shutdown through ACPI).
 * The ratio printed last: create→agent p50 over the baseline's create→running p50.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { migrateDatabase } from '../src/entities/migrate';
import { type User } from '../src/entities/user';
import { guestAgentState } from '../src/worker/guest-info';
import { libvirtNames } from '../src/workflows/shared';
import { startApi, type ApiHarness } from '../test/support/api-harness';
import { deleteAndWait, operationEnded } from '../test/support/api-operations';
import { seedDepartment, seedUser } from '../test/support/db';
import { projectImageFile, uploadProjectImage } from '../test/support/guests';
import { startStack, TEST_POOL } from '../test/support/stack';
import { startDevServer } from '../test/support/temporal-server';

const BOOT_DEADLINE_MS = 12 * 60_000;

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
}

/** An OpenSSH ed25519 public key line (wire format: the key type, then 32 key bytes; random ones will do). */
function ed25519PublicKey(): string {
  const field = (b: Buffer) => Buffer.concat([Buffer.from([0, 0, 0, b.length]), b]);
  const blob = Buffer.concat([field(Buffer.from('ssh-ed25519')), field(randomBytes(32))]);
  return `ssh-ed25519 ${blob.toString('base64')} bench@vmflow`;
}

const secs = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

export async function benchGuests(): Promise<void> {
  const n = Number(process.env.BENCH_GUESTS ?? 5);
  const url = process.env.BENCH_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/vmflow_bench';
  await migrateDatabase(url);
  const server = await startDevServer({ logName: `bench-guests-temporal-${process.pid}` });
  process.env.TEMPORAL_ADDRESS = server.address;
  process.env.DATABASE_URL = url;
  const stack = await startStack();
  let h: ApiHarness | undefined;
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    h = await startApi(stack);
    const api = h;
    const admin: User = await seedUser(stack.dataSource, 'ADMIN');
    const owner: User = await seedUser(stack.dataSource);
    const dept = await seedDepartment(stack.dataSource, [[owner, 'MEMBER']]);
    const key = ed25519PublicKey();

    // The image: its fresh build as recorded by the build itself, and the cached look-up now.
    const t0 = performance.now();
    const file = await projectImageFile();
    const cachedMs = performance.now() - t0;
    const manifest = JSON.parse(await readFile(path.join(path.dirname(file), 'manifest.json'), 'utf8')) as {
      buildSeconds?: number;
      size: number;
      recipe: string;
    };
    const t1 = performance.now();
    const imageId = await uploadProjectImage(api, admin, stack.hostName);
    const importMs = performance.now() - t1;
    cleanup.push(() => deleteAndWait(api, admin, `/api/images/${imageId}`));
    console.log(
      `image build (recipe ${manifest.recipe}): fresh ${manifest.buildSeconds ?? '?'} s (its build record), ` +
        `cached ${cachedMs.toFixed(0)} ms; upload + import of ${(manifest.size / 2 ** 20).toFixed(0)} MiB: ${secs(importMs)}`,
    );

    const template = async (imaged: boolean) => {
      const r = await api.call('POST', '/api/templates', {
        as: admin,
        body: {
          name: `bench-${imaged ? 'image' : 'empty'}-${randomUUID().slice(0, 8)}`,
          cpu: 1,
          memory: 1024,
          storage: 4,
          os: 'debian-12',
          ...(imaged ? { imageId, diskMode: 'linked' } : {}),
        },
      });
      if (r.status !== 201) throw new Error(`template: ${r.status} ${JSON.stringify(r.body)}`);
      cleanup.push(() => api.call('DELETE', `/api/templates/${r.body.id}`, { as: admin }));
      return r.body.id as string;
    };
    const imaged = await template(true);
    const empty = await template(false);
    const conn = await stack.libvirt.get();

    /** Creates (started) through the API; the machine id and the ms until the operation succeeded. */
    const create = async (templateId: string, extra: Record<string, unknown>) => {
      const start = performance.now();
      const r = await api.call('POST', '/api/machines', {
        as: owner,
        body: {
          name: `bench ${randomUUID().slice(0, 8)}`,
          templateId,
          departmentId: dept.id,
          start: true,
          ...extra,
        },
      });
      if (r.status !== 202) throw new Error(`create: ${r.status} ${JSON.stringify(r.body)}`);
      const machineId = r.body.machine.id as string;
      cleanup.push(() => deleteAndWait(api, admin, `/api/machines/${machineId}?shutdownTimeoutSec=1`));
      const op = await operationEnded(api, admin, r.body.operation.id, BOOT_DEADLINE_MS);
      if (op.status !== 'succeeded') throw new Error(`create ${op.status}: ${op.error}`);
      return { machineId, start, runningMs: performance.now() - start };
    };

    const baseline: number[] = [];
    for (let i = 0; i < n; i++) {
      const { machineId, runningMs } = await create(empty, {});
      baseline.push(runningMs);
      await deleteAndWait(api, admin, `/api/machines/${machineId}?shutdownTimeoutSec=1`);
    }

    const ready: number[] = [];
    const running: number[] = [];
    const overlayMiB: number[] = [];
    const destroys: number[] = [];
    let virtType = '?';
    for (let i = 0; i < n; i++) {
      const { machineId, start, runningMs } = await create(imaged, { username: 'bench', sshKeys: [key] });
      running.push(runningMs);
      const domain = await conn.lookupDomainByName(libvirtNames.domain(machineId));
      const pool = await conn.lookupPoolByName(TEST_POOL);
      const vol = await pool.lookupVolumeByName(libvirtNames.volume(machineId));
      overlayMiB.push((await vol.getInfo()).allocation / 2 ** 20);
      for (;;) {
        const xml = await domain.getXML();
        virtType = /<domain type='(\w+)'/.exec(xml)?.[1] ?? virtType;
        if (guestAgentState(xml) === 'connected') break;
        if (performance.now() - start > BOOT_DEADLINE_MS) throw new Error('the guest agent never answered');
        await new Promise((r) => setTimeout(r, 250));
      }
      ready.push(performance.now() - start);
      const d0 = performance.now();
      await deleteAndWait(api, admin, `/api/machines/${machineId}?shutdownTimeoutSec=180`);
      destroys.push(performance.now() - d0);
    }

    const kvm = existsSync('/dev/kvm') ? 'present' : 'absent';
    console.log(`virtualization: ${virtType} (/dev/kvm ${kvm}); ${n} machines, one at a time`);
    console.log(
      `baseline create (empty disk) → running: p50 ${secs(quantile(baseline, 0.5))}, p95 ${secs(quantile(baseline, 0.95))}`,
    );
    console.log(
      `create from image → running: p50 ${secs(quantile(running, 0.5))}, p95 ${secs(quantile(running, 0.95))}`,
    );
    console.log(
      `create from image → guest agent answers: p50 ${secs(quantile(ready, 0.5))}, p95 ${secs(quantile(ready, 0.95))}`,
    );
    console.log(
      `linked disk right after create: max ${Math.max(...overlayMiB).toFixed(2)} MiB allocated ` +
        `(the image: ${(manifest.size / 2 ** 20).toFixed(0)} MiB)`,
    );
    console.log(`destroy of a booted guest (graceful shutdown): p50 ${secs(quantile(destroys, 0.5))}`);
    console.log(
      `ratio create→agent / baseline create→running (p50): ${(quantile(ready, 0.5) / quantile(baseline, 0.5)).toFixed(1)}×`,
    );
  } finally {
    for (const undo of cleanup.reverse()) await undo().catch(() => undefined);
    await h?.close();
    await stack.stop();
    server.stop();
  }
}
