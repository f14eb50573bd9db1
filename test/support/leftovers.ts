/**
 * Reads what a machine or an image operation left behind in libvirt, the database and the staging folder: the
 * proof that a saga cleaned up.
 */
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { type DataSource } from 'typeorm';
import { Image } from '../../src/entities/image';
import { Machine } from '../../src/entities/machine';
import { Operation } from '../../src/entities/operation';
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

/**
 * Whether a volume of the test pool exists: what libvirt knows or what is on disk, without a pool refresh (a
 * refresh fails while another run on this machine copies a volume in the same pool: "asynchronous jobs
 * running").
 */
async function volumeExists(libvirt: LibvirtProvider, name: string): Promise<boolean> {
  const pool = await (await libvirt.get()).lookupPoolByName(TEST_POOL);
  const poolPath = parsePoolXml(await pool.getXML()).path;
  return (
    (await exists(() => pool.lookupVolumeByName(name))) ||
    (poolPath !== undefined && existsSync(path.join(poolPath, name)))
  );
}

/** Looks up every resource vmflow makes for a machine. */
export async function tracesOf(
  machineId: string,
  deps: { libvirt: LibvirtProvider; dataSource: DataSource },
): Promise<Traces> {
  const conn = await deps.libvirt.get();
  const volumeName = libvirtNames.volume(machineId);
  const filter = libvirtNames.vmFilter(machineId);
  let bindings = 0;
  for (const b of await conn.listAllNWFilterBindings()) if ((await b.getFilterName()) === filter) bindings++;
  return {
    domain: await exists(() => conn.lookupDomainByName(libvirtNames.domain(machineId))),
    volume: await volumeExists(deps.libvirt, volumeName),
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

/** What image operations left behind (see {@link imageLeftovers}). */
export interface ImageLeftovers {
  /** `vmflow-image-<id>` volumes of images that have no row. */
  volumes: string[];
  /** Staging files whose operation is not running (ended, or never started). */
  staging: Array<{ file: string; operation: string | null }>;
}

/** Staging files as the API names them: `image-<imageId>-<operationId>.part`. */
const STAGING_FILE = /^image-([0-9a-f-]{36})-([0-9a-f-]{36})\.part$/;

/**
 * What image operations left behind: the volume of any of `imageIds` (the images a suite made) whose row is
 * gone, and every staging file in `stagingDir` (the suite's own) whose operation is not running — its
 * workflow removes the file before it records its outcome, and an upload that started no operation
 * removes its own. Run it when no upload is in flight. Scoped to the suite's images: the pool is shared
 * with other runs on this machine.
 */
export async function imageLeftovers(
  imageIds: string[],
  deps: { libvirt: LibvirtProvider; dataSource: DataSource; stagingDir: string },
): Promise<ImageLeftovers> {
  const volumes: string[] = [];
  for (const id of imageIds) {
    if (await deps.dataSource.getRepository(Image).exists({ where: { id } })) continue;
    const name = libvirtNames.imageVolume(id);
    if (await volumeExists(deps.libvirt, name)) volumes.push(name);
  }
  const staging: ImageLeftovers['staging'] = [];
  for (const file of existsSync(deps.stagingDir) ? readdirSync(deps.stagingDir).sort() : []) {
    const operationId = STAGING_FILE.exec(file)?.[2];
    const op = operationId
      ? await deps.dataSource
          .getRepository(Operation)
          .findOne({ where: { id: operationId }, select: { id: true, status: true } })
      : null;
    if (op?.status !== 'running') staging.push({ file, operation: op?.status ?? null });
  }
  return { volumes, staging };
}

/** Nothing left behind by image operations. */
export const NO_IMAGE_LEFTOVERS: ImageLeftovers = { volumes: [], staging: [] };
