/**
 * ISO 9660 seed images, made by `genisoimage` (Debian package `genisoimage`, installed by set-up) with
 * Joliet and Rock Ridge, so the lowercase long names `meta-data`, `user-data`, `network-config` and
 * `autounattend.xml` reach the guest as they are. Everything is written in a private temporary folder
 * (0700, files 0600) that is removed when the caller's function returns or throws: seed files hold a
 * password hash and nothing of them outlives the step.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type SeedFiles } from './cloud-init';

const run = promisify(execFile);

/** A seed ISO on disk while the callback runs. */
export interface SeedIso {
  /** Absolute path of the ISO (0600, in a 0700 folder). */
  path: string;
  /** Its size in bytes (a multiple of 2048). */
  size: number;
}

/** Seed file names: plain names, no folders (genisoimage puts each file at the root). */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** ISO 9660 volume ids: up to 32 characters (d-characters plus lowercase, which genisoimage keeps). */
const VOLUME_ID = /^[A-Za-z0-9_]{1,32}$/;

/**
 * Writes `files` into an ISO labelled `label`, runs `use` with it, and removes every trace afterwards,
 * whatever `use` does. Fails with genisoimage's own message (which names no file content) when it fails.
 */
export async function withSeedIso<T>(
  files: SeedFiles,
  label: string,
  use: (iso: SeedIso) => Promise<T>,
  opts: { tmpRoot?: string } = {},
): Promise<T> {
  if (!VOLUME_ID.test(label))
    throw new RangeError(`volume label must be 1-32 of A-Z a-z 0-9 _, got ${JSON.stringify(label)}`);
  if (files.size === 0) throw new RangeError('a seed needs at least one file');
  for (const name of files.keys())
    if (!FILE_NAME.test(name))
      throw new RangeError(`seed file name ${JSON.stringify(name)} is not a plain file name`);

  const dir = await mkdtemp(join(opts.tmpRoot ?? tmpdir(), 'vmflow-seed-'));
  try {
    await chmod(dir, 0o700);
    const content = join(dir, 'content');
    await mkdir(content, { mode: 0o700 });
    const paths: string[] = [];
    for (const [name, bytes] of files) {
      const p = join(content, name);
      await writeFile(p, bytes, { mode: 0o600, flag: 'wx' });
      paths.push(p);
    }
    const iso = join(dir, 'seed.iso');
    // The ISO is created 0600 before genisoimage opens it, so it is never readable by others.
    await writeFile(iso, '', { mode: 0o600, flag: 'wx' });
    try {
      await run(
        'genisoimage',
        ['-quiet', '-output', iso, '-volid', label, '-joliet', '-rock', '-input-charset', 'utf-8', ...paths],
        { timeout: 60_000, maxBuffer: 1024 * 1024 },
      );
    } catch (e) {
      const err = e as NodeJS.ErrnoException & { stderr?: string };
      if (err.code === 'ENOENT')
        throw new Error(
          'genisoimage is not installed (Debian: apt-get install genisoimage; scripts/setup.sh does it)',
        );
      throw new Error(
        `genisoimage failed: ${(err.stderr ?? err.message).trim().split('\n').slice(-3).join(' ')}`,
      );
    }
    const { size } = await stat(iso);
    return await use({ path: iso, size });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
