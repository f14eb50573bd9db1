/**
 * Volume streams through the binding: a multi-MiB file uploaded in segments (not aligned to the binding's
 * 1 MiB chunks) comes back byte-identical through a download; failing uploads reject with a LibvirtError
 * and leak nothing (no file descriptor in this process, no volume held busy in libvirtd).
 */
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  Connection,
  LibvirtError,
  LibvirtErrorCode,
  type StoragePool,
  type StorageVolume,
} from '../../../src/libvirt/connection';
import { getNative } from '../../../src/libvirt/native';
import { LIBVIRT_URI, collectGarbage, createPool, removePool } from './support';

const MiB = 1024 * 1024;

function rawVolumeXml(name: string, capacityBytes: number): string {
  return `<volume><name>${name}</name><capacity unit='bytes'>${capacityBytes}</capacity>
  <allocation unit='bytes'>0</allocation><target><format type='raw'/></target></volume>`;
}

async function sha256File(file: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

describe('Storage volume streams (libvirt binding)', () => {
  let conn: Connection;
  let pool: StoragePool | undefined;
  let dir: string;

  beforeAll(async () => {
    conn = await Connection.open(LIBVIRT_URI);
    pool = await createPool(conn, 'stream');
    dir = await mkdtemp(path.join(tmpdir(), 'vmflow-stream-'));
  });

  afterAll(async () => {
    await removePool(pool);
    await conn?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('uploads a file in segments and downloads it back byte-identical', async () => {
    const size = 5 * MiB + 12345; // odd size: the last chunk and segment are partial
    const src = path.join(dir, 'src.img');
    await writeFile(src, randomBytes(size));
    const vol = await pool!.createVolume(rawVolumeXml('up.img', size));

    const segment = 2 * MiB + 777; // segments cross the binding's 1 MiB chunk boundaries
    let sent = 0;
    for (let offset = 0; offset < size; offset += segment) {
      const length = Math.min(segment, size - offset);
      sent += await vol.uploadFile(src, { offset, length });
    }
    expect(sent).toBe(size);

    const back = path.join(dir, 'back.img');
    expect(await vol.downloadFile(back)).toBe(size);
    expect((await stat(back)).size).toBe(size);
    expect(await sha256File(back)).toBe(await sha256File(src));

    // A window in the middle, and a file offset different from the volume offset.
    const part = path.join(dir, 'part.img');
    expect(await vol.downloadFile(part, { offset: MiB + 3, length: 4096 })).toBe(4096);
    const original = await readFile(src);
    expect((await readFile(part)).equals(original.subarray(MiB + 3, MiB + 3 + 4096))).toBe(true);
    await vol.uploadFile(src, { offset: 0, length: 4096, fileOffset: MiB + 3 });
    await vol.downloadFile(part, { offset: 0, length: 4096 });
    expect((await readFile(part)).equals(original.subarray(MiB + 3, MiB + 3 + 4096))).toBe(true);

    await vol.delete();
  });

  describe('failures', () => {
    let vol: StorageVolume;
    let src: string;
    const size = 2 * MiB;

    beforeAll(async () => {
      src = path.join(dir, 'fail-src.img');
      await writeFile(src, randomBytes(size));
      vol = await pool!.createVolume(rawVolumeXml('fail.img', MiB));
    });

    /** Runs a failing call and proves it leaked nothing: no fd here, no handle, the volume not held. */
    async function expectCleanFailure(call: () => Promise<unknown>): Promise<LibvirtError> {
      // Earlier tests' unreferenced wrappers are finalised first: the counts compare this call alone.
      await collectGarbage();
      const fds = openFds();
      const handles = getNative().debugCounters().handles;
      const err = await call().then(
        () => {
          throw new Error('expected a rejection');
        },
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(LibvirtError);
      await collectGarbage();
      expect(openFds()).toBe(fds);
      expect(getNative().debugCounters().handles).toBe(handles);
      // libvirtd marks a volume busy for the length of a transfer; an aborted stream released it, so a
      // new transfer on it works at once.
      const probe = path.join(dir, 'probe.img');
      expect(await vol.downloadFile(probe, { length: 512 })).toBe(512);
      return err as LibvirtError;
    }

    it('rejects an upload beyond the volume capacity', async () => {
      const err = await expectCleanFailure(() => vol.uploadFile(src, { offset: 4 * MiB, length: MiB }));
      expect(err.message).toMatch(/capacity|offset|length|exceed/i);
    });

    it('rejects an upload longer than the volume (libvirt alone would grow the file)', async () => {
      const err = await expectCleanFailure(() => vol.uploadFile(src, { offset: 0, length: size }));
      expect(err.code).toBe(LibvirtErrorCode.INVALID_ARG);
      expect((await vol.getInfo()).capacity).toBe(MiB);
    });

    it('rejects an upload of a missing file with SYSTEM_ERROR and the errno', async () => {
      const err = await expectCleanFailure(() =>
        vol.uploadFile(path.join(dir, 'missing.img'), { offset: 0, length: 10 }),
      );
      expect(err.code).toBe(LibvirtErrorCode.SYSTEM_ERROR);
      expect(err.message).toContain('missing.img');
    });

    it('rejects an upload of more bytes than the file holds', async () => {
      const err = await expectCleanFailure(() => vol.uploadFile(src, { offset: 0, length: size + 1 }));
      expect(err.code).toBe(LibvirtErrorCode.INVALID_ARG);
    });

    it("rejects with libvirt's own error when the volume is gone", async () => {
      const gone = await pool!.createVolume(rawVolumeXml('gone.img', MiB));
      await gone.delete();
      const err = await expectCleanFailure(() => gone.uploadFile(src, { offset: 0, length: 4096 }));
      expect(err.code).toBe(LibvirtErrorCode.NO_STORAGE_VOL);
    });

    it('rejects a download into an unwritable path', async () => {
      const err = await expectCleanFailure(() => vol.downloadFile(path.join(dir, 'no/such/dir/x.img')));
      expect(err.code).toBe(LibvirtErrorCode.SYSTEM_ERROR);
    });
  });
});
