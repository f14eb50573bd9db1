/**
 * Database activities of the image workflows (control task queue). Each is idempotent; status writes and
 * their `images:<action>` events commit together. Like networks, an operation holds the row
 * (`currentOperationId`) until its last write, so an undo reverts only its own operation's change.
 */
import { type DataSource, type EntityManager } from 'typeorm';
import { Image, type ImageStatus } from '../entities/image';
import { describeUsers, imageUsers, imageView } from '../images/queries';
import { FailureType } from '../workflows/shared';
import { currentWorkflowId, publishEvent } from './events';
import { assertFrom, heldByAnother, holdAfter, lockExisting, lockRow, releaseHold } from './db-hold';
import { permanent } from './failures';

/** Dependencies of the image database activities. */
export interface ImageDbActivityDeps {
  dataSource: DataSource;
}

/** An image as workflows see it. */
export type ImageRecord = ReturnType<typeof imageView>;

/** The fields of an image row a status write may record alongside. */
export type ImageFields = Partial<
  Pick<Image, 'path' | 'virtualSizeBytes' | 'sizeBytes' | 'sha256' | 'lastError'>
>;

/** Writes an `images:<action>` event (admins' room) in the caller's transaction. */
function imageEvent(
  m: EntityManager,
  image: Image,
  action: string,
  e: { operationId: string; actorId: string | null | undefined; undo?: boolean },
) {
  return publishEvent(m, {
    resource: 'images',
    action,
    resourceId: image.id,
    payload: { image: imageView(image), operationId: e.operationId },
    actorId: e.actorId ?? null,
    workflowId: currentWorkflowId(),
    dedupeKey: `${e.operationId}:images:${action}:${image.status}${e.undo ? ':undo' : ''}`,
  });
}

/** Database activities of the image workflows. */
export function createImageDbActivities({ dataSource }: ImageDbActivityDeps) {
  const tx = <T>(fn: (m: EntityManager) => Promise<T>) => dataSource.transaction(fn);

  return {
    /** Loads an image (null when it does not exist). */
    async getImage(imageId: string): Promise<ImageRecord | null> {
      const row = await dataSource.manager.findOne(Image, { where: { id: imageId } });
      return row ? imageView(row) : null;
    },

    /**
     * Moves an image to a status (only from `from`, when given), records fields alongside and emits
     * `images:<action>` (default `update`). With `onlyIfHeldBy`, changes nothing unless that operation holds
     * the image. With `requireUnused`, refuses (InUseError, naming them) while templates or machines use it,
     * in the same transaction.
     */
    async setImageStatus(input: {
      operationId: string;
      actorId?: string | null;
      imageId: string;
      status: ImageStatus;
      from?: ImageStatus[];
      fields?: ImageFields;
      action?: string;
      release?: boolean;
      onlyIfHeldBy?: string;
      requireUnused?: boolean;
    }): Promise<ImageRecord> {
      return tx(async (m) => {
        const row = await lockExisting(m, Image, input.imageId, 'image', 'imageId');
        if (heldByAnother(row, input.onlyIfHeldBy)) return imageView(row);
        assertFrom('image', row.status, input.status, input.from);
        if (row.currentOperationId && row.currentOperationId !== input.operationId)
          throw permanent(FailureType.IllegalTransition, 'another operation holds the image', {
            status: row.status,
          });
        if (input.requireUnused) {
          const users = await imageUsers(m, row.id);
          if (users.templates.length || users.machines.length)
            throw permanent(FailureType.InUse, `the image is still used: ${describeUsers(users)}`, {
              ...users,
            });
        }
        await m.update(
          Image,
          { id: row.id },
          { status: input.status, ...(input.fields ?? {}), ...holdAfter(input.operationId, input.release) },
        );
        const after = await m.findOneOrFail(Image, { where: { id: row.id } });
        await imageEvent(m, after, input.action ?? 'update', {
          operationId: input.operationId,
          actorId: input.actorId,
          undo: input.onlyIfHeldBy !== undefined,
        });
        return imageView(after);
      });
    },

    /** Ends an operation's hold on an image, if it still has it: the last write of a successful operation. */
    async releaseImage(input: { imageId: string; operationId: string }): Promise<void> {
      await releaseHold(dataSource, Image, input.imageId, input.operationId);
    },

    /** Deletes the image row (idempotent) and emits `images:delete`; refused while anything uses it. */
    async deleteImageRecord(input: {
      operationId: string;
      actorId: string | null;
      imageId: string;
    }): Promise<void> {
      await tx(async (m) => {
        const row = await lockRow(m, Image, input.imageId);
        if (!row) return;
        const users = await imageUsers(m, row.id);
        if (users.templates.length || users.machines.length)
          throw permanent(FailureType.InUse, `the image is still used: ${describeUsers(users)}`, {
            ...users,
          });
        await m.delete(Image, { id: row.id });
        await imageEvent(m, { ...row, status: 'deleting' } as Image, 'delete', input);
      });
    },
  };
}

export type ImageDbActivities = ReturnType<typeof createImageDbActivities>;
