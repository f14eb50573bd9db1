/**
 * Image stubs for the workflow tier, plugged into {@link Stubs} (test/support/workflow-stubs.ts): the control
 * (DB) and hypervisor activities of the image workflows, over a small in-memory world of their own (image
 * rows; the staging files on the host; the uploads that ran). Image volumes live in the core world's
 * `volumes` (name → bytes), so the shared `deleteVolume` stub removes them. The rules of the real activities
 * are kept: `from` statuses, the hold (`onlyIfHeldBy`, another operation's hold refuses), the in-use refusal,
 * "create unless there" and "remove if there", and an upload that resumes at its heartbeat's offset.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { ImageDbActivities, ImageRecord } from '../../src/activities/db-images';
import type { ImageHostActivities, ImageInspection } from '../../src/activities/images';
import type { ImageUsers } from '../../src/images/queries';
import { FailureType, libvirtNames } from '../../src/workflows/shared';
import { STUB_POOL, type StubOptions, type Stubs } from './workflow-stubs';

/** Options of the image stubs (part of {@link StubOptions}). */
export interface ImageStubOptions {
  /** Image rows that exist before the workflow runs. */
  images?: ImageRecord[];
  /** Volumes of the stub pool that exist before (name → bytes): e.g. a registered image's own volume. */
  volumes?: Record<string, number>;
  /** Staging files on the host (path → bytes) before the workflow runs. */
  staging?: Record<string, number>;
  /** Who uses an image (by id): a delete is refused while anything does. */
  users?: Record<string, ImageUsers>;
  /** What `qemu-img` finds in a volume (default: the format asked for, 16 MiB virtual). */
  inspection?: Partial<ImageInspection>;
  /** The sha256 hashImageVolume computes (default {@link STUB_SHA256}). */
  sha256?: string;
}

/** One run of uploadImageContent. */
export interface StubUpload {
  attempt: number;
  resumedAt: number;
  bytes: number;
}

/** The image stubs' state, for assertions (see {@link imageWorld}). */
export interface ImageWorld {
  rows: Map<string, ImageRecord>;
  /** Staging files on the host: path → bytes. */
  staging: Map<string, number>;
  uploads: StubUpload[];
}

/** The sha256 of the stubbed content. */
export const STUB_SHA256 = 'c0ffee'.padEnd(64, '0');

const worlds = new WeakMap<Stubs, ImageWorld>();

/** The image world of a test's stubs. */
export function imageWorld(stubs: Stubs): ImageWorld {
  const w = worlds.get(stubs);
  if (!w) throw new Error('these stubs have no image world');
  return w;
}

/** An image row with defaults: an uploaded qcow2, `pending`, in the stub pool, open to every department. */
export function imageFixture(
  id: string,
  hostName: string,
  overrides: Partial<ImageRecord> = {},
): ImageRecord {
  return {
    id,
    name: `image ${id}`,
    description: '',
    osFamily: 'linux',
    format: 'qcow2',
    virtualSizeBytes: null,
    sizeBytes: null,
    sha256: STUB_SHA256,
    firmware: 'bios',
    provisioning: 'cloud-init',
    origin: 'upload',
    hostName,
    pool: STUB_POOL,
    volumeName: libvirtNames.imageVolume(id),
    path: null,
    status: 'pending',
    lastError: null,
    departmentIds: null,
    currentOperationId: null,
    createdAt: '2025-01-01T00:00:00.000Z',
    updatedAt: '2025-01-01T00:00:00.000Z',
    ...overrides,
  };
}

const fail = (type: string, message: string, details?: Record<string, unknown>) =>
  ApplicationFailure.create({ type, message, nonRetryable: true, details: details ? [details] : undefined });

/** The image part of the stubs: activities for both queues. */
export function imageStubs(stubs: Stubs, opts: StubOptions) {
  const o = opts.image ?? {};
  const world: ImageWorld = {
    rows: new Map((o.images ?? []).map((i) => [i.id, structuredClone(i)])),
    staging: new Map(Object.entries(o.staging ?? {})),
    uploads: [],
  };
  worlds.set(stubs, world);
  const volumes = stubs.world.volumes;
  for (const [name, bytes] of Object.entries(o.volumes ?? {})) volumes.set(name, bytes);
  const view = (i: ImageRecord) => structuredClone(i);
  const requireImage = (id: string) => {
    const i = world.rows.get(id);
    if (!i) throw fail(FailureType.NotFound, 'image not found', { field: 'imageId' });
    return i;
  };
  const inUse = (id: string) => {
    const users = o.users?.[id];
    if (users && (users.templates.length || users.machines.length))
      throw fail(FailureType.InUse, 'the image is still used', { ...users });
  };
  const requireVolume = (name: string) => {
    if (!volumes.has(name)) throw fail(FailureType.NotFound, `volume ${name} not found`, { field: 'volume' });
    return volumes.get(name)!;
  };

  const control: ImageDbActivities = {
    getImage: async (imageId) => {
      const i = world.rows.get(imageId);
      return i ? view(i) : null;
    },
    setImageStatus: async (input) => {
      const i = requireImage(input.imageId);
      if (input.onlyIfHeldBy !== undefined && i.currentOperationId !== input.onlyIfHeldBy) return view(i);
      if (i.status !== input.status && input.from && !input.from.includes(i.status))
        throw fail(FailureType.IllegalTransition, `image is ${i.status}`, { status: i.status });
      if (i.currentOperationId && i.currentOperationId !== input.operationId)
        throw fail(FailureType.IllegalTransition, 'another operation holds the image', { status: i.status });
      if (input.requireUnused) inUse(i.id);
      Object.assign(i, input.fields ?? {}, {
        status: input.status,
        currentOperationId: input.release ? null : input.operationId,
      });
      return view(i);
    },
    releaseImage: async (input) => {
      const i = world.rows.get(input.imageId);
      if (i && i.currentOperationId === input.operationId) i.currentOperationId = null;
    },
    deleteImageRecord: async (input) => {
      if (!world.rows.has(input.imageId)) return;
      inUse(input.imageId);
      world.rows.delete(input.imageId);
    },
  };

  const hypervisor: ImageHostActivities = {
    createImageVolume: async (input) => {
      if (!volumes.has(input.volumeName)) volumes.set(input.volumeName, input.sizeBytes);
      return { path: `/var/lib/vmflow/${input.volumeName}` };
    },
    uploadImageContent: async (input) => {
      requireVolume(input.volumeName);
      const size = world.staging.get(input.stagingPath);
      if (size === undefined) throw fail(FailureType.NotFound, `no staging file ${input.stagingPath}`);
      if (size !== input.sizeBytes)
        throw fail(
          FailureType.Refused,
          `the staging file holds ${size} bytes, ${input.sizeBytes} were received`,
        );
      const info = Context.current().info;
      const last = (info.heartbeatDetails as { offset?: number } | undefined)?.offset;
      const resumedAt = typeof last === 'number' ? last : 0;
      world.uploads.push({ attempt: info.attempt, resumedAt, bytes: size });
      return { bytes: size, resumedAt };
    },
    inspectImageVolume: async (input) => {
      const bytes = requireVolume(input.volumeName);
      const found: ImageInspection = {
        path: `/var/lib/vmflow/${input.volumeName}`,
        format: input.expectedFormat,
        virtualSizeBytes: 16 * 1024 * 1024,
        sizeBytes: bytes,
        ...o.inspection,
      };
      if (found.format !== input.expectedFormat)
        throw fail(
          FailureType.Refused,
          `the content is ${found.format}, not the declared ${input.expectedFormat}`,
          {
            field: 'format',
          },
        );
      return found;
    },
    hashImageVolume: async (input) => {
      requireVolume(input.volumeName);
      return { sha256: o.sha256 ?? STUB_SHA256 };
    },
    removeStagingFile: async (input) => void world.staging.delete(input.stagingPath),
  };
  return { control, hypervisor };
}
