/**
 * Recorded runs of the image workflows (see history-scenarios.ts): for each a happy path and a compensating
 * failure, and a cancellation in the middle of the upload for importImage (it makes a volume). They run
 * against the image stubs (test/support/image-stubs.ts).
 */
import { operationContext } from '../support/workflow-harness';
import { imageFixture } from '../support/image-stubs';
import { INJECTED } from '../support/workflow-stubs';
import { libvirtNames } from '../../src/workflows/shared';
import type { Scenario } from './history-scenarios';
import { cancelDuring, settle } from './history-runs';

/** Fixed ids: the recorded inputs stay the same from one recording to the next. */
const IMAGE = '4e8d2c1b-6a5f-4d3e-8b7c-1f2e3d4c5b6a';
const UPLOAD_OP = '5f9e3d2c-7b6a-4e4f-9c8d-2a3b4c5d6e7f';
const STAGING = `/var/lib/vmflow/staging/image-${IMAGE}-${UPLOAD_OP}.part`;
const SIZE = 1024 * 1024;

const pending = (hostName: string) => ({
  image: { images: [imageFixture(IMAGE, hostName)], staging: { [STAGING]: SIZE } },
});
const ready = (hostName: string) => ({
  image: {
    images: [imageFixture(IMAGE, hostName, { status: 'ready', path: `/var/lib/vmflow/x`, sizeBytes: SIZE })],
    volumes: { [libvirtNames.imageVolume(IMAGE)]: SIZE },
  },
});
/** A registration as the API starts it: the row names the existing volume, `importing`, held by the operation. */
const registering = (hostName: string, operationId: string) => ({
  image: {
    images: [
      imageFixture(IMAGE, hostName, {
        origin: 'register',
        volumeName: 'golden.qcow2',
        sha256: null,
        status: 'importing',
        currentOperationId: operationId,
      }),
    ],
    volumes: { 'golden.qcow2': SIZE },
  },
});
const importInput = (hostName: string) => ({
  ...operationContext(),
  imageId: IMAGE,
  hostName,
  stagingPath: STAGING,
  receivedSha256: imageFixture(IMAGE, hostName).sha256!,
  sizeBytes: SIZE,
});
const registerOp = { ...operationContext(), imageId: IMAGE };

export const IMAGE_SCENARIOS: Scenario[] = [
  {
    name: 'importImage.happy',
    workflow: 'importImage',
    stubs: pending,
    run: async (run, s) => settle(await run.start('importImage', importInput(s.hostName))),
  },
  {
    name: 'importImage.fail-inspectImageVolume',
    workflow: 'importImage',
    stubs: (host) => ({ ...pending(host), fail: { inspectImageVolume: INJECTED } }),
    run: async (run, s) => settle(await run.start('importImage', importInput(s.hostName))),
  },
  {
    name: 'importImage.cancel-uploadImageContent',
    workflow: 'importImage',
    stubs: pending,
    run: (run, s) =>
      cancelDuring(s, 'uploadImageContent', () => run.start('importImage', importInput(s.hostName))),
  },
  {
    name: 'registerImage.happy',
    workflow: 'registerImage',
    stubs: (host) => registering(host, registerOp.operationId),
    run: async (run) => settle(await run.start('registerImage', registerOp)),
  },
  {
    name: 'registerImage.fail-hashImageVolume',
    workflow: 'registerImage',
    stubs: (host) => ({ ...registering(host, registerOp.operationId), fail: { hashImageVolume: INJECTED } }),
    run: async (run) => settle(await run.start('registerImage', registerOp)),
  },
  {
    name: 'deleteImage.happy',
    workflow: 'deleteImage',
    stubs: ready,
    run: async (run) => settle(await run.start('deleteImage', { ...operationContext(), imageId: IMAGE })),
  },
  {
    name: 'deleteImage.fail-deleteVolume',
    workflow: 'deleteImage',
    stubs: (host) => ({ ...ready(host), fail: { deleteVolume: INJECTED } }),
    run: async (run) => settle(await run.start('deleteImage', { ...operationContext(), imageId: IMAGE })),
  },
];
