/**
 * The access-matrix runner: every row (a route) is called as every kind of caller, and the statuses are
 * compared with the row's expectations in one assertion (so a failure lists every wrong cell). Problem
 * responses are checked to be problem+json without internals; 202s to name their operation.
 */
import { type RouteSpec } from '../../src/api/route';
import { type ApiHarness } from './api-harness';
import { CALLERS, type Caller, type CallerUsers } from './principals';

/** One route of a matrix. */
export interface AccessRow {
  method: string;
  /** Express path of the route (to check the table covers every route). */
  route: string;
  path: (caller: Caller) => string;
  body?: () => unknown;
  /** Per caller, in {@link CALLERS} order; null: not asked. */
  expect: [
    anonymous: number,
    owner: number,
    peer: number,
    outsider: number,
    manager: number,
    admin: number | null,
  ];
}

/** The routes of `routes` (filtered) that no row of the table covers, as `METHOD /path`. */
export function uncoveredRoutes(
  routes: RouteSpec[],
  rows: Array<Pick<AccessRow, 'method' | 'route'>>,
  keep: (r: RouteSpec) => boolean,
): string[] {
  const table = new Set(rows.map((r) => `${r.method} ${r.route}`));
  return routes
    .filter(keep)
    .map((r) => `${r.method.toUpperCase()} ${r.path}`)
    .filter((r) => !table.has(r));
}

/**
 * Calls every row as every caller. Returns what was answered and what was expected, one line per call,
 * for one `expect(got).toEqual(want)`.
 */
export async function runAccessMatrix(
  h: ApiHarness,
  u: CallerUsers,
  rows: AccessRow[],
  opts: {
    /** What a problem body must not show (stack traces, SQL, libvirt calls). */
    internals: RegExp;
    /** Problems must carry a `detail`. */
    detail?: boolean;
  },
): Promise<{ got: string[]; want: string[] }> {
  const got: string[] = [];
  const want: string[] = [];
  for (const row of rows) {
    for (const [i, caller] of CALLERS.entries()) {
      if (row.expect[i] === null) continue;
      const path = row.path(caller);
      const res = await h.call(row.method, path, {
        as: caller === 'anonymous' ? null : u[caller],
        ...(row.body ? { body: row.body() } : {}),
      });
      got.push(`${row.method} ${path} as ${caller}: ${res.status}`);
      want.push(`${row.method} ${path} as ${caller}: ${row.expect[i]}`);
      if (res.status >= 400) {
        expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        expect(res.body).toMatchObject({
          status: res.status,
          title: expect.any(String),
          ...(opts.detail ? { detail: expect.any(String) } : {}),
        });
        expect(JSON.stringify(res.body)).not.toMatch(opts.internals);
      }
      if (res.status === 202) {
        expect(res.body.operation).toMatchObject({ id: expect.any(String), status: expect.any(String) });
        expect(res.headers.get('location')).toBe(`/api/operations/${res.body.operation.id}`);
      }
    }
  }
  return { got, want };
}
