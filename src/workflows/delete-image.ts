import { db, dbUndo, hostActivities, runImageOperation, toOperationFailure } from './saga';
import type { ImageStatus } from '../entities/image';
import { type DeleteImageInput, type ImageOperationResult } from './shared';

/**
 * Deletes an image: `deleting` (refused with InUseError, naming them, while templates or machines use it),
 * remove the volume (an uploaded image's only: a registered volume is not vmflow's and stays), delete the
 * row and emit `images:delete`. Forward-only: every step is "remove if present", so deleting again after a
 * failure finishes the job. A refusal changes nothing.
 */
export async function deleteImage(input: DeleteImageInput): Promise<ImageOperationResult> {
  const { imageId, operationId, actorId } = input;
  let previous: ImageStatus = 'ready';
  let destructive = false;
  return runImageOperation(
    'delete_image',
    input,
    async (saga) => {
      const image = await saga.step('load', () => db.getImage(imageId));
      if (!image) return { imageId, status: 'deleted' };
      previous = image.status;
      await saga.step('markDeleting', () =>
        db.setImageStatus({
          operationId,
          actorId,
          imageId,
          status: 'deleting',
          from: ['ready', 'failed', 'pending', 'deleting'],
          requireUnused: true,
        }),
      );
      destructive = true;
      if (image.origin === 'upload')
        await saga.step('deleteVolume', () =>
          hostActivities(image.hostName).deleteVolume({ pool: image.pool, name: image.volumeName }),
        );
      await saga.step('deleteRecord', () => db.deleteImageRecord({ operationId, actorId, imageId }));
      return { imageId, status: 'deleted' };
    },
    // Refused before anything was removed: the image is as it was. Failed once the removal began: `failed`
    // with the reason, and deleting it again finishes the job.
    async (err) => {
      const image = await dbUndo.getImage(imageId);
      if (image && image.status === 'deleting' && image.currentOperationId === operationId)
        await dbUndo.setImageStatus({
          operationId,
          actorId,
          imageId,
          status: destructive ? 'failed' : previous,
          fields: destructive ? { lastError: `delete failed: ${toOperationFailure(err).message}` } : {},
          release: true,
          onlyIfHeldBy: operationId,
        });
    },
  );
}
