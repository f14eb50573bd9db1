/**
 * Fixtures of the image workflow tests (import-image, register-image, delete-image .test.ts): stub worlds
 * with one image row, inputs, the calls of each happy path.
 */
import { randomUUID } from 'node:crypto';
import type { ImageRecord } from '../../src/activities/db-images';
import { type ImportImageInput } from '../../src/workflows/shared';
import { imageFixture, imageWorld, STUB_SHA256, type ImageStubOptions } from '../support/image-stubs';
import { uniqueId } from '../support/temporal';
import { operationContext } from '../support/workflow-harness';
import { createStubs, type StubOptions } from '../support/workflow-stubs';

/** Bytes of the staged upload. */
export const SIZE = 3 * 1024 * 1024;

/**
 * A stub world with one image (`pending` upload unless `image` says otherwise) and its staging file, plus
 * the operation context of the run (the staging file is that operation's).
 */
export function imageSetup(
  image: Partial<ImageRecord> = {},
  more: Partial<StubOptions> = {},
  extra: Partial<ImageStubOptions> = {},
) {
  const hostName = uniqueId('host');
  const imageId = randomUUID();
  const op = operationContext();
  const stagingPath = `/staging/image-${imageId}-${op.operationId}.part`;
  const stubs = createStubs({
    hostName,
    ...more,
    image: { images: [imageFixture(imageId, hostName, image)], staging: { [stagingPath]: SIZE }, ...extra },
  });
  const w = imageWorld(stubs);
  const input: ImportImageInput = {
    ...op,
    imageId,
    hostName,
    stagingPath,
    receivedSha256: STUB_SHA256,
    sizeBytes: SIZE,
  };
  return { stubs, w, hostName, imageId, input, row: () => w.rows.get(imageId) };
}

/** importImage's calls up to its `ready` write and the staging file's removal. */
export const IMPORT = [
  'beginOperation',
  'setImageStatus:importing',
  'createImageVolume',
  'uploadImageContent',
  'inspectImageVolume',
  'setImageStatus:ready',
  'removeStagingFile',
];

/** registerImage's calls up to its `ready` write. */
export const REGISTER = [
  'beginOperation',
  'getImage',
  'inspectImageVolume',
  'hashImageVolume',
  'setImageStatus:ready',
];

/** deleteImage's calls, all of them (an uploaded image). */
export const DELETE = [
  'beginOperation',
  'getImage',
  'setImageStatus:deleting',
  'deleteVolume',
  'deleteImageRecord',
  'finishOperation:succeeded',
];
