/** Look-ups of the host's storage pools and volumes, shared by the volume and seed activities. */
import { type StoragePool, type StorageVolume } from '../libvirt/connection';
import { LibvirtErrorCode } from '../libvirt/errors';
import { type LibvirtProvider } from '../libvirt/provider';
import { nullIfMissing } from './missing';

/** The pool named `name`, started if it is not running. */
export async function activePool(libvirt: LibvirtProvider, name: string): Promise<StoragePool> {
  const conn = await libvirt.get();
  const p = await conn.lookupPoolByName(name);
  if (!(await p.isActive())) await p.create();
  return p;
}

/** The volume `name` of pool `p`, or null when it does not exist. */
export function findVolume(p: StoragePool, name: string): Promise<StorageVolume | null> {
  return nullIfMissing(LibvirtErrorCode.NO_STORAGE_VOL, () => p.lookupVolumeByName(name));
}
