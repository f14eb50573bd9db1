/**
 * importImage against the real dev server with stubbed activities: the happy path (the image held from
 * `importing` to the end, the hold released last, after the staging file is gone), a failure at every step
 * (exactly the undos registered so far run, the image ends `failed` with the reason, released, with no
 * volume and no staging file), a sha256 mismatch, cancellation during each host step, and a cancellation
 * that comes after the `ready` write (it undoes nothing).
 */
import { FailureType, libvirtNames } from '../../src/workflows/shared';
import { expectOperationFailure, useWorkflowHarness, within } from '../support/workflow-harness';
import { INJECTED } from '../support/workflow-stubs';
import { IMPORT, SIZE, imageSetup } from './image-fixtures';

const h = useWorkflowHarness();

/** The calls of an import that fails before it makes a volume: nothing to undo but the status and the file. */
const FAILED_BEFORE_VOLUME = [
  'beginOperation',
  'setImageStatus:importing',
  'setImageStatus:failed',
  'removeStagingFile',
  'finishOperation:failed',
];

describe('importImage', () => {
  it('imports: importing → ready with path and sizes, staging removed, then the hold released, last', async () => {
    // What the image and the staging files look like when the last two writes start.
    const seen: Record<string, unknown> = {};
    const snapshot = () => ({
      hold: setup.row()?.currentOperationId,
      status: setup.row()?.status,
      staging: setup.w.staging.size,
    });
    const setup = imageSetup(
      {},
      {
        before: {
          'setImageStatus:ready': () => (seen.ready = snapshot()),
          releaseImage: () => (seen.release = snapshot()),
        },
      },
    );
    const { stubs, w, input, row, imageId } = setup;

    const result = await h.withWorkers(stubs, (run) => run.execute('importImage', input));

    expect(result).toEqual({ imageId, status: 'ready' });
    expect(stubs.labels()).toEqual([...IMPORT, 'releaseImage', 'finishOperation:succeeded']);
    expect(seen).toEqual({
      ready: { hold: input.operationId, status: 'importing', staging: 1 },
      release: { hold: input.operationId, status: 'ready', staging: 0 },
    });
    expect(row()).toMatchObject({
      status: 'ready',
      path: `/var/lib/vmflow/${libvirtNames.imageVolume(imageId)}`,
      sizeBytes: SIZE,
      virtualSizeBytes: 16 * 1024 * 1024,
      lastError: null,
      currentOperationId: null,
    });
    expect(stubs.world.volumes.get(libvirtNames.imageVolume(imageId))).toBe(SIZE);
    expect(w.staging.size).toBe(0);
    expect(stubs.inputs('setImageStatus:importing')[0]).toMatchObject({ from: ['pending', 'failed'] });
    expect(stubs.inputs('setImageStatus:ready')[0]).toMatchObject({ from: ['importing'] });
    expect(stubs.inputs('uploadImageContent')[0]).toMatchObject({
      stagingPath: input.stagingPath,
      sizeBytes: SIZE,
      volumeName: libvirtNames.imageVolume(imageId),
    });
    expect(stubs.world.operations.get(input.operationId)).toMatchObject({ status: 'succeeded' });
    expect(stubs.stepLabels()).toEqual(
      expect.arrayContaining(['verifySha256:completed', 'upload:completed', 'removeStaging:completed']),
    );
  });

  it('a failed image takes a new import, which clears its last error', async () => {
    const { stubs, input, row } = imageSetup({ status: 'failed', lastError: 'import failed: earlier' });

    await h.withWorkers(stubs, (run) => run.execute('importImage', input));

    expect(row()).toMatchObject({ status: 'ready', lastError: null, currentOperationId: null });
  });

  it.each([
    { failing: 'createImageVolume', undos: ['deleteVolume'] },
    { failing: 'uploadImageContent', undos: ['deleteVolume'] },
    { failing: 'inspectImageVolume', undos: ['deleteVolume'] },
    { failing: 'setImageStatus:ready', undos: ['deleteVolume'] },
  ])(
    'a failure at $failing runs $undos, then marks the image failed (released), then removes the staging file',
    async ({ failing, undos }) => {
      const { stubs, w, input, row, imageId } = imageSetup({}, { fail: { [failing]: INJECTED } });

      await h.withWorkers(stubs, async (run) => {
        await expectOperationFailure((await run.start('importImage', input)).result(), INJECTED);
      });

      const forward = IMPORT.slice(0, IMPORT.indexOf(failing) + 1);
      expect(stubs.labels()).toEqual([
        ...forward,
        ...undos,
        'setImageStatus:failed',
        'removeStagingFile',
        'finishOperation:failed',
      ]);
      expect(row()).toMatchObject({
        status: 'failed',
        lastError: `import failed: injected failure in ${failing}`,
        currentOperationId: null,
      });
      expect(stubs.world.volumes.has(libvirtNames.imageVolume(imageId))).toBe(false);
      expect(w.staging.size).toBe(0);
      expect(stubs.world.operations.get(input.operationId)).toMatchObject({ status: 'failed' });
    },
  );

  it('a failure to remove the staging file after the ready write undoes the import (no ready image without its clean-up)', async () => {
    const { stubs, w, input, row, imageId } = imageSetup(
      {},
      { fail: { removeStagingFile: { type: INJECTED, times: 1 } } },
    );

    await h.withWorkers(stubs, async (run) => {
      await expectOperationFailure((await run.start('importImage', input)).result(), INJECTED);
    });

    expect(stubs.labels()).toEqual([
      ...IMPORT,
      'deleteVolume',
      'setImageStatus:failed',
      'removeStagingFile',
      'finishOperation:failed',
    ]);
    expect(row()).toMatchObject({ status: 'failed', currentOperationId: null });
    expect(stubs.world.volumes.has(libvirtNames.imageVolume(imageId))).toBe(false);
    expect(w.staging.size).toBe(0);
  });

  it('refuses an image that is not pending or failed, and leaves it as it was', async () => {
    const { stubs, w, input, row, imageId } = imageSetup({ status: 'ready', path: '/var/lib/vmflow/x' });
    stubs.world.volumes.set(libvirtNames.imageVolume(imageId), SIZE);

    await h.withWorkers(stubs, async (run) => {
      await expectOperationFailure(
        (await run.start('importImage', input)).result(),
        FailureType.IllegalTransition,
      );
    });

    // The failed write is an undo guarded by the hold: this operation never held the image.
    expect(stubs.labels()).toEqual(FAILED_BEFORE_VOLUME);
    expect(row()).toMatchObject({ status: 'ready', lastError: null, currentOperationId: null });
    expect(stubs.world.volumes.has(libvirtNames.imageVolume(imageId))).toBe(true);
    expect(w.staging.size).toBe(0);
  });

  it('a sha256 mismatch fails before any volume is made: failed with the reason, staging removed', async () => {
    const { stubs, w, input, row, imageId } = imageSetup();

    const failure = await h.withWorkers(stubs, async (run) =>
      expectOperationFailure(
        (await run.start('importImage', { ...input, receivedSha256: 'b'.repeat(64) })).result(),
        FailureType.Refused,
      ),
    );

    expect(failure.message).toMatch(/sha256 mismatch/);
    expect(failure.details?.[0]).toEqual({ field: 'sha256' });
    expect(stubs.labels()).toEqual(FAILED_BEFORE_VOLUME);
    expect(row()).toMatchObject({ status: 'failed', currentOperationId: null });
    expect(row()!.lastError).toMatch(/^import failed: sha256 mismatch/);
    expect(stubs.world.volumes.has(libvirtNames.imageVolume(imageId))).toBe(false);
    expect(w.staging.size).toBe(0);
  });

  it.each(['createImageVolume', 'uploadImageContent', 'inspectImageVolume'])(
    'cancelled while %s runs: the volume is removed, the image failed with the reason, staging removed',
    async (blocked) => {
      const { stubs, w, input, row, imageId } = imageSetup();
      const gate = stubs.gate(blocked);

      await h.withWorkers(stubs, async (run) => {
        const handle = await run.start('importImage', input);
        await within(gate.entered, `${blocked} to start`);
        await handle.cancel();
        await expectOperationFailure(handle.result(), FailureType.Cancelled);
      });

      const forward = IMPORT.slice(0, IMPORT.indexOf(blocked) + 1);
      expect(stubs.labels()).toEqual([
        ...forward,
        `${blocked}:cancelled`,
        'deleteVolume',
        'setImageStatus:failed',
        'removeStagingFile',
        'finishOperation:cancelled',
      ]);
      expect(row()).toMatchObject({ status: 'failed', currentOperationId: null });
      expect(row()!.lastError).toBe('import failed: operation cancelled');
      expect(stubs.world.volumes.has(libvirtNames.imageVolume(imageId))).toBe(false);
      expect(w.staging.size).toBe(0);
      expect(stubs.world.operations.get(input.operationId)).toMatchObject({ status: 'cancelled' });
    },
  );

  it('a cancellation after the ready write undoes nothing: the import finishes', async () => {
    const { stubs, w, input, row, imageId } = imageSetup();
    const gate = stubs.gate('removeStagingFile', { cancellable: false });

    const result = await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('importImage', input);
      await within(gate.entered, 'removeStagingFile to start');
      await handle.cancel();
      await run.releaseAfterCancel(handle, gate);
      return within(handle.result(), 'the import to finish');
    });

    expect(result).toEqual({ imageId, status: 'ready' });
    expect(stubs.labels()).toEqual([...IMPORT, 'releaseImage', 'finishOperation:succeeded']);
    expect(row()).toMatchObject({ status: 'ready', currentOperationId: null });
    expect(stubs.world.volumes.has(libvirtNames.imageVolume(imageId))).toBe(true);
    expect(w.staging.size).toBe(0);
  });
});
