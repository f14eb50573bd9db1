/**
 * The seed activities against the real libvirtd (pool `vmflow`): writeSeed makes a raw volume holding the
 * ISO (checked with isoinfo on the volume itself), a retry rewrites the same volume, deleteSeed removes it
 * (twice is fine), and a fault before or during the write leaves no volume. The password never appears in
 * the result, a heartbeat, an error or the seed.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { MockActivityEnvironment } from '@temporalio/testing';
import { parse } from 'yaml';
import { createSeedActivities, seedVolumeName, type WriteSeedInput } from '../../../src/activities/seed';
import {
  type Connection,
  type Domain,
  type StoragePool,
  type StorageVolume,
} from '../../../src/libvirt/connection';
import { isLibvirtError } from '../../../src/libvirt/errors';
import { LibvirtProvider } from '../../../src/libvirt/provider';
import { buildDomainXml, buildVolumeXml, parseDomainXml, seedCdromDisk } from '../../../src/libvirt/xml';
import { macFromId, SecretBox } from '../../../src/secrets';
import { LIBVIRT_URI, domainType, removeDomain } from '../libvirt/support';
import { TEST_POOL } from '../../support/stack';

const PASSWORD = `pw-${randomUUID()}`;
const ED25519 =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmjUfuPi7ClUicdZr6w6EHzr/AImLmzei009gDdNX2/ alice@laptop';

const box = new SecretBox('vmflow-seed-test-key');
const libvirt = new LibvirtProvider(LIBVIRT_URI);
const seeds = createSeedActivities({ libvirt, secrets: box });

/** Runs an activity in a mock activity context, recording its heartbeats. */
async function inActivity<T>(fn: () => Promise<T>): Promise<{ result: T; heartbeats: unknown[] }> {
  const env = new MockActivityEnvironment({ activityType: 'writeSeed' });
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => heartbeats.push(d));
  return { result: await env.run(fn), heartbeats };
}

function input(machineId: string, over: Partial<WriteSeedInput> = {}): WriteSeedInput {
  return {
    pool: TEST_POOL,
    machineId,
    kind: 'cloud-init',
    provisioning: {
      hostname: 'seed-test',
      username: 'alice',
      sshKeys: [ED25519],
      hasPassword: true,
      hasProductKey: false,
      hasUserData: true,
    },
    guestSecrets: box.seal({ password: PASSWORD, userData: 'packages: [htop]\n' }),
    ...over,
  };
}

async function volumeOf(conn: Connection, machineId: string): Promise<StorageVolume | null> {
  const pool = await conn.lookupPoolByName(TEST_POOL);
  try {
    return await pool.lookupVolumeByName(seedVolumeName(machineId));
  } catch (e) {
    if (isLibvirtError(e)) return null;
    throw e;
  }
}

/**
 * `target` with some methods replaced: each override gets the real method (bound) and returns the new one.
 * Other properties pass through, methods bound (the native wrappers keep `#private` state).
 */
function intercept<T extends object>(
  target: T,
  overrides: Record<string, (real: (...a: any[]) => Promise<any>) => unknown>, // eslint-disable-line @typescript-eslint/no-explicit-any -- any method
): T {
  return new Proxy(target, {
    get: (t, p) => {
      const v: unknown = Reflect.get(t, p, t);
      const bound = typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      const override = typeof p === 'string' ? overrides[p] : undefined;
      return override ? override(bound as () => Promise<unknown>) : bound;
    },
  });
}

const isoinfo = (args: string[]) => execFileSync('isoinfo', args).toString();

describe('seed activities (real libvirtd)', () => {
  let conn: Connection;
  const made: string[] = [];

  beforeAll(async () => {
    conn = await libvirt.get();
  });
  afterAll(async () => {
    for (const id of made) await seeds.deleteSeed({ pool: TEST_POOL, machineId: id });
    await libvirt.close();
  });

  it('writes a cidata ISO into a raw volume of its exact size; a retry rewrites the same volume', async () => {
    const id = randomUUID();
    made.push(id);
    const { result, heartbeats } = await inActivity(() => seeds.writeSeed(input(id)));
    expect(result).toEqual({
      volume: seedVolumeName(id),
      path: expect.stringMatching(/^\//),
      sizeBytes: expect.any(Number),
    });
    expect(JSON.stringify([result, heartbeats])).not.toContain(PASSWORD);
    // A write shorter than the heartbeat interval sends none (no beat at an activity's start:
    // docs/performance.md); those a longer one sends carry its step only, never what the seed holds.
    for (const beat of heartbeats) expect(beat).toEqual({ step: 'write seed' });

    const vol = (await volumeOf(conn, id))!;
    expect(vol).not.toBeNull();
    expect(await vol.getPath()).toBe(result.path);
    expect((await vol.getInfo()).capacity).toBe(result.sizeBytes);
    // Created raw; libvirt probes the uploaded content and then reports it as what it is, an ISO.
    expect(await vol.getXML()).toMatch(/<format type='(raw|iso)'\/>/);
    expect(statSync(result.path).mode & 0o077).toBe(0); // private to its owner

    expect(isoinfo(['-d', '-i', result.path])).toMatch(/^Volume id: cidata$/m);
    const meta = parse(isoinfo(['-J', '-i', result.path, '-x', '/meta-data'])) as Record<string, string>;
    expect(meta).toEqual({ 'instance-id': id, 'local-hostname': 'seed-test' });
    const userData = isoinfo(['-J', '-i', result.path, '-x', '/user-data']);
    expect(userData).not.toContain(PASSWORD);
    const doc = parse(userData) as { users: Array<{ name: string; passwd: string }>; packages: string[] };
    expect(doc.users[0]!.name).toBe('alice');
    expect(doc.users[0]!.passwd).toMatch(/^\$6\$/);
    expect(
      execFileSync('openssl', ['passwd', '-6', '-salt', doc.users[0]!.passwd.split('$')[2]!, '-stdin'], {
        input: PASSWORD,
      })
        .toString()
        .trim(),
    ).toBe(doc.users[0]!.passwd);
    expect(doc.packages).toEqual(['htop']);
    const net = parse(isoinfo(['-J', '-i', result.path, '-x', '/network-config'])) as {
      ethernets: { eth0: { match: { macaddress: string } } };
    };
    expect(net.ethernets.eth0.match.macaddress).toBe(macFromId(id));
    expect(readFileSync(result.path).includes(Buffer.from(PASSWORD))).toBe(false);

    // A retry (same machine id): the same single volume, rewritten (a fresh salt gives a new hash).
    const again = await seeds.writeSeed(input(id));
    expect(again.volume).toBe(result.volume);
    expect(again.path).toBe(result.path);
    const hash2 = (parse(isoinfo(['-J', '-i', again.path, '-x', '/user-data'])) as typeof doc).users[0]!
      .passwd;
    expect(hash2).not.toBe(doc.users[0]!.passwd);
    const names = await Promise.all(
      (await (await conn.lookupPoolByName(TEST_POOL)).listAllVolumes()).map((v) => v.getName()),
    );
    expect(names.filter((n) => n.includes(id))).toEqual([seedVolumeName(id)]);

    // The undo removes it; a second undo is a no-op.
    await seeds.deleteSeed({ pool: TEST_POOL, machineId: id });
    expect(await volumeOf(conn, id)).toBeNull();
    expect(existsSync(result.path)).toBe(false);
    await seeds.deleteSeed({ pool: TEST_POOL, machineId: id });
  });

  it('writes a Windows unattend ISO', async () => {
    const id = randomUUID();
    made.push(id);
    const r = await seeds.writeSeed(
      input(id, {
        kind: 'windows-unattend',
        provisioning: {
          hostname: 'win-seed',
          username: 'Alice Smith',
          sshKeys: [],
          hasPassword: true,
          hasProductKey: true,
          hasUserData: false,
        },
        guestSecrets: box.seal({ password: PASSWORD, productKey: 'ABCDE-12345-ABCDE-12345-ABCDE' }),
      }),
    );
    expect(isoinfo(['-d', '-i', r.path])).toMatch(/^Volume id: UNATTEND$/m);
    const xml = isoinfo(['-J', '-i', r.path, '-x', '/autounattend.xml']);
    expect(xml).toContain('<ComputerName>WIN-SEED</ComputerName>');
    expect(xml).toContain('<Name>Alice Smith</Name>');
    expect(xml).toContain('ABCDE-12345-ABCDE-12345-ABCDE');
    expect(xml).not.toContain(PASSWORD);
    await seeds.deleteSeed({ pool: TEST_POOL, machineId: id });
    expect(await volumeOf(conn, id)).toBeNull();
  });

  it('a seal that does not open fails for good, names no secret, and makes nothing', async () => {
    const id = randomUUID();
    const other = new SecretBox('another-key').seal({ password: PASSWORD });
    const err = await seeds.writeSeed(input(id, { guestSecrets: other })).then(
      () => null,
      (e: unknown) => e as Error & { type?: string; nonRetryable?: boolean },
    );
    expect(err).toMatchObject({ type: 'ValidationError', nonRetryable: true });
    expect(JSON.stringify({ m: err!.message, d: (err as { details?: unknown }).details })).not.toContain(
      PASSWORD,
    );
    expect(await volumeOf(conn, id)).toBeNull();
  });

  it('bad user data in the sealed part fails naming the field, not quoting it', async () => {
    const id = randomUUID();
    const secret = `secret-token-${randomUUID()}`;
    const err = (await seeds
      .writeSeed(input(id, { guestSecrets: box.seal({ password: PASSWORD, userData: `token: [${secret}` }) }))
      .catch((e: unknown) => e)) as Error & { type?: string; details?: unknown[] };
    expect(err.type).toBe('ValidationError');
    expect(err.details).toEqual([{ field: 'userData' }]);
    expect(err.message).not.toContain(secret);
    expect(await volumeOf(conn, id)).toBeNull();
  });

  it('a fault while writing the volume removes the volume it made', async () => {
    const id = randomUUID();
    made.push(id);
    // The real libvirt, except that the new volume's upload stream fails once: the write cannot finish.
    const faulty = new LibvirtProvider(LIBVIRT_URI);
    const real = await faulty.get();
    let failed = false;
    const volProxy = (v: StorageVolume): StorageVolume =>
      intercept(v, {
        uploadFile:
          (real) =>
          (...args: Parameters<StorageVolume['uploadFile']>) => {
            if (failed) return real(...args);
            failed = true;
            return Promise.reject(new Error('injected: upload stream broke'));
          },
      });
    const poolProxy = (pl: StoragePool): StoragePool =>
      intercept(pl, { createVolume: (real) => async (xml: string) => volProxy(await real(xml)) });
    const connProxy = intercept(real, {
      lookupPoolByName: (lookup) => async (n: string) => poolProxy(await lookup(n)),
    });
    const faultySeeds = createSeedActivities({
      libvirt: { get: async () => connProxy } as unknown as LibvirtProvider,
      secrets: box,
    });
    await expect(faultySeeds.writeSeed(input(id))).rejects.toThrow('injected');
    expect(failed).toBe(true);
    expect(await volumeOf(conn, id)).toBeNull();
    // The retry then succeeds, as Temporal would run it.
    const r = await faultySeeds.writeSeed(input(id));
    expect(await volumeOf(conn, id)).not.toBeNull();
    await seeds.deleteSeed({ pool: TEST_POOL, machineId: id });
    expect(existsSync(r.path)).toBe(false);
    await faulty.close();
  });

  it.each([
    ['pc', 'bios'],
    ['q35', 'efi'],
  ] as const)(
    'libvirt defines a %s/%s domain on a linked overlay with the seed CD-ROM, console, both agents and SMBIOS serial',
    async (machine, firmware) => {
      const id = randomUUID();
      made.push(id);
      const seed = await seeds.writeSeed(input(id));
      const pool = await conn.lookupPoolByName(TEST_POOL);
      const tag = `vmflow-test-seed-${id.slice(0, 8)}`;
      const base = await pool.createVolume(
        buildVolumeXml({ name: `${tag}-base.qcow2`, capacityBytes: 64 * 1024 ** 2, format: 'qcow2' }),
      );
      let overlay: StorageVolume | undefined;
      let dom: Domain | undefined;
      try {
        const basePath = await base.getPath();
        overlay = await pool.createVolume(
          buildVolumeXml({
            name: `${tag}-disk.qcow2`,
            capacityBytes: 128 * 1024 ** 2,
            format: 'qcow2',
            backingStore: { path: basePath, format: 'qcow2' },
          }),
        );
        const diskPath = await overlay.getPath();
        dom = await conn.defineDomain(
          buildDomainXml({
            name: tag,
            uuid: id,
            type: domainType(),
            machine,
            firmware,
            memoryMiB: 64,
            vcpus: 1,
            disks: [
              {
                path: diskPath,
                format: 'qcow2',
                target: 'vda',
                bus: 'virtio',
                boot: 1,
                backingStore: { path: basePath, format: 'qcow2' },
              },
              seedCdromDisk(seed.path, machine),
            ],
            interfaces: [],
            guestAgent: true,
            vmflowAgent: true,
            smbiosSerial: id,
          }),
        );
        const parsed = parseDomainXml(await dom.getXML({ inactive: true }));
        expect(parsed.uuid).toBe(id);
        expect(parsed.smbiosSerial).toBe(id);
        expect(parsed.firmware).toBe(firmware === 'efi' ? 'efi' : undefined);
        expect(parsed.disks).toEqual([
          expect.objectContaining({
            path: diskPath,
            format: 'qcow2',
            backingStore: { path: basePath, format: 'qcow2' },
          }),
          expect.objectContaining({
            path: seed.path,
            format: 'raw',
            device: 'cdrom',
            readonly: true,
            bus: machine === 'q35' ? 'sata' : 'ide',
          }),
        ]);
        expect(parsed).toMatchObject({ guestAgent: true, vmflowAgent: true, serialConsole: true });
      } finally {
        await removeDomain(dom);
        await overlay?.delete();
        await base.delete();
      }
    },
  );
});
