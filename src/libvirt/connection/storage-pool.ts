/** A libvirt storage pool (`native/src/storage.cc`). */
import { type NativeStoragePool } from '../native';
import { flagsOf, nameOf } from './common';
import { StorageVolume } from './storage-volume';

/** A storage pool's state (`virStoragePoolState`). */
export type StoragePoolState = 'inactive' | 'building' | 'running' | 'degraded' | 'inaccessible';
const POOL_STATES: readonly StoragePoolState[] = [
  'inactive',
  'building',
  'running',
  'degraded',
  'inaccessible',
];

/** A libvirt storage pool (here: a directory of image files). */
export class StoragePool {
  readonly #native: NativeStoragePool;

  /** @internal Obtained from a {@link Connection}. */
  constructor(native: NativeStoragePool) {
    this.#native = native;
  }

  /** The pool's name. */
  getName(): Promise<string> {
    return this.#native.getName();
  }
  /** The pool's UUID string. */
  getUUID(): Promise<string> {
    return this.#native.getUUID();
  }
  /** Builds the pool's underlying storage (for a dir pool: creates the directory). */
  build(opts?: { overwrite?: boolean; noOverwrite?: boolean }): Promise<void> {
    return this.#native.build(
      flagsOf(opts, {
        overwrite: 'VIR_STORAGE_POOL_BUILD_OVERWRITE',
        noOverwrite: 'VIR_STORAGE_POOL_BUILD_NO_OVERWRITE',
      }),
    );
  }
  /** Starts the pool. */
  create(): Promise<void> {
    return this.#native.create();
  }
  /** Rescans the pool's volumes. */
  refresh(): Promise<void> {
    return this.#native.refresh();
  }
  /** Stops the pool (its data stays). */
  destroy(): Promise<void> {
    return this.#native.destroy();
  }
  /** Deletes the pool's underlying storage (for a dir pool: removes the empty directory). */
  delete(): Promise<void> {
    return this.#native.delete();
  }
  /** Removes the persistent definition. */
  undefine(): Promise<void> {
    return this.#native.undefine();
  }
  /** Whether the pool runs. */
  isActive(): Promise<boolean> {
    return this.#native.isActive();
  }
  /** Whether the pool has a persistent definition. */
  isPersistent(): Promise<boolean> {
    return this.#native.isPersistent();
  }
  /** Whether the pool starts with the daemon. */
  getAutostart(): Promise<boolean> {
    return this.#native.getAutostart();
  }
  /** Sets whether the pool starts with the daemon. */
  setAutostart(on: boolean): Promise<void> {
    return this.#native.setAutostart(on);
  }
  /** The pool XML. */
  getXML(opts?: { inactive?: boolean }): Promise<string> {
    return this.#native.getXML(flagsOf(opts, { inactive: 'VIR_STORAGE_XML_INACTIVE' }));
  }
  /** State and sizes in bytes. */
  async getInfo(): Promise<{
    state: StoragePoolState;
    capacity: number;
    allocation: number;
    available: number;
  }> {
    const i = await this.#native.getInfo();
    return { ...i, state: nameOf(POOL_STATES, i.state, 'state') as StoragePoolState };
  }
  /** Creates a volume from XML (a qcow2 with `<backingStore>` makes a linked clone). */
  async createVolume(
    xml: string,
    opts?: { preallocMetadata?: boolean; validate?: boolean },
  ): Promise<StorageVolume> {
    const flags = flagsOf(opts, {
      preallocMetadata: 'VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA',
      validate: 'VIR_STORAGE_VOL_CREATE_VALIDATE',
    });
    return new StorageVolume(await this.#native.createVolume(xml, flags));
  }
  /** Creates a volume as a full copy of `source` (which may live in another pool). */
  async cloneVolume(
    xml: string,
    source: StorageVolume,
    opts?: { preallocMetadata?: boolean },
  ): Promise<StorageVolume> {
    const flags = flagsOf(opts, { preallocMetadata: 'VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA' });
    return new StorageVolume(await this.#native.cloneVolume(xml, source.nativeHandle, flags));
  }
  /** Looks a volume of this pool up by name; rejects with `NO_STORAGE_VOL` if there is none. */
  async lookupVolumeByName(name: string): Promise<StorageVolume> {
    return new StorageVolume(await this.#native.lookupVolumeByName(name));
  }
  /** Lists this pool's volumes. */
  async listAllVolumes(): Promise<StorageVolume[]> {
    return (await this.#native.listAllVolumes()).map((v) => new StorageVolume(v));
  }
}
