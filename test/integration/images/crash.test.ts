/**
 * A worker crash in the middle of an image upload: the worker process is killed (SIGKILL) while
 * uploadImageContent is writing segments, after the server has recorded a heartbeat with the offset reached;
 * a new worker process retries the activity, which resumes at that offset (not at 0), and the volume ends
 * holding exactly the staged bytes. The upload is made slow in the first process (each segment waits), so
 * the crash lands mid-way.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { defaultPayloadConverter } from '@temporalio/common';
import { type ChildProcess } from 'node:child_process';
import { stagingPath } from '../../../src/api/image-staging';
import { Image } from '../../../src/entities/image';
import {
  CONTROL_TASK_QUEUE,
  imageWorkflowId,
  libvirtNames,
  type ImportImageInput,
} from '../../../src/workflows/shared';
import { imageLeftovers, NO_IMAGE_LEFTOVERS } from '../../support/leftovers';
import { waitFor } from '../../support/machines';
import { startStack, TEST_POOL, type Stack } from '../../support/stack';
import { kill9, startWorker } from '../../support/worker-control';

const SEGMENT = 1024 * 1024;
const SIZE = 16 * SEGMENT;

describe('worker crash in the middle of an image upload', () => {
  let stack: Stack;
  let staging: string;
  let work: string;
  const workers: ChildProcess[] = [];
  const made: string[] = [];

  beforeAll(async () => {
    stack = await startStack({ workers: false });
    staging = mkdtempSync(path.join(tmpdir(), 'vmflow-staging-'));
    work = mkdtempSync(path.join(tmpdir(), 'vmflow-images-'));
  });
  afterAll(async () => {
    for (const w of workers) await kill9(w);
    if (stack) {
      const pool = await (await stack.libvirt.get()).lookupPoolByName(TEST_POOL);
      for (const id of made) {
        await pool
          .lookupVolumeByName(libvirtNames.imageVolume(id))
          .then((v) => v.delete())
          .catch(() => undefined);
        await stack.dataSource.getRepository(Image).delete({ id });
      }
      await stack.stop();
    }
    rmSync(staging, { recursive: true, force: true });
    rmSync(work, { recursive: true, force: true });
  });

  it('the retried upload resumes at the heartbeat offset and the volume holds exactly the staged bytes', async () => {
    // Random bytes: a segment written at the wrong offset, or skipped, changes the sha256.
    const content = randomBytes(SIZE);
    const sha256 = createHash('sha256').update(content).digest('hex');
    const imageId = randomUUID();
    const operationId = randomUUID();
    made.push(imageId);
    await stack.dataSource.getRepository(Image).insert({
      id: imageId,
      name: `crash-${imageId.slice(0, 8)}`,
      description: '',
      osFamily: 'linux',
      format: 'raw',
      virtualSizeBytes: null,
      sizeBytes: null,
      sha256,
      firmware: 'bios',
      provisioning: 'none',
      origin: 'upload',
      hostName: stack.hostName,
      pool: TEST_POOL,
      volumeName: libvirtNames.imageVolume(imageId),
      path: null,
      status: 'pending',
      lastError: null,
      departmentIds: null,
      currentOperationId: null,
    });
    const file = stagingPath(staging, imageId, operationId);
    writeFileSync(file, content, { mode: 0o600 });

    const slow = startWorker(stack.hostName, undefined, { TEST_UPLOAD_SEGMENT_MS: '700' });
    workers.push(slow.child);
    await slow.reached('READY');
    const input: ImportImageInput = {
      operationId,
      actorId: null,
      idempotencyKey: null,
      imageId,
      hostName: stack.hostName,
      stagingPath: file,
      receivedSha256: sha256,
      sizeBytes: SIZE,
      segmentBytes: SEGMENT,
    };
    const handle = await stack.env.client.workflow.start('importImage', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: imageWorkflowId(imageId),
      args: [input],
    });

    // The offset the server holds for the running upload (what a retry will be given).
    const recorded = await waitFor(
      async () => {
        const pending = (await handle.describe()).raw.pendingActivities ?? [];
        const upload = pending.find((a) => a.activityType?.name === 'uploadImageContent');
        const payload = upload?.heartbeatDetails?.payloads?.[0];
        const offset = payload
          ? (defaultPayloadConverter.fromPayload(payload) as { offset?: number } | undefined)?.offset
          : undefined;
        return offset !== undefined && offset > 0 ? offset : undefined;
      },
      'the server to record an upload heartbeat past offset 0',
      60_000,
    );
    expect(recorded).toBeLessThan(SIZE);
    await kill9(slow.child);

    // The second worker logs each segment it writes (no delay): the first one is where it resumed.
    const next = startWorker(stack.hostName, undefined, { TEST_UPLOAD_SEGMENT_MS: '0' });
    workers.push(next.child);
    await next.reached('READY');
    expect(await handle.result()).toEqual({ imageId, status: 'ready' });

    const offsets = [...next.output().matchAll(/^SEGMENT (\d+)$/gm)].map((m) => Number(m[1]));
    expect(offsets[0]).toBeGreaterThanOrEqual(recorded);
    expect(offsets).not.toContain(0);
    expect(offsets[offsets.length - 1]).toBe(SIZE - SEGMENT);
    // The activity's own account, in the history: a later attempt, resumed at the first segment it wrote.
    const events = (await handle.fetchHistory()).events ?? [];
    const uploadScheduled = events.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'uploadImageContent',
    )!.eventId;
    const started = events.find(
      (e) => String(e.activityTaskStartedEventAttributes?.scheduledEventId) === String(uploadScheduled),
    )!;
    expect(started.activityTaskStartedEventAttributes!.attempt).toBeGreaterThanOrEqual(2);
    const completed = events.find(
      (e) => String(e.activityTaskCompletedEventAttributes?.scheduledEventId) === String(uploadScheduled),
    )!;
    const result = defaultPayloadConverter.fromPayload(
      completed.activityTaskCompletedEventAttributes!.result!.payloads![0]!,
    ) as { bytes: number; resumedAt: number };
    expect(result).toEqual({ bytes: SIZE, resumedAt: offsets[0] });

    const image = await stack.dataSource.getRepository(Image).findOneByOrFail({ id: imageId });
    expect(image).toMatchObject({ status: 'ready', sizeBytes: SIZE, currentOperationId: null });
    const vol = await (
      await stack.libvirt.get()
    )
      .lookupPoolByName(TEST_POOL)
      .then((p) => p.lookupVolumeByName(image.volumeName));
    const back = path.join(work, 'back.img');
    await vol.downloadFile(back);
    expect(createHash('sha256').update(readFileSync(back)).digest('hex')).toBe(sha256);
    expect(await imageLeftovers(made, { ...stack, stagingDir: staging })).toEqual(NO_IMAGE_LEFTOVERS);
    await kill9(next.child);
  });
});
