/**
 * `Idempotency-Key` on POST/PUT/PATCH/DELETE (DESIGN decision 6), stored durably in `idempotency_record`.
 *
 * - The first request with a key inserts the record (`pending`, with the ids it will create and a lease):
 *   the primary key (caller, key) lets exactly one of two concurrent requests win. The loser waits for the
 *   winner's response and replays it, so both callers see one operation.
 * - The response is stored (`done`) and replayed, status and body, to every retry. A 409 (busy or name
 *   taken) or a 5xx is not the final word: the record is released so that a retry can run again, with the
 *   same ids (a 5xx keeps them; a takeover after a crash reuses them, and starting an operation whose id
 *   is already running or recorded is recognised as the same operation).
 * - The same key with another method, path or body is refused (422).
 */
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { type DataSource } from 'typeorm';
import { IdempotencyRecord } from '../entities/idempotency-record';
import { ProblemError } from './errors';
import { type HandlerResult, type RequestIds } from './handler';

export type { HandlerResult } from './handler';

/** A request's identity for idempotency. */
export interface IdempotentRequest {
  userId: string;
  key: string;
  method: string;
  path: string;
  hash: string;
}

/** Tuning. */
export interface IdempotencyOptions {
  /** How long a request owns a pending key before a retry may take it over. */
  leaseMs?: number;
  /** How long a concurrent duplicate waits for the first request's response. */
  waitMs?: number;
  pollMs?: number;
  /**
   * The server-side secret the stored request hashes are keyed with (see {@link requestHash}). Without it
   * (tests of the store alone), plain sha256.
   */
  hashKey?: string;
}

function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(',')}]`;
  if (value && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${stable(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The hash of method, path and body (key order does not matter) that a key's stored record compares a retry
 * with. Keyed (HMAC-SHA256 with a key derived from `secret`) when a secret is given: a body may carry a
 * user's secret (an exec's stdin), and the stored hash must not let anyone who reads the table test guesses
 * of it offline.
 */
export function requestHash(method: string, path: string, body: unknown, secret?: string): string {
  const text = `${method.toUpperCase()} ${path}\n${stable(body ?? null)}`;
  if (secret === undefined) return createHash('sha256').update(text).digest('hex');
  const key = createHmac('sha256', secret).update('vmflow idempotency request hash').digest();
  return createHmac('sha256', key).update(text).digest('hex');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The durable idempotency store. */
export class IdempotencyStore {
  private readonly leaseMs: number;
  private readonly waitMs: number;
  private readonly pollMs: number;

  constructor(
    private readonly ds: DataSource,
    opts: IdempotencyOptions = {},
  ) {
    this.leaseMs = opts.leaseMs ?? 30_000;
    this.waitMs = opts.waitMs ?? 15_000;
    this.pollMs = opts.pollMs ?? 50;
    this.hashKey = opts.hashKey;
  }

  private readonly hashKey: string | undefined;

  /** {@link requestHash} with this store's key. */
  hash(method: string, path: string, body: unknown): string {
    return requestHash(method, path, body, this.hashKey);
  }

  /** Runs `exec` once per (caller, key); returns its result, or the stored one on a retry. */
  async run(
    req: IdempotentRequest,
    exec: (ids: RequestIds) => Promise<HandlerResult>,
  ): Promise<{ result: HandlerResult; replayed: boolean }> {
    const repo = this.ds.getRepository(IdempotencyRecord);
    const pk = { userId: req.userId, idempotencyKey: req.key };
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      const ids: RequestIds = { resource: randomUUID(), operation: randomUUID() };
      // INSERT IGNORE: the primary key picks one winner among concurrent requests with this key.
      const inserted = await repo
        .createQueryBuilder()
        .insert()
        .values({
          ...pk,
          method: req.method,
          path: req.path.slice(0, 300),
          requestHash: req.hash,
          state: 'pending',
          ids: ids as never,
          responseStatus: null,
          responseBody: null as never,
          lockedUntil: new Date(Date.now() + this.leaseMs),
        })
        .orIgnore()
        .execute();
      if ((inserted.raw as { affectedRows?: number }).affectedRows === 1) {
        return { result: await this.execute(pk, ids, exec), replayed: false };
      }
      const row = await repo.findOne({ where: pk });
      if (!row) continue; // released meanwhile: try to win it again
      if (row.requestHash !== req.hash) {
        throw new ProblemError(422, 'this Idempotency-Key was already used with a different request', {
          title: 'Idempotency-Key reused',
          errors: [{ field: 'Idempotency-Key', message: 'used with a different request' }],
        });
      }
      if (row.state === 'done') {
        return {
          result: {
            status: row.responseStatus ?? 200,
            body: row.responseBody ?? undefined,
            problem: (row.responseStatus ?? 200) >= 400,
          },
          replayed: true,
        };
      }
      if (row.lockedUntil.getTime() <= Date.now()) {
        // The request that held it died (or failed with a 5xx): take it over, with the same ids.
        const taken = await repo
          .createQueryBuilder()
          .update()
          .set({ lockedUntil: new Date(Date.now() + this.leaseMs) })
          .where('userId = :userId AND idempotencyKey = :key AND state = :pending AND lockedUntil = :was', {
            userId: req.userId,
            key: req.key,
            pending: 'pending',
            was: row.lockedUntil,
          })
          .execute();
        if (taken.affected === 1)
          return { result: await this.execute(pk, row.ids as unknown as RequestIds, exec), replayed: false };
        continue;
      }
      if (Date.now() > deadline) {
        throw new ProblemError(
          409,
          'a request with this Idempotency-Key is still being processed; retry later',
          {
            title: 'Idempotency-Key in use',
          },
        );
      }
      await sleep(this.pollMs);
    }
  }

  private async execute(
    pk: { userId: string; idempotencyKey: string },
    ids: RequestIds,
    exec: (ids: RequestIds) => Promise<HandlerResult>,
  ): Promise<HandlerResult> {
    const repo = this.ds.getRepository(IdempotencyRecord);
    let result: HandlerResult;
    try {
      result = await exec(ids);
    } catch (err) {
      // Unknown outcome: keep the ids, release the lease so a retry takes over at once.
      await repo.update(pk, { lockedUntil: new Date(0) }).catch(() => undefined);
      throw err;
    }
    if (result.status === 409) {
      await repo.delete(pk); // nothing was done: a retry may run again
    } else if (result.status >= 500) {
      await repo.update(pk, { lockedUntil: new Date(0) });
    } else {
      await repo.update(pk, {
        state: 'done',
        responseStatus: result.status,
        responseBody: (result.body ?? null) as never,
      });
    }
    return result;
  }
}
