import { ApplicationFailure } from '@temporalio/workflow';
import { db, hostActivities, longRunningActivity, runImageOperation } from './saga';
import { markFailed, markReady, releaseImage } from './import-image';
import { FailureType, type ImageOperationResult, type RegisterImageInput } from './shared';

/**
 * Registers an existing volume of a host's pool as an image, without copying it. The API inserted the row
 * (`importing`, held by this operation) naming the host, pool and volume. The workflow checks with
 * `qemu-img` that the volume holds the declared format (no backing file), computes its sha256 on the host
 * (and, when the caller gave one, requires it to match), and marks the image `ready`. On failure the image is
 * `failed` with the reason; the volume is never touched (it is not vmflow's).
 */
export async function registerImage(input: RegisterImageInput): Promise<ImageOperationResult> {
  const { imageId } = input;
  return runImageOperation(
    'register_image',
    input,
    async (saga) => {
      const image = await saga.step('load', async () => {
        const found = await db.getImage(imageId);
        if (!found)
          throw ApplicationFailure.create({
            type: FailureType.NotFound,
            message: 'image not found',
            nonRetryable: true,
          });
        return found;
      });
      const ref = { pool: image.pool, volumeName: image.volumeName };
      const inspected = await saga.step('inspect', () =>
        hostActivities(image.hostName).inspectImageVolume({ ...ref, expectedFormat: image.format }),
      );
      const { sha256 } = await saga.step('hash', async () => {
        const hashed = await hostActivities(image.hostName, longRunningActivity).hashImageVolume(ref);
        if (image.sha256 && image.sha256 !== hashed.sha256)
          throw ApplicationFailure.create({
            type: FailureType.Refused,
            message: `sha256 mismatch: the image declares ${image.sha256}, the volume is ${hashed.sha256}`,
            nonRetryable: true,
            details: [{ field: 'sha256' }],
          });
        return hashed;
      });
      await markReady(saga, input, { ...inspected, sha256 });
      await releaseImage(input);
      return { imageId, status: 'ready' };
    },
    (err) => markFailed(input, err, 'registration failed'),
  );
}
