/**
 * Keyset pagination of the list routes: newest first over (createdAt, id), with an opaque cursor naming
 * the last row of a page. Cursors are held by clients: their encoding never changes.
 */
import { type ObjectLiteral, type SelectQueryBuilder } from 'typeorm';
import { badRequest } from './errors';

/** The page size when the query names none. */
export const DEFAULT_PAGE_SIZE = 50;

/** A page of a list. */
export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** Opaque keyset cursor over (createdAt, id), newest first. */
export function encodeCursor(createdAt: Date, id: string): string {
  return Buffer.from(JSON.stringify([new Date(createdAt).toISOString(), id])).toString('base64url');
}

/** Decodes a cursor; 400 when it is not one of ours. */
export function decodeCursor(cursor: string): { createdAt: Date; id: string } {
  try {
    const [at, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as [string, string];
    const createdAt = new Date(at);
    if (typeof id !== 'string' || !/^[0-9a-f-]{36}$/i.test(id) || Number.isNaN(createdAt.getTime()))
      throw new Error('bad');
    return { createdAt, id };
  } catch {
    throw badRequest('invalid cursor', [
      { field: 'query.cursor', message: 'not a cursor returned by this API' },
    ]);
  }
}

/** A page as a list route answers it: its items through the resource's view. */
export function viewPage<T, V>(page: Page<T>, view: (item: T) => V): { status: 200; body: Page<V> } {
  return { status: 200, body: { items: page.items.map((item) => view(item)), nextCursor: page.nextCursor } };
}

/**
 * Reads one page of `qb` (already filtered): rows after the cursor, newest first, one more than the page
 * size to know whether a next page exists. `alias` is the alias of the listed table; `fetch` reads the
 * rows (default: entities; the machine list reads raw rows).
 */
export async function keysetPage<T extends { createdAt: Date; id: string }>(
  qb: SelectQueryBuilder<ObjectLiteral>,
  alias: string,
  query: { cursor?: string; limit?: number },
  fetch: (qb: SelectQueryBuilder<ObjectLiteral>) => Promise<T[]> = (q) => q.getMany() as Promise<T[]>,
): Promise<Page<T>> {
  const limit = query.limit ?? DEFAULT_PAGE_SIZE;
  if (query.cursor) {
    const c = decodeCursor(query.cursor);
    qb.andWhere(`(${alias}.createdAt < :cAt OR (${alias}.createdAt = :cAt AND ${alias}.id < :cId))`, {
      cAt: c.createdAt,
      cId: c.id,
    });
  }
  const rows = await fetch(
    qb
      .orderBy(`${alias}.createdAt`, 'DESC')
      .addOrderBy(`${alias}.id`, 'DESC')
      .limit(limit + 1),
  );
  return pageOfRows(rows, limit);
}

/** A page from up to limit+1 rows read newest first: the first `limit`, and a cursor when there are more. */
export function pageOfRows<T extends { createdAt: Date; id: string }>(rows: T[], limit: number): Page<T> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return { items, nextCursor: rows.length > limit && last ? encodeCursor(last.createdAt, last.id) : null };
}
