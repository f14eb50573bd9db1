/**
 * Row locks and an operation's hold on a machine or network row (`currentOperationId`): what every status
 * write of {@link createMachineDbActivities} and {@link createNetworkDbActivities} does the same way.
 */
import { type DataSource, type EntityManager, type EntityTarget, type FindOptionsWhere } from 'typeorm';
import { type Machine } from '../entities/machine';
import { type Image } from '../entities/image';
import { type Network } from '../entities/network';
import { FailureType } from '../workflows/shared';
import { permanent } from './failures';

/**
 * The row of `entity` with this id, locked for update (`SELECT … FOR UPDATE`) until the caller's
 * transaction ends; null when there is none. How every read-then-write of a row starts.
 */
export function lockRow<E extends { id: string }>(
  m: EntityManager,
  entity: EntityTarget<E>,
  id: string,
): Promise<E | null> {
  return m.findOne(entity, { where: { id } as FindOptionsWhere<E>, lock: { mode: 'pessimistic_write' } });
}

/** {@link lockRow}, failing NotFound (`<what> not found`, naming `field`) when there is no such row. */
export async function lockExisting<E extends { id: string }>(
  m: EntityManager,
  entity: EntityTarget<E>,
  id: string,
  what: string,
  field: string,
): Promise<E> {
  const row = await lockRow(m, entity, id);
  if (!row) throw permanent(FailureType.NotFound, `${what} not found`, { field });
  return row;
}

/**
 * True when an undo must leave the row alone: it reverts only while its own operation (`onlyIfHeldBy`)
 * still holds the row, never another operation's change. False without `onlyIfHeldBy`.
 */
export function heldByAnother(
  row: { currentOperationId: string | null },
  onlyIfHeldBy: string | undefined,
): boolean {
  return onlyIfHeldBy !== undefined && row.currentOperationId !== onlyIfHeldBy;
}

/**
 * Fails (IllegalTransition) when a `what` (`machine`, `network`) in status `current` is asked to move to
 * `to` from anywhere but `from`. A row already in `to` passes: the write is a retry.
 */
export function assertFrom<S extends string>(
  what: string,
  current: S,
  to: S,
  from: readonly S[] | undefined,
): void {
  if (current !== to && from && !from.includes(current))
    throw permanent(FailureType.IllegalTransition, `${what} is ${current}, expected ${from.join(' or ')}`, {
      status: current,
    });
}

/** The hold a status write leaves: released, else taken by the writing operation (none without one). */
export function holdAfter(
  operationId: string | null,
  release: boolean | undefined,
): { currentOperationId?: string | null } {
  if (release) return { currentOperationId: null };
  return operationId ? { currentOperationId: operationId } : {};
}

/**
 * Ends an operation's hold (currentOperationId) on a machine or network row, if it still has it: the last
 * write of every operation, so its undos can tell their own changes apart until then.
 */
export async function releaseHold(
  dataSource: DataSource | EntityManager,
  entity: typeof Machine | typeof Network | typeof Image,
  id: string,
  operationId: string,
): Promise<void> {
  await dataSource
    .createQueryBuilder()
    .update(entity)
    .set({ currentOperationId: null })
    .where('id = :id AND currentOperationId = :op', { id, op: operationId })
    .execute();
}
