import { ApplicationFailure } from '@temporalio/common';
import { isLibvirtError, LibvirtErrorCode } from '../libvirt/errors';
import { type LibvirtProvider } from '../libvirt/provider';
import { buildVolumeXml } from '../libvirt/xml';
import { FailureType } from '../workflows/shared';
import { nullIfMissing } from './missing';
import { activePool, findVolume } from './pools';
import { withHeartbeat } from './retry';

/** Dependencies of the storage activities. */
export interface StorageActivityDeps {
  libvirt: LibvirtProvider;
}

const GiB = 1024 ** 3;

/**
 * Volume activities on the host's storage pool. Run on the host's task queue. Volume names are derived
 * from the machine id, so "create" means "create unless it is there" and "delete" means "delete if it is".
 */
export function createStorageActivities({ libvirt }: StorageActivityDeps) {
  const pool = (name: string) => activePool(libvirt, name);

  return {
    /**
     * Creates the machine's qcow2 disk unless it exists: empty, a full copy of `cloneFromPath`, or a
     * linked clone (qcow2 overlay) on `backingPath`. Returns its path.
     */
    async createVolume(input: {
      pool: string;
      name: string;
      capacityGiB: number;
      cloneFromPath?: string;
      backingPath?: string;
      /** The backing file's format (default qcow2: a machine's disk; an image may be raw). */
      backingFormat?: 'qcow2' | 'raw';
    }): Promise<{ path: string }> {
      const p = await pool(input.pool);
      let vol = await findVolume(p, input.name);
      if (!vol) {
        const capacityBytes = input.capacityGiB * GiB;
        if (input.cloneFromPath) {
          const conn = await libvirt.get();
          const source = await conn.lookupVolumeByPath(input.cloneFromPath);
          const xml = buildVolumeXml({ name: input.name, capacityBytes, format: 'qcow2' });
          // A full copy can take minutes on real disks: heartbeat so the server sees progress.
          vol = await withHeartbeat(() => p.cloneVolume(xml, source), { step: 'clone volume' });
        } else {
          const xml = buildVolumeXml({
            name: input.name,
            capacityBytes,
            format: 'qcow2',
            backingStore: input.backingPath
              ? { path: input.backingPath, format: input.backingFormat ?? 'qcow2' }
              : undefined,
          });
          vol = await p.createVolume(xml);
        }
      }
      // libvirt's copy keeps its source's size: a copy of an image is grown to the size asked for (here,
      // not right after the copy, so that a retry after a crash between the two still grows it).
      if (input.cloneFromPath && (await vol.getInfo()).capacity < input.capacityGiB * GiB)
        await vol.resize(input.capacityGiB * GiB);
      const path = await vol.getPath();
      return { path };
    },

    /** Deletes a volume if it exists. */
    async deleteVolume(input: { pool: string; name: string }): Promise<void> {
      const p = await pool(input.pool);
      const vol = await findVolume(p, input.name);
      if (vol) {
        try {
          await vol.delete();
        } catch (e) {
          if (!isLibvirtError(e, LibvirtErrorCode.NO_STORAGE_VOL)) throw e;
        }
      }
    },

    /** The capacity of a volume in GiB (rounded down), or null when it does not exist. */
    async getVolumeCapacity(input: { pool: string; name: string }): Promise<number | null> {
      const vol = await findVolume(await pool(input.pool), input.name);
      return vol ? Math.floor((await vol.getInfo()).capacity / GiB) : null;
    },

    /**
     * Grows a machine's disk to `capacityGiB`: through QEMU (block resize) while the domain runs, on the
     * volume itself while it is off. Disks only grow: a smaller size is refused (a shrink would destroy
     * the guest's data). Growing to the current size is a no-op.
     */
    async growDisk(input: {
      internalName: string;
      pool: string;
      name: string;
      capacityGiB: number;
    }): Promise<void> {
      const vol = await findVolume(await pool(input.pool), input.name);
      if (!vol)
        throw ApplicationFailure.create({
          type: FailureType.NotFound,
          message: `volume ${input.name} not found`,
          nonRetryable: true,
        });
      const current = (await vol.getInfo()).capacity;
      const wanted = input.capacityGiB * GiB;
      if (wanted < current) {
        throw ApplicationFailure.create({
          type: FailureType.Refused,
          message: `disks only grow: ${input.capacityGiB} GiB is less than the current ${Math.ceil(current / GiB)} GiB`,
          nonRetryable: true,
          details: [{ field: 'storage' }],
        });
      }
      if (wanted > current) {
        const conn = await libvirt.get();
        const dom = await nullIfMissing(LibvirtErrorCode.NO_DOMAIN, () =>
          conn.lookupDomainByName(input.internalName),
        );
        if (dom && (await dom.isActive())) await dom.blockResize(await vol.getPath(), wanted);
        else await vol.resize(wanted);
      }
    },
  };
}

export type StorageActivities = ReturnType<typeof createStorageActivities>;
