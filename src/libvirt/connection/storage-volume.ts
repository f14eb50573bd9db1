/** A libvirt storage volume (`native/src/storage.cc`). */
import { type NativeStorageVolume } from '../native';
import { flagsOf, nameOf } from './common';

/** A storage volume's type (`virStorageVolType`). */
export type StorageVolumeType = 'file' | 'block' | 'dir' | 'network' | 'netdir' | 'ploop';
const VOLUME_TYPES: readonly StorageVolumeType[] = ['file', 'block', 'dir', 'network', 'netdir', 'ploop'];

/** A volume (disk image) in a storage pool. */
export class StorageVolume {
  /** @internal The native handle (used by {@link StoragePool.cloneVolume}). */
  readonly nativeHandle: NativeStorageVolume;

  /** @internal Obtained from a {@link Connection} or {@link StoragePool}. */
  constructor(native: NativeStorageVolume) {
    this.nativeHandle = native;
  }

  /** The volume's name within its pool. */
  getName(): Promise<string> {
    return this.nativeHandle.getName();
  }
  /** The volume's unique key (for file volumes, the path). */
  getKey(): Promise<string> {
    return this.nativeHandle.getKey();
  }
  /** The volume's path on the host. */
  getPath(): Promise<string> {
    return this.nativeHandle.getPath();
  }
  /** Type and sizes in bytes (capacity: virtual size; allocation: used on disk). */
  async getInfo(): Promise<{ type: StorageVolumeType; capacity: number; allocation: number }> {
    const i = await this.nativeHandle.getInfo();
    return { ...i, type: nameOf(VOLUME_TYPES, i.type, 'type') as StorageVolumeType };
  }
  /** The volume XML. */
  getXML(): Promise<string> {
    return this.nativeHandle.getXML();
  }
  /** Deletes the volume. */
  delete(opts?: { withSnapshots?: boolean }): Promise<void> {
    return this.nativeHandle.delete(
      flagsOf(opts, { withSnapshots: 'VIR_STORAGE_VOL_DELETE_WITH_SNAPSHOTS' }),
    );
  }
  /** Resizes to `bytes` (or by `bytes` with `delta`); shrinking needs `shrink`. */
  resize(bytes: number, opts?: { allocate?: boolean; delta?: boolean; shrink?: boolean }): Promise<void> {
    return this.nativeHandle.resize(
      bytes,
      flagsOf(opts, {
        allocate: 'VIR_STORAGE_VOL_RESIZE_ALLOCATE',
        delta: 'VIR_STORAGE_VOL_RESIZE_DELTA',
        shrink: 'VIR_STORAGE_VOL_RESIZE_SHRINK',
      }),
    );
  }
  /**
   * Writes `length` bytes of the file at `path` (read from `fileOffset`, default: `offset`) into the
   * volume at `offset`, through libvirt's upload stream, on the thread pool in 1 MiB chunks (the file is
   * never held in memory). The file must hold those bytes. On any failure the stream is aborted and the
   * promise rejects with a {@link LibvirtError} (file-system errors: code SYSTEM_ERROR, errno in `int1`).
   * Resolves to the number of bytes written. The file is read by this process: on the host's worker.
   */
  uploadFile(path: string, opts: { offset?: number; length: number; fileOffset?: number }): Promise<number> {
    const offset = opts.offset ?? 0;
    return this.nativeHandle.uploadFile(path, opts.fileOffset ?? offset, offset, opts.length);
  }
  /**
   * Writes the volume's bytes from `offset` (`length` of them; omitted or 0: to the end of the volume)
   * into the file at `path` (created or truncated, mode 0600), through libvirt's download stream.
   * Resolves to the number of bytes written.
   */
  downloadFile(path: string, opts: { offset?: number; length?: number } = {}): Promise<number> {
    return this.nativeHandle.downloadFile(path, opts.offset ?? 0, opts.length ?? 0);
  }
}
