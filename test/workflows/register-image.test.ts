/**
 * registerImage against the real dev server with stubbed activities: the image the API inserted (`importing`,
 * held by the operation) becomes `ready` with what `qemu-img` found and the sha256 computed on the host, and
 * is released last; a failure at every step leaves it `failed` with the reason and released; the volume is
 * never touched (it is not vmflow's).
 */
import { FailureType } from '../../src/workflows/shared';
import { STUB_SHA256 } from '../support/image-stubs';
import { expectOperationFailure, useWorkflowHarness } from '../support/workflow-harness';
import { INJECTED } from '../support/workflow-stubs';
import { REGISTER, SIZE, imageSetup } from './image-fixtures';

const h = useWorkflowHarness();

const VOLUME = 'golden.qcow2';

/** A registration as the API starts it: the row names the volume, `importing`, held by the operation. */
function registering(
  over: Parameters<typeof imageSetup>[0] = {},
  more: Parameters<typeof imageSetup>[1] = {},
  extra: Parameters<typeof imageSetup>[2] = {},
) {
  const setup = imageSetup(
    { origin: 'register', volumeName: VOLUME, sha256: null, status: 'importing', ...over },
    more,
    { volumes: { [VOLUME]: SIZE }, ...extra },
  );
  setup.row()!.currentOperationId = setup.input.operationId;
  const { operationId, actorId, idempotencyKey } = setup.input;
  return { ...setup, registerInput: { operationId, actorId, idempotencyKey, imageId: setup.imageId } };
}

describe('registerImage', () => {
  it('inspects and hashes the volume, marks the image ready with what it found, then releases it', async () => {
    const seen: Array<string | null | undefined> = [];
    const setup = registering({}, { before: { releaseImage: () => seen.push(setup.row()?.status) } });
    const { stubs, row, imageId, registerInput } = setup;

    const result = await h.withWorkers(stubs, (run) => run.execute('registerImage', registerInput));

    expect(result).toEqual({ imageId, status: 'ready' });
    expect(stubs.labels()).toEqual([...REGISTER, 'releaseImage', 'finishOperation:succeeded']);
    expect(seen).toEqual(['ready']);
    expect(row()).toMatchObject({
      status: 'ready',
      sha256: STUB_SHA256,
      path: `/var/lib/vmflow/${VOLUME}`,
      sizeBytes: SIZE,
      currentOperationId: null,
    });
    expect(stubs.inputs('setImageStatus:ready')[0]).toMatchObject({ from: ['importing'] });
    expect(stubs.inputs('inspectImageVolume')[0]).toMatchObject({
      volumeName: VOLUME,
      expectedFormat: 'qcow2',
    });
    expect(stubs.world.volumes.get(VOLUME)).toBe(SIZE);
  });

  it.each(['inspectImageVolume', 'hashImageVolume', 'setImageStatus:ready'])(
    'a failure at %s leaves the image failed with the reason, released, and the volume as it was',
    async (failing) => {
      const { stubs, row, registerInput } = registering({}, { fail: { [failing]: INJECTED } });

      await h.withWorkers(stubs, async (run) => {
        await expectOperationFailure((await run.start('registerImage', registerInput)).result(), INJECTED);
      });

      const forward = REGISTER.slice(0, REGISTER.indexOf(failing) + 1);
      expect(stubs.labels()).toEqual([...forward, 'setImageStatus:failed', 'finishOperation:failed']);
      expect(row()).toMatchObject({
        status: 'failed',
        lastError: `registration failed: injected failure in ${failing}`,
        currentOperationId: null,
      });
      expect(stubs.world.volumes.get(VOLUME)).toBe(SIZE);
      expect(stubs.world.operations.get(registerInput.operationId)).toMatchObject({ status: 'failed' });
    },
  );

  it('a sha256 given at creation must match the one computed on the host', async () => {
    const { stubs, row, registerInput } = registering({ sha256: 'd'.repeat(64) });

    const failure = await h.withWorkers(stubs, async (run) =>
      expectOperationFailure((await run.start('registerImage', registerInput)).result(), FailureType.Refused),
    );

    expect(failure.message).toMatch(/sha256 mismatch/);
    expect(row()).toMatchObject({ status: 'failed', sha256: 'd'.repeat(64), currentOperationId: null });
    expect(row()!.lastError).toMatch(/^registration failed: sha256 mismatch/);
  });

  it('content that is not the declared format is refused, naming the format', async () => {
    const { stubs, row, registerInput } = registering({}, {}, { inspection: { format: 'raw' } });

    const failure = await h.withWorkers(stubs, async (run) =>
      expectOperationFailure((await run.start('registerImage', registerInput)).result(), FailureType.Refused),
    );

    expect(failure.details?.[0]).toEqual({ field: 'format' });
    expect(stubs.labels()).not.toContain('hashImageVolume');
    expect(row()).toMatchObject({ status: 'failed', currentOperationId: null });
    expect(row()!.lastError).toMatch(/the content is raw, not the declared qcow2/);
  });
});
