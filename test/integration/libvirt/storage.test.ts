/**
 * Storage through the binding: a dir pool's whole life, and qcow2 volumes — create, full clone,
 * linked clone (checked with `qemu-img info`), grow, look up by path, delete.
 */
import { existsSync } from 'node:fs';
import { Connection, LibvirtErrorCode, type StoragePool } from '../../../src/libvirt/connection';
import {
  LIBVIRT_URI,
  PREFIX,
  createPool,
  dirPoolXml,
  execFileAsync,
  qcow2VolumeXml,
  removePool,
  uniqueName,
} from './support';

const MiB = 1024 * 1024;

async function qemuImgInfo(
  path: string,
): Promise<{ format: string; 'virtual-size': number; 'backing-filename'?: string }> {
  const { stdout } = await execFileAsync('qemu-img', ['info', '-U', '--output=json', path]);
  return JSON.parse(stdout) as { format: string; 'virtual-size': number; 'backing-filename'?: string };
}

describe('Storage pools and volumes (libvirt binding)', () => {
  let conn: Connection;

  beforeAll(async () => {
    conn = await Connection.open(LIBVIRT_URI);
  });

  afterAll(async () => {
    await conn?.close();
  });

  it('defines, builds, starts, refreshes, inspects, stops and removes a dir pool', async () => {
    const name = uniqueName('pool');
    const dir = `/var/lib/vmflow/test-bind-pool-${name.slice(PREFIX.length)}`;
    const pool = await conn.definePool(dirPoolXml(name, dir), { validate: true });
    try {
      expect(await pool.getName()).toBe(name);
      expect(await pool.isPersistent()).toBe(true);
      expect((await pool.getInfo()).state).toBe('inactive');
      expect(
        await Promise.all((await conn.listAllPools({ inactive: true })).map((p) => p.getName())),
      ).toContain(name);

      await pool.build();
      expect(existsSync(dir)).toBe(true);
      await pool.create();
      expect(await pool.isActive()).toBe(true);
      await pool.refresh();
      const info = await pool.getInfo();
      expect(info.state).toBe('running');
      expect(info.capacity).toBeGreaterThan(0);
      expect(info.available).toBeGreaterThan(0);
      expect(info.allocation).toBeGreaterThanOrEqual(0);
      expect(await pool.getXML()).toContain(`<path>${dir}</path>`);
      expect(await (await conn.lookupPoolByUUID(await pool.getUUID())).getName()).toBe(name);
      expect(
        await Promise.all((await conn.listAllPools({ active: true })).map((p) => p.getName())),
      ).toContain(name);

      await pool.setAutostart(true);
      expect(await pool.getAutostart()).toBe(true);
      expect(
        await Promise.all((await conn.listAllPools({ autostart: true })).map((p) => p.getName())),
      ).toContain(name);
      await pool.setAutostart(false);
      expect(await pool.getAutostart()).toBe(false);

      await pool.destroy();
      expect(await pool.isActive()).toBe(false);
      await pool.delete();
      expect(existsSync(dir)).toBe(false);
      await pool.undefine();
      await expect(conn.lookupPoolByName(name)).rejects.toMatchObject({
        code: LibvirtErrorCode.NO_STORAGE_POOL,
      });
    } finally {
      await removePool(pool);
    }
  });

  describe('volumes', () => {
    let pool: StoragePool | undefined;

    beforeAll(async () => {
      pool = await createPool(conn);
    });

    afterAll(async () => {
      await removePool(pool);
    });

    it('creates, clones (full and linked), grows, finds and deletes qcow2 volumes', async () => {
      const base = await pool!.createVolume(qcow2VolumeXml('base.qcow2', 32 * MiB));
      const basePath = await base.getPath();
      expect(await base.getName()).toBe('base.qcow2');
      expect(await base.getKey()).toBe(basePath);
      expect(await base.getInfo()).toMatchObject({ type: 'file', capacity: 32 * MiB });
      expect((await qemuImgInfo(basePath)).format).toBe('qcow2');

      // Full copy: same size, no backing file.
      const full = await pool!.cloneVolume(qcow2VolumeXml('full.qcow2', 32 * MiB), base);
      const fullInfo = await qemuImgInfo(await full.getPath());
      expect(fullInfo.format).toBe('qcow2');
      expect(fullInfo['virtual-size']).toBe(32 * MiB);
      expect(fullInfo['backing-filename']).toBeUndefined();

      // Linked clone: a qcow2 overlay whose backing file is the base.
      const linked = await pool!.createVolume(qcow2VolumeXml('linked.qcow2', 32 * MiB, basePath));
      const linkedInfo = await qemuImgInfo(await linked.getPath());
      expect(linkedInfo['backing-filename']).toBe(basePath);
      expect(await linked.getXML()).toContain(`<path>${basePath}</path>`);

      // Grow.
      await full.resize(64 * MiB);
      expect((await full.getInfo()).capacity).toBe(64 * MiB);
      expect((await qemuImgInfo(await full.getPath()))['virtual-size']).toBe(64 * MiB);
      await full.resize(16 * MiB, { delta: true });
      expect((await full.getInfo()).capacity).toBe(80 * MiB);

      // Lookups.
      expect(await (await conn.lookupVolumeByPath(await linked.getPath())).getName()).toBe('linked.qcow2');
      expect(await (await pool!.lookupVolumeByName('full.qcow2')).getPath()).toBe(await full.getPath());
      const names = await Promise.all((await pool!.listAllVolumes()).map((v) => v.getName()));
      expect(names.sort()).toEqual(['base.qcow2', 'full.qcow2', 'linked.qcow2']);

      // Delete (overlay first, then its base).
      const linkedPath = await linked.getPath();
      await linked.delete();
      expect(existsSync(linkedPath)).toBe(false);
      await expect(conn.lookupVolumeByPath(linkedPath)).rejects.toMatchObject({
        code: LibvirtErrorCode.NO_STORAGE_VOL,
      });
      await full.delete();
      await base.delete();
      await pool!.refresh();
      expect(await pool!.listAllVolumes()).toHaveLength(0);
    });
  });
});
