/** Reads what a machine left behind in libvirt and the database: the proof that a saga cleaned up. */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { type DataSource } from 'typeorm';
import { Machine } from '../../src/entities/machine';
import { isLibvirtError } from '../../src/libvirt/errors';
import { type LibvirtProvider } from '../../src/libvirt/provider';
import { parsePoolXml } from '../../src/libvirt/xml';
import { libvirtNames } from '../../src/workflows/shared';
import { TEST_POOL } from './stack';

/** What exists for a machine id. */
export interface Traces {
  domain: boolean;
  volume: boolean;
  vmFilter: boolean;
  bindings: number;
  row: Machine | null;
}

async function exists(fn: () => Promise<unknown>): Promise<boolean> {
  try {
    await fn();
    return true;
  } catch (e) {
    if (isLibvirtError(e)) return false;
    throw e;
  }
}

/** Looks up every resource vmflow makes for a machine. */
export async function tracesOf(
  machineId: string,
  deps: { libvirt: LibvirtProvider; dataSource: DataSource },
): Promise<Traces> {
  const conn = await deps.libvirt.get();
  const pool = await conn.lookupPoolByName(TEST_POOL);
  // Both what libvirt knows and what is on disk, without a pool refresh: a refresh fails while another
  // run on this machine copies a volume in the same pool ("asynchronous jobs running").
  const poolPath = parsePoolXml(await pool.getXML()).path;
  const volumeName = libvirtNames.volume(machineId);
  const filter = libvirtNames.vmFilter(machineId);
  let bindings = 0;
  for (const b of await conn.listAllNWFilterBindings()) if ((await b.getFilterName()) === filter) bindings++;
  return {
    domain: await exists(() => conn.lookupDomainByName(libvirtNames.domain(machineId))),
    volume:
      (await exists(() => pool.lookupVolumeByName(volumeName))) ||
      (poolPath !== undefined && existsSync(path.join(poolPath, volumeName))),
    vmFilter: await exists(() => conn.lookupNWFilterByName(filter)),
    bindings,
    row: await deps.dataSource.getRepository(Machine).findOne({ where: { id: machineId } }),
  };
}

/** Nothing on the hypervisor for this machine. */
export const NO_HYPERVISOR_TRACE = { domain: false, volume: false, vmFilter: false, bindings: 0 };

/**
 * The vmflow filters (department, custom, VM) among `names` that still exist in libvirt, and the bindings of
 * any of them: what a firewall workflow or a destroy must not leave behind.
 */
export async function filterLeftovers(
  names: string[],
  deps: { libvirt: LibvirtProvider },
): Promise<{ filters: string[]; bindings: string[] }> {
  const conn = await deps.libvirt.get();
  const filters: string[] = [];
  for (const name of names) if (await exists(() => conn.lookupNWFilterByName(name))) filters.push(name);
  const bindings: string[] = [];
  for (const b of await conn.listAllNWFilterBindings()) {
    const filter = await b.getFilterName().catch(() => null);
    if (filter && names.includes(filter)) bindings.push(filter);
  }
  return { filters, bindings };
}
