/**
 * deleteImage against the real dev server with stubbed activities: an uploaded image goes with its volume, a
 * registered one leaves its volume; a missing image is already deleted; an image in use is refused and left
 * as it was; a failure (or a cancellation) once the removal began leaves it `failed` with the reason and
 * released, and deleting it again finishes the job.
 */
import { FailureType, libvirtNames } from '../../src/workflows/shared';
import type { ImageUsers } from '../../src/images/queries';
import { expectOperationFailure, useWorkflowHarness, within } from '../support/workflow-harness';
import { INJECTED } from '../support/workflow-stubs';
import { DELETE, SIZE, imageSetup } from './image-fixtures';

const h = useWorkflowHarness();

/** A ready uploaded image with its volume. */
function readyImage(
  more: Parameters<typeof imageSetup>[1] = {},
  extra: Parameters<typeof imageSetup>[2] = {},
) {
  const setup = imageSetup({ status: 'ready', path: '/var/lib/vmflow/x', sizeBytes: SIZE }, more, extra);
  const volume = libvirtNames.imageVolume(setup.imageId);
  setup.stubs.world.volumes.set(volume, SIZE);
  const { operationId, actorId, idempotencyKey } = setup.input;
  return { ...setup, volume, deleteInput: { operationId, actorId, idempotencyKey, imageId: setup.imageId } };
}

describe('deleteImage', () => {
  it('marks the image deleting, removes its volume, then the row', async () => {
    const { stubs, w, imageId, volume, deleteInput } = readyImage();

    const result = await h.withWorkers(stubs, (run) => run.execute('deleteImage', deleteInput));

    expect(result).toEqual({ imageId, status: 'deleted' });
    expect(stubs.labels()).toEqual(DELETE);
    expect(stubs.inputs('setImageStatus:deleting')[0]).toMatchObject({
      from: ['ready', 'failed', 'pending', 'deleting'],
      requireUnused: true,
    });
    expect(w.rows.has(imageId)).toBe(false);
    expect(stubs.world.volumes.has(volume)).toBe(false);
  });

  it('a registered image leaves its volume (it is not vmflow’s)', async () => {
    const { stubs, w, imageId, deleteInput } = readyImage();
    Object.assign(w.rows.get(imageId)!, { origin: 'register', volumeName: 'golden.qcow2' });
    stubs.world.volumes.set('golden.qcow2', SIZE);

    await h.withWorkers(stubs, (run) => run.execute('deleteImage', deleteInput));

    expect(stubs.labels()).toEqual(DELETE.filter((l) => l !== 'deleteVolume'));
    expect(w.rows.has(imageId)).toBe(false);
    expect(stubs.world.volumes.get('golden.qcow2')).toBe(SIZE);
  });

  it('an image that is gone is already deleted', async () => {
    const { stubs, w, imageId, deleteInput } = readyImage();
    w.rows.delete(imageId);

    expect(await h.withWorkers(stubs, (run) => run.execute('deleteImage', deleteInput))).toEqual({
      imageId,
      status: 'deleted',
    });
    expect(stubs.labels()).toEqual(['beginOperation', 'getImage', 'finishOperation:succeeded']);
  });

  it('an image in use is refused, naming its users, and left as it was', async () => {
    const users: Record<string, ImageUsers> = {};
    const { stubs, row, imageId, volume, deleteInput } = readyImage({}, { users });
    users[imageId] = { templates: [{ id: 't1', name: 'web' }], machines: [] };

    const failure = await h.withWorkers(stubs, async (run) =>
      expectOperationFailure((await run.start('deleteImage', deleteInput)).result(), FailureType.InUse),
    );

    expect(failure.details?.[0]).toEqual(users[imageId]);
    expect(stubs.labels()).toEqual([
      'beginOperation',
      'getImage',
      'setImageStatus:deleting',
      'getImage',
      'finishOperation:failed',
    ]);
    expect(row()).toMatchObject({ status: 'ready', lastError: null, currentOperationId: null });
    expect(stubs.world.volumes.has(volume)).toBe(true);
  });

  it.each([
    { failing: 'deleteVolume', volumeLeft: true },
    { failing: 'deleteImageRecord', volumeLeft: false },
  ])(
    'a failure at $failing leaves the image failed with the reason, released; deleting again finishes',
    async ({ failing, volumeLeft }) => {
      const { stubs, w, row, imageId, volume, deleteInput } = readyImage({
        fail: { [failing]: { type: INJECTED, times: 1 } },
      });

      await h.withWorkers(stubs, async (run) => {
        await expectOperationFailure((await run.start('deleteImage', deleteInput)).result(), INJECTED);
      });

      const forward = DELETE.slice(0, DELETE.indexOf(failing) + 1);
      expect(stubs.labels()).toEqual([
        ...forward,
        'getImage',
        'setImageStatus:failed',
        'finishOperation:failed',
      ]);
      expect(row()).toMatchObject({
        status: 'failed',
        lastError: `delete failed: injected failure in ${failing}`,
        currentOperationId: null,
      });
      expect(stubs.world.volumes.has(volume)).toBe(volumeLeft);

      const again = { ...deleteInput, operationId: `${deleteInput.operationId}-again` };
      await h.withWorkers(stubs, (run) => run.execute('deleteImage', again));
      expect(w.rows.has(imageId)).toBe(false);
      expect(stubs.world.volumes.has(volume)).toBe(false);
    },
  );

  it('cancelled while the volume is removed: failed with the reason, released', async () => {
    const { stubs, row, deleteInput } = readyImage();
    const gate = stubs.gate('deleteVolume');

    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('deleteImage', deleteInput);
      await within(gate.entered, 'deleteVolume to start');
      await handle.cancel();
      await expectOperationFailure(handle.result(), FailureType.Cancelled);
    });

    expect(stubs.labels()).toEqual([
      ...DELETE.slice(0, DELETE.indexOf('deleteVolume') + 1),
      'deleteVolume:cancelled',
      'getImage',
      'setImageStatus:failed',
      'finishOperation:cancelled',
    ]);
    expect(row()).toMatchObject({
      status: 'failed',
      lastError: 'delete failed: operation cancelled',
      currentOperationId: null,
    });
  });
});
