/**
 * The durable Idempotency-Key store on MariaDB: one execution among concurrent requests, replay of the
 * stored response, takeover (with the same ids) after a request died, release after a 409, and refusal
 * of a reused key with another request.
 */
import { randomUUID } from 'node:crypto';
import { type DataSource } from 'typeorm';
import { IdempotencyStore, requestHash, type HandlerResult } from '../../../src/api/idempotency';
import { type RequestIds } from '../../../src/api/route';
import { IdempotencyRecord } from '../../../src/entities/idempotency-record';
import { openTestDataSource } from '../../support/db';

describe('IdempotencyStore', () => {
  let ds: DataSource;
  let store: IdempotencyStore;
  const userId = randomUUID();
  const req = (key: string, body: unknown = { a: 1 }) => ({
    userId,
    key,
    method: 'POST',
    path: '/api/x',
    hash: requestHash('POST', '/api/x', body),
  });

  beforeAll(async () => {
    ds = await openTestDataSource();
    store = new IdempotencyStore(ds, { leaseMs: 2_000, waitMs: 5_000, pollMs: 20 });
  });
  afterAll(async () => {
    await ds?.getRepository(IdempotencyRecord).delete({ userId });
    await ds?.destroy();
  });

  it('runs once among concurrent requests and replays the stored response', async () => {
    let runs = 0;
    const exec = async (ids: RequestIds): Promise<HandlerResult> => {
      runs++;
      await new Promise((r) => setTimeout(r, 200));
      return { status: 202, body: { id: ids.resource } };
    };
    const key = randomUUID();
    const results = await Promise.all(Array.from({ length: 6 }, () => store.run(req(key), exec)));
    expect(runs).toBe(1);
    expect(new Set(results.map((r) => JSON.stringify(r.result.body))).size).toBe(1);
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    const later = await store.run(req(key), exec);
    expect(later).toMatchObject({ replayed: true, result: { status: 202, body: results[0]!.result.body } });
    expect(runs).toBe(1);
  });

  it('a request that died leaves its ids to the retry that takes over', async () => {
    const key = randomUUID();
    const seen: RequestIds[] = [];
    await expect(
      store.run(req(key), async (ids) => {
        seen.push(ids);
        throw new Error('crashed mid-way');
      }),
    ).rejects.toThrow('crashed');
    const again = await store.run(req(key), async (ids) => {
      seen.push(ids);
      return { status: 201, body: { ok: true } };
    });
    expect(again.replayed).toBe(false);
    expect(seen[1]).toEqual(seen[0]);
    // A lease that simply expired (process killed) is taken over the same way.
    const key2 = randomUUID();
    const pinned = { resource: randomUUID(), operation: randomUUID() };
    await ds.getRepository(IdempotencyRecord).insert({
      userId,
      idempotencyKey: key2,
      method: 'POST',
      path: '/api/x',
      requestHash: req(key2).hash,
      state: 'pending',
      ids: pinned as never,
      responseStatus: null,
      responseBody: null as never,
      lockedUntil: new Date(Date.now() - 1),
    });
    const took = await store.run(req(key2), async (ids) => ({ status: 202, body: ids }));
    expect(took.result.body).toEqual(pinned);
  });

  it('releases the key after a 409, and refuses the key with another request', async () => {
    const key = randomUUID();
    let n = 0;
    const first = await store.run(req(key), async () => ({ status: 409, body: { n: ++n }, problem: true }));
    expect(first.result.status).toBe(409);
    const second = await store.run(req(key), async () => ({ status: 202, body: { n: ++n } }));
    expect(second).toMatchObject({ replayed: false, result: { status: 202, body: { n: 2 } } });
    await expect(store.run(req(key, { a: 2 }), async () => ({ status: 202 }))).rejects.toMatchObject({
      status: 422,
    });
  });
});
