import { ApplicationFailure, CancellationScope } from '@temporalio/workflow';
import {
  db,
  dbUndo,
  hostActivities,
  hostUndo,
  longRunningActivity,
  runImageOperation,
  toOperationFailure,
  type Saga,
} from './saga';
import { FailureType, libvirtNames, type ImageOperationResult, type ImportImageInput } from './shared';

/**
 * Imports an uploaded image: mark it `importing` (from `pending` or `failed`), verify the sha256 the API
 * computed while receiving against the one given at creation, create the volume on the image's host, upload
 * the staging file into it in segments (a retried upload resumes at the offset its last heartbeat recorded),
 * check with `qemu-img` that the content is the declared format (and has no backing file), mark it `ready`
 * with its path and sizes. The staging file is removed whatever happens. Any failure or a cancellation
 * removes the volume and leaves the image `failed` with the reason.
 */
export async function importImage(input: ImportImageInput): Promise<ImageOperationResult> {
  const { imageId, operationId, actorId, hostName, stagingPath } = input;
  const removeStaging = () =>
    CancellationScope.nonCancellable(() => hostUndo(hostName).removeStagingFile({ stagingPath }));
  return runImageOperation(
    'import_image',
    // The staging path is the operation's own file: recorded, it tells operators what to look for.
    input,
    async (saga) => {
      const image = await saga.step('markImporting', () =>
        db.setImageStatus({
          operationId,
          actorId,
          imageId,
          status: 'importing',
          from: ['pending', 'failed'],
          fields: { lastError: null },
        }),
      );
      await saga.step('verifySha256', async () => {
        if (image.sha256 !== input.receivedSha256)
          throw ApplicationFailure.create({
            type: FailureType.Refused,
            message: `sha256 mismatch: the image declares ${image.sha256}, the upload is ${input.receivedSha256}`,
            nonRetryable: true,
            details: [{ field: 'sha256' }],
          });
      });
      const host = hostActivities(hostName);
      const ref = { pool: image.pool, volumeName: libvirtNames.imageVolume(imageId) };
      await saga.step(
        'createVolume',
        () => host.createImageVolume({ ...ref, sizeBytes: input.sizeBytes }),
        // The volume's name is this image's own: nothing else is ever removed.
        () => hostUndo(hostName).deleteVolume({ pool: ref.pool, name: ref.volumeName }),
      );
      await saga.step('upload', () =>
        hostActivities(hostName, longRunningActivity).uploadImageContent({
          ...ref,
          stagingPath,
          sizeBytes: input.sizeBytes,
          ...(input.segmentBytes ? { segmentBytes: input.segmentBytes } : {}),
        }),
      );
      const inspected = await saga.step('inspect', () =>
        host.inspectImageVolume({ ...ref, expectedFormat: image.format }),
      );
      await markReady(saga, input, inspected);
      // Before the operation records its outcome: a caller that sees it succeeded finds no staging file.
      await saga.step('removeStaging', removeStaging);
      await releaseImage(input);
      return { imageId, status: 'ready' };
    },
    async (err) => {
      await markFailed(input, err);
      await removeStaging();
    },
  );
}

/**
 * The `ready` write of an import or registration, with what the volume is. The operation keeps holding the
 * image ({@link releaseImage} ends it, last): a failure after this write still marks it `failed`.
 */
export async function markReady(
  saga: Saga,
  input: { operationId: string; actorId: string | null; imageId: string },
  found: { path: string; virtualSizeBytes: number; sizeBytes: number; sha256?: string },
): Promise<void> {
  const { path, virtualSizeBytes, sizeBytes, sha256 } = found;
  await saga.step('finalize', () =>
    db.setImageStatus({
      operationId: input.operationId,
      actorId: input.actorId,
      imageId: input.imageId,
      status: 'ready',
      from: ['importing'],
      fields: { path, virtualSizeBytes, sizeBytes, ...(sha256 ? { sha256 } : {}) },
    }),
  );
}

/** Ends the operation's hold on the image (never cancelled): the last write of a successful operation. */
export function releaseImage(input: { operationId: string; imageId: string }): Promise<void> {
  return CancellationScope.nonCancellable(() =>
    dbUndo.releaseImage({ imageId: input.imageId, operationId: input.operationId }),
  );
}

/** The end of a failed image operation: `failed` with the reason, released, if this operation holds it. */
export async function markFailed(
  input: { operationId: string; actorId: string | null; imageId: string },
  err: unknown,
  prefix = 'import failed',
): Promise<void> {
  await dbUndo.setImageStatus({
    operationId: input.operationId,
    actorId: input.actorId,
    imageId: input.imageId,
    status: 'failed',
    // toOperationFailure: a cancellation's own message is empty; the reason recorded is "operation cancelled".
    fields: { lastError: `${prefix}: ${toOperationFailure(err).message}` },
    release: true,
    onlyIfHeldBy: input.operationId,
  });
}
