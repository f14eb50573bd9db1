/**
 * What a route handler gets from the request machinery and gives back, shared by `route.ts` (which calls
 * handlers) and `idempotency.ts` (which stores and replays their results) without either importing the
 * other.
 */

import { type Principal } from './permissions';

/** Who asks, with the ids and Idempotency-Key of the request: what an operation it starts records. */
export interface Caller {
  principal: Principal;
  ids: RequestIds;
  /** `${userId}:${Idempotency-Key}` when the caller sent one (passed to workflows). */
  idempotencyKey: string | null;
}

/** Ids a handler creates; pinned by the Idempotency-Key record so a retried request reuses them. */
export interface RequestIds {
  /** The id of the resource it creates (machine, user, department, template). */
  resource: string;
  /** The id of the operation it starts. */
  operation: string;
}

/** What a handler answers. */
export interface HandlerResult {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
  /** The body is a problem document. */
  problem?: boolean;
}

/** 202 with the operation started (and what else the body carries before it), located at the operation. */
export function accepted(operation: { id: string }, body: Record<string, unknown> = {}): HandlerResult {
  return {
    status: 202,
    body: { ...body, operation },
    headers: { Location: `/api/operations/${operation.id}` },
  };
}
