/**
 * HTTP errors as `application/problem+json` (RFC 9457): `{type, title, status, detail, errors?}`.
 * Handlers throw {@link ProblemError}s; the error middleware maps everything else (zod issues, body
 * parser errors, operation conflicts) and answers 500 with no internals for anything unexpected.
 */
import { type ErrorRequestHandler, type RequestHandler, type Response } from 'express';
import { type Logger } from 'pino';
import { ZodError } from 'zod';
import { OperationConflictError } from '../client/errors';

/** One offending field of a request. */
export interface FieldError {
  field: string;
  message: string;
}

/** The problem document every error response carries. */
export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: FieldError[];
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not found',
  409: 'Conflict',
  413: 'Payload too large',
  415: 'Unsupported media type',
  422: 'Unprocessable request',
  500: 'Internal server error',
  503: 'Service unavailable',
};

/**
 * Thrown when a handler (or the request machinery around it) refuses a request on purpose: it becomes a
 * problem response as is, its message the `detail` shown to the caller. Build it with the factories below.
 */
export class ProblemError extends Error {
  override readonly name = 'ProblemError';
  constructor(
    public readonly status: number,
    detail: string,
    public readonly extra: {
      type?: string;
      title?: string;
      errors?: FieldError[];
      [k: string]: unknown;
    } = {},
  ) {
    super(detail);
  }

  /** The problem document. */
  toProblem(): Problem {
    const { type, title, ...rest } = this.extra;
    return {
      type: type ?? `https://vmflow.dev/problems/${slug(title ?? TITLES[this.status] ?? 'error')}`,
      title: title ?? TITLES[this.status] ?? 'Error',
      status: this.status,
      detail: this.message,
      ...rest,
    };
  }
}

function slug(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
}

/** Thrown when the request is invalid (400), naming the offending fields. */
export const badRequest = (detail: string, errors?: FieldError[]) =>
  new ProblemError(400, detail, errors ? { errors } : {});
/** Thrown when the caller sent no bearer token, or an invalid one (401). */
export const unauthorized = (detail = 'a valid bearer token is required') => new ProblemError(401, detail);
/** Thrown when the caller may see the resource but not do this (403). */
export const forbidden = (detail = 'you may not do this') => new ProblemError(403, detail);
/** Thrown when the resource is unknown, or not visible to the caller (404; never reveal which). */
export const notFound = (what: string, field?: string) =>
  new ProblemError(
    404,
    `${what} not found`,
    field ? { errors: [{ field, message: `${what} not found` }] } : {},
  );
/** Thrown when a name is taken or the resource is busy (409). */
export const conflict = (detail: string, extra: Record<string, unknown> = {}) =>
  new ProblemError(409, detail, extra);
/** Thrown when the domain refuses a valid request (422). */
export const refused = (detail: string, field?: string) =>
  new ProblemError(422, detail, {
    title: 'Refused',
    ...(field ? { errors: [{ field, message: detail }] } : {}),
  });

/** The field errors of a zod error, with dotted paths prefixed by where they came from. */
export function zodFieldErrors(err: ZodError, prefix = ''): FieldError[] {
  return err.issues.map((i) => {
    const path = i.path.map(String).join('.');
    const keys = i.code === 'unrecognized_keys' ? (i as unknown as { keys: string[] }).keys : null;
    const field = keys
      ? keys.map((k) => [prefix, path, k].filter(Boolean).join('.')).join(',')
      : [prefix, path].filter(Boolean).join('.');
    return { field: field || prefix || '(body)', message: i.message };
  });
}

/** Sends a problem response. */
export function sendProblem(res: Response, problem: Problem): void {
  res.status(problem.status).type('application/problem+json').send(JSON.stringify(problem));
}

/**
 * Maps an operation conflict to the 409 naming the running operation; thrown when a start met
 * {@link OperationConflictError}.
 */
export function conflictFromOperation(err: OperationConflictError): ProblemError {
  return new ProblemError(
    409,
    `another operation is running on this ${err.resourceKind === 'firewall' ? 'firewall scope' : err.resourceKind}: ${err.runningType ?? 'unknown'} ${err.runningOperationId ?? err.runningWorkflowId}`,
    {
      title: 'Operation in progress',
      runningOperation: {
        id: err.runningOperationId,
        type: err.runningType,
        workflowId: err.runningWorkflowId,
      },
    },
  );
}

/** 404 for any path no route matched. */
export const notFoundHandler: RequestHandler = (req, res) => {
  sendProblem(res, new ProblemError(404, `no route for ${req.method} ${req.path}`).toProblem());
};

/** The last middleware: every error becomes problem+json; unexpected ones are logged and hidden. */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    if (res.headersSent) return;
    let problem: Problem;
    if (err instanceof ProblemError) problem = err.toProblem();
    else if (err instanceof OperationConflictError) problem = conflictFromOperation(err).toProblem();
    else if (err instanceof ZodError)
      problem = badRequest('the request is invalid', zodFieldErrors(err)).toProblem();
    else if (isBodyParserError(err)) {
      const status = err.status === 413 ? 413 : err.status === 415 ? 415 : 400;
      const detail =
        status === 413
          ? 'the body is too large'
          : status === 415
            ? 'unsupported body encoding'
            : 'the body is not valid JSON';
      problem = new ProblemError(status, detail).toProblem();
    } else {
      logger.error({ err, method: req.method, path: req.path }, 'request failed');
      problem = new ProblemError(500, 'the server could not handle this request').toProblem();
    }
    sendProblem(res, problem);
  };
}

function isBodyParserError(err: unknown): err is { status: number; type: string } {
  return (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as { type?: unknown }).type === 'string' &&
    typeof (err as { status?: unknown }).status === 'number' &&
    (err as { status: number }).status < 500
  );
}
