/**
 * Routes are declared once, as data: method, path, the zod schemas of params/query/body, the responses
 * and the handler. The same declaration mounts the Express route (authentication, Idempotency-Key,
 * validation) and registers the OpenAPI path, so every route is documented by the schemas that validate it.
 */
import { randomUUID } from 'node:crypto';
import { type OpenAPIRegistry, type RouteConfig } from '@asteasolutions/zod-to-openapi';
import { type Request, type Response, type Router } from 'express';
import { type z, ZodError } from 'zod';
import { OperationConflictError } from '../client/errors';
import { principalOf } from './auth';
import { badRequest, conflictFromOperation, ProblemError, zodFieldErrors } from './errors';
import { accepted, type HandlerResult, type RequestIds } from './handler';
import { type IdempotencyStore } from './idempotency';
import { type Principal } from './permissions';
import { OperationResponse, ProblemSchema } from './schemas';

type AnyObject = z.ZodObject | z.ZodPipe | z.ZodType;

export type { RequestIds } from './handler';

/** What a handler receives. */
export interface HandlerContext<P, Q, B> {
  req: Request;
  principal: Principal;
  params: P;
  query: Q;
  body: B;
  ids: RequestIds;
  /** `${userId}:${Idempotency-Key}` when the caller sent one (passed to workflows). */
  idempotencyKey: string | null;
}

/** What a route declares besides its method, path, tag, summary and handler. */
export interface RouteShape<P = unknown, Q = unknown, B = unknown> {
  /** false: no bearer token needed (login, health). Default true. */
  auth?: boolean;
  params?: z.ZodType<P>;
  query?: z.ZodType<Q>;
  body?: z.ZodType<B>;
  /** status → description and body schema. Problems (4xx/5xx) are added for you. */
  responses: Responses;
  /** Extra problem statuses this route can answer, beyond 400/401/500 (e.g. [403, 404, 409]). */
  problems?: number[];
}

/** A route's success responses: status → description and body schema. */
export type Responses = Record<number, { description: string; schema?: z.ZodType }>;

/** A route declaration. */
export interface RouteSpec<P = unknown, Q = unknown, B = unknown> extends RouteShape<P, Q, B> {
  method: 'get' | 'post' | 'put' | 'patch' | 'delete';
  /** Express path (`/api/machines/:id`). */
  path: string;
  summary: string;
  tag: string;
  handler: (ctx: HandlerContext<P, Q, B>) => Promise<HandlerResult>;
}

/** Declares a route with inferred types. */
export function route<P = Record<string, never>, Q = Record<string, never>, B = undefined>(
  spec: RouteSpec<P, Q, B>,
): RouteSpec {
  return spec as unknown as RouteSpec;
}

type Declare = <P = Record<string, never>, Q = Record<string, never>, B = undefined>(
  path: string,
  summary: string,
  shape: RouteShape<P, Q, B>,
  handler: RouteSpec<P, Q, B>['handler'],
) => RouteSpec;

/**
 * Declares the routes of one tag: `routesFor('users').get(path, summary, { params, problems, responses },
 * handler)` is `route({ method: 'get', path, tag: 'users', summary, params, problems, responses, handler })`.
 */
export function routesFor(tag: string): Record<RouteSpec['method'], Declare> {
  const declare =
    (method: RouteSpec['method']): Declare =>
    (path, summary, shape, handler) =>
      route({ method, path, tag, summary, ...shape, handler });
  return {
    get: declare('get'),
    post: declare('post'),
    put: declare('put'),
    patch: declare('patch'),
    delete: declare('delete'),
  };
}

/** A handler that starts an operation and answers 202 with it (located at the operation). */
export function starting<P, Q, B>(
  start: (ctx: HandlerContext<P, Q, B>) => Promise<{ id: string }>,
): RouteSpec<P, Q, B>['handler'] {
  return async (ctx) => accepted(await start(ctx));
}

/** 200 with a body. */
export const ok = (description: string, schema?: z.ZodType): Responses => ({
  200: schema ? { description, schema } : { description },
});
/** 201 with the created resource. */
export const created = (description: string, schema: z.ZodType): Responses => ({
  201: { description, schema },
});
/** 202 with the operation started (and what else the body carries). */
export const acceptedAs = (description: string, schema: z.ZodType): Responses => ({
  202: { description, schema },
});
/** 202 with the operation started. */
export const ACCEPTED: Responses = acceptedAs('accepted', OperationResponse);
/** 204 after a delete. */
export const DELETED: Responses = { 204: { description: 'deleted' } };

const MUTATING = new Set(['post', 'put', 'patch', 'delete']);
const KEY = /^[\x21-\x7e]{1,100}$/;

function parse<T>(schema: z.ZodType<T> | undefined, value: unknown, where: string): T {
  if (!schema) return (value ?? {}) as T;
  const r = schema.safeParse(value ?? {});
  if (!r.success)
    throw badRequest(`invalid ${where}`, zodFieldErrors(r.error, where === 'body' ? '' : where));
  return r.data;
}

/** Turns the errors a handler may throw on purpose into responses (so they can be stored for replay). */
function asResult(err: unknown): HandlerResult | null {
  if (err instanceof ProblemError) return { status: err.status, body: err.toProblem(), problem: true };
  if (err instanceof OperationConflictError)
    return { status: 409, body: conflictFromOperation(err).toProblem(), problem: true };
  if (err instanceof ZodError)
    return {
      status: 400,
      body: badRequest('invalid request', zodFieldErrors(err)).toProblem(),
      problem: true,
    };
  return null;
}

function send(res: Response, result: HandlerResult, replayed = false): void {
  for (const [k, v] of Object.entries(result.headers ?? {})) res.setHeader(k, v);
  if (replayed) res.setHeader('Idempotent-Replayed', 'true');
  if (result.body === undefined) {
    res.status(result.status).end();
    return;
  }
  res
    .status(result.status)
    .type(result.problem ? 'application/problem+json' : 'application/json')
    .send(JSON.stringify(result.body));
}

/** Mounts a route on a router. */
export function mount(
  router: Router,
  spec: RouteSpec,
  deps: {
    authenticate: (req: Request, res: Response, next: () => void) => Promise<void>;
    idempotency: IdempotencyStore;
  },
): void {
  const handlers = [] as Array<(req: Request, res: Response, next: (err?: unknown) => void) => unknown>;
  if (spec.auth !== false) handlers.push(deps.authenticate);
  handlers.push(async (req: Request, res: Response) => {
    const principal = spec.auth === false ? (undefined as unknown as Principal) : principalOf(req);
    const rawKey = req.get('Idempotency-Key');
    const useKey = rawKey !== undefined && MUTATING.has(spec.method) && spec.auth !== false;
    if (useKey && !KEY.test(rawKey)) {
      throw badRequest('Idempotency-Key must be 1–100 visible ASCII characters', [
        { field: 'Idempotency-Key', message: 'invalid' },
      ]);
    }
    const run = async (ids: RequestIds): Promise<HandlerResult> => {
      try {
        const params = parse(spec.params, req.params, 'path');
        const query = parse(spec.query, req.query, 'query');
        const body = spec.body ? parse(spec.body, req.body, 'body') : undefined;
        if (!spec.body && req.body !== undefined && Object.keys(req.body as object).length > 0) {
          throw badRequest('this route takes no body', [{ field: '(body)', message: 'unexpected body' }]);
        }
        return await spec.handler({
          req,
          principal,
          params,
          query,
          body,
          ids,
          idempotencyKey: useKey ? `${principal.id}:${rawKey}` : null,
        });
      } catch (err) {
        const result = asResult(err);
        if (result) return result;
        throw err;
      }
    };
    if (!useKey) {
      send(res, await run({ resource: randomUUID(), operation: randomUUID() }));
      return;
    }
    const outcome = await deps.idempotency.run(
      {
        userId: principal.id,
        key: rawKey,
        method: req.method,
        path: req.originalUrl,
        hash: deps.idempotency.hash(req.method, req.originalUrl, req.body),
      },
      run,
    );
    send(res, outcome.result, outcome.replayed);
  });
  router[spec.method](spec.path, ...(handlers as never[]));
}

/** The OpenAPI path of an Express path (`/a/:id` → `/a/{id}`). */
export function openApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** Registers a route in the OpenAPI registry. */
export function document(registry: OpenAPIRegistry, spec: RouteSpec): void {
  const problem = (description: string) => ({
    description,
    content: { 'application/problem+json': { schema: ProblemSchema } },
  });
  const responses: RouteConfig['responses'] = {};
  for (const [status, r] of Object.entries(spec.responses)) {
    responses[status] = r.schema
      ? { description: r.description, content: { 'application/json': { schema: r.schema } } }
      : { description: r.description };
  }
  const statuses = new Set([...(spec.problems ?? []), 500]);
  if (spec.params || spec.query || spec.body || MUTATING.has(spec.method)) statuses.add(400);
  if (spec.auth !== false) statuses.add(401);
  const describe: Record<number, string> = {
    400: 'invalid request (the offending fields are listed)',
    401: 'no token, or an invalid one',
    403: 'not allowed',
    404: 'unknown, or not visible to the caller',
    409: 'another operation is running on this machine (named), a name is taken, or the Idempotency-Key is in use',
    422: 'a valid request the domain refuses',
    503: 'a dependency is down',
    500: 'unexpected error (no details)',
  };
  for (const s of statuses) responses[String(s)] = problem(describe[s] ?? 'error');
  const request: RouteConfig['request'] = {};
  if (spec.params) request.params = spec.params as never;
  if (spec.query) request.query = spec.query as never;
  if (spec.body)
    request.body = {
      required: true,
      content: { 'application/json': { schema: spec.body as AnyObject as never } },
    };
  registry.registerPath({
    method: spec.method,
    path: openApiPath(spec.path),
    summary: spec.summary,
    tags: [spec.tag],
    ...(spec.auth === false ? { security: [] } : {}),
    ...(MUTATING.has(spec.method) && spec.auth !== false
      ? {
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              required: false,
              description: 'a retry with the same key returns the first response and starts nothing new',
              schema: { type: 'string', minLength: 1, maxLength: 100 },
            },
          ],
        }
      : {}),
    request,
    responses,
  });
}
