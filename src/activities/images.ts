/**
 * Host activities of the image workflows (host task queue): the image's volume, its content uploaded from
 * the staging file through libvirt's upload stream, what `qemu-img` says the content is, its sha256, and the
 * staging file's removal. Each is idempotent: "create unless there", "remove if there", and an upload
 * resumes from the offset its last heartbeat recorded.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { promisify } from 'node:util';
import { Context } from '@temporalio/activity';
import { CancelledFailure } from '@temporalio/common';
import { type StoragePool } from '../libvirt/connection';
import { LibvirtErrorCode } from '../libvirt/errors';
import { type LibvirtProvider } from '../libvirt/provider';
import { buildVolumeXml } from '../libvirt/xml';
import { FailureType } from '../workflows/shared';
import { permanent } from './failures';
import { nullIfMissing } from './missing';
import { reportProgress } from './retry';

const execFileAsync = promisify(execFile);

/** Dependencies of the image host activities. */
export interface ImageHostActivityDeps {
  libvirt: LibvirtProvider;
}

/** Bytes per upload segment: one stream each, and the resume point a heartbeat records. */
export const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;

/** Staging files the API writes: `image-<imageId>-<operationId>.part`. Nothing else is ever removed. */
const STAGING_FILE = /^image-[0-9a-f-]{36}-[0-9a-f-]{36}\.part$/;

/** What `qemu-img info` says about an image's volume. */
export interface ImageInspection {
  path: string;
  format: string;
  virtualSizeBytes: number;
  /** The file's size (bytes). */
  sizeBytes: number;
}

/** Reads `qemu-img info` of a file (`-U`: without taking its lock; a running guest may use a base image). */
async function qemuImgInfo(path: string): Promise<Record<string, unknown>> {
  const { stdout } = await execFileAsync('qemu-img', ['info', '-U', '--output=json', path], {
    maxBuffer: 1024 * 1024,
  });
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** The cancellation of the running activity, as the failure Temporal expects (learned through heartbeats). */
function throwIfCancelled(): void {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return;
  }
  if (ctx.cancellationSignal.aborted) throw new CancelledFailure('image upload cancelled');
}

/** Image activities on the host's storage pool. */
export function createImageHostActivities({ libvirt }: ImageHostActivityDeps) {
  async function pool(name: string): Promise<StoragePool> {
    const conn = await libvirt.get();
    const p = await nullIfMissing(LibvirtErrorCode.NO_STORAGE_POOL, () => conn.lookupPoolByName(name));
    if (!p) throw permanent(FailureType.NotFound, `storage pool ${name} not found`, { field: 'pool' });
    if (!(await p.isActive())) await p.create();
    return p;
  }
  const volume = async (poolName: string, name: string) => {
    const p = await pool(poolName);
    const v = await nullIfMissing(LibvirtErrorCode.NO_STORAGE_VOL, () => p.lookupVolumeByName(name));
    if (!v)
      throw permanent(FailureType.NotFound, `volume ${name} not found in pool ${poolName}`, {
        field: 'volume',
      });
    return v;
  };

  return {
    /**
     * Creates the (sparse, raw) volume an upload fills, `sizeBytes` long, unless it exists. The content
     * decides what it is: after the upload libvirt and `qemu-img` see the image's own format.
     */
    async createImageVolume(input: {
      pool: string;
      volumeName: string;
      sizeBytes: number;
    }): Promise<{ path: string }> {
      const p = await pool(input.pool);
      let v = await nullIfMissing(LibvirtErrorCode.NO_STORAGE_VOL, () =>
        p.lookupVolumeByName(input.volumeName),
      );
      if (!v)
        v = await p.createVolume(
          buildVolumeXml({
            name: input.volumeName,
            capacityBytes: input.sizeBytes,
            allocationBytes: 0,
            format: 'raw',
          }),
        );
      return { path: await v.getPath() };
    },

    /**
     * Writes the staging file into the volume through libvirt's upload stream, one segment per stream,
     * recording the offset reached in the heartbeat after each: a retry (another worker, after a crash)
     * resumes there. Stops between segments when cancelled.
     */
    async uploadImageContent(input: {
      pool: string;
      volumeName: string;
      stagingPath: string;
      sizeBytes: number;
      segmentBytes?: number;
    }): Promise<{ bytes: number; resumedAt: number }> {
      const v = await volume(input.pool, input.volumeName);
      const size = (await stat(input.stagingPath)).size;
      if (size !== input.sizeBytes)
        throw permanent(
          FailureType.Refused,
          `the staging file holds ${size} bytes, ${input.sizeBytes} were received`,
        );
      const segment = input.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
      let info: { heartbeatDetails?: unknown } = {};
      try {
        info = Context.current().info;
      } catch {
        // outside an activity: start at 0
      }
      const last = (info.heartbeatDetails as { offset?: unknown } | undefined)?.offset;
      const resumedAt = typeof last === 'number' && last >= 0 && last <= size ? last : 0;
      let offset = resumedAt;
      while (offset < size) {
        throwIfCancelled();
        const length = Math.min(segment, size - offset);
        await v.uploadFile(input.stagingPath, { offset, length });
        offset += length;
        reportProgress({ offset });
      }
      return { bytes: size, resumedAt };
    },

    /**
     * What the volume's content is (`qemu-img info`): refused (RefusedError, naming `format`) when it is not
     * the format the image declares, or when it is a qcow2 with a backing file (it would make guests read
     * a file of the host's).
     */
    async inspectImageVolume(input: {
      pool: string;
      volumeName: string;
      expectedFormat: string;
    }): Promise<ImageInspection> {
      const v = await volume(input.pool, input.volumeName);
      const path = await v.getPath();
      const info = await qemuImgInfo(path);
      const format = String(info.format);
      if (format !== input.expectedFormat)
        throw permanent(
          FailureType.Refused,
          `the content is ${format}, not the declared ${input.expectedFormat}`,
          { field: 'format' },
        );
      if (info['backing-filename'] !== undefined)
        throw permanent(FailureType.Refused, 'a qcow2 image with a backing file is not accepted', {
          field: 'format',
        });
      return {
        path,
        format,
        virtualSizeBytes: Number(info['virtual-size']),
        sizeBytes: (await stat(path)).size,
      };
    },

    /** The sha256 (hex) of a volume's file, read on the host while heartbeating the bytes done. */
    async hashImageVolume(input: { pool: string; volumeName: string }): Promise<{ sha256: string }> {
      const path = await (await volume(input.pool, input.volumeName)).getPath();
      const hash = createHash('sha256');
      let done = 0;
      for await (const chunk of createReadStream(path, { highWaterMark: 1024 * 1024 })) {
        throwIfCancelled();
        hash.update(chunk as Buffer);
        done += (chunk as Buffer).length;
        reportProgress({ hashed: done });
      }
      return { sha256: hash.digest('hex') };
    },

    /** Removes a staging file the API wrote, if it is there (only files named as the API names them). */
    async removeStagingFile(input: { stagingPath: string }): Promise<void> {
      if (!STAGING_FILE.test(basename(input.stagingPath)))
        throw permanent(FailureType.Validation, 'not an image staging file', { field: 'stagingPath' });
      await rm(input.stagingPath, { force: true });
    },
  };
}

export type ImageHostActivities = ReturnType<typeof createImageHostActivities>;
