import { type EntityManager, type EntityTarget, type FindOptionsWhere } from 'typeorm';

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
