/**
 * GET /api/machines/:id/metrics — a VM's metrics series (docs/metrics.md), for whoever may see the VM
 * (the rule of GET /api/machines/:id: others get 404). The range and step choose the table: raw samples
 * when the step is under a minute and the range lies within the raw retention, the 1-minute rollups
 * otherwise (a step of a minute or more is rounded up to whole minutes). At most
 * {@link METRICS_MAX_POINTS} points: a finer step is refused naming `step`.
 */
import { METRIC_FIELDS } from '../../metrics/point';
import { readSeries, type SeriesPoint } from '../../metrics/store';
import { type ApiContext } from '../context';
import { badRequest } from '../errors';
import { visibleMachine } from '../lookups';
import { ok, routesFor, type RouteSpec } from '../route';
import { IdParams } from '../schemas';
import {
  METRICS_MAX_POINTS,
  METRICS_MAX_RANGE_S,
  MetricsQuery,
  MetricsSeriesSchema,
} from '../schemas-metrics';

/** What the route needs to know of the collection (the worker's METRICS_* settings). */
export interface MetricsApiSettings {
  intervalMs: number;
  rawRetentionS: number;
}

const DEFAULTS: MetricsApiSettings = { intervalMs: 10_000, rawRetentionS: 3600 };

/** The table and bucket of a request: a pure choice, given the time now. */
export function chooseSeries(
  range: { from: Date; to: Date },
  step: number | undefined,
  now: number,
  settings: MetricsApiSettings,
): { source: 'raw' | 'minute'; step: number; from: Date } {
  const rangeS = (range.to.getTime() - range.from.getTime()) / 1000;
  const rawFits = range.from.getTime() >= now - settings.rawRetentionS * 1000;
  const finest = Math.max(1, Math.ceil(rangeS / METRICS_MAX_POINTS));
  let s = step ?? Math.max(Math.ceil(settings.intervalMs / 1000), finest);
  const source = s < 60 && rawFits ? 'raw' : 'minute';
  if (source === 'minute') s = Math.ceil(Math.max(s, 60) / 60) * 60;
  if (Math.ceil(rangeS / s) > METRICS_MAX_POINTS)
    throw badRequest(
      `at most ${METRICS_MAX_POINTS} points: step must be at least ${finest} s for this range`,
      [{ field: 'query.step', message: `at least ${finest} for this range` }],
    );
  // Buckets aligned to the step (from the epoch), so that the same request gives the same buckets.
  const fromMs = range.from.getTime() - (range.from.getTime() % (s * 1000));
  return { source, step: s, from: new Date(fromMs) };
}

/** A value as served: to 0.01 below 100 in magnitude (percentages, load), whole above (bytes, bytes/s, seconds). */
function rounded(v: number | null): number | null {
  if (v === null) return null;
  return Math.abs(v) >= 100 ? Math.round(v) : Math.round(v * 100) / 100;
}

/**
 * The series as columns (one array per field, entry i of each for bucket `at[i]`): 1440 one-minute points
 * with 19 fields as objects repeat every key 1440 times; as columns the body is a fraction of that. Values
 * are rounded to what a chart can show.
 */
export function seriesColumns(points: readonly SeriesPoint[]): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {
    at: points.map((p) => p.at.toISOString()),
    samples: points.map((p) => p.samples),
    cpuPctMax: points.map((p) => rounded(p.cpuPctMax)),
  };
  for (const f of METRIC_FIELDS) out[f] = points.map((p) => rounded(p[f]));
  return out;
}

/** The metrics route. */
export function machineMetricsRoutes(ctx: ApiContext, settings: MetricsApiSettings = DEFAULTS): RouteSpec[] {
  const api = routesFor('machines');
  return [
    api.get(
      '/api/machines/:id/metrics',
      "A machine's metrics series (raw samples or 1-minute rollups, by range and step)",
      {
        params: IdParams,
        query: MetricsQuery,
        problems: [404],
        responses: ok('the series', MetricsSeriesSchema),
      },
      async ({ principal, params, query }) => {
        const now = Date.now();
        const to = query.to ? new Date(query.to) : new Date(now);
        const from = query.from ? new Date(query.from) : new Date(to.getTime() - 3600_000);
        if (from >= to)
          throw badRequest('from must be before to', [{ field: 'query.from', message: 'must be before to' }]);
        if (to.getTime() - from.getTime() > METRICS_MAX_RANGE_S * 1000)
          throw badRequest(`the range may span at most ${METRICS_MAX_RANGE_S / 86_400} days`, [
            { field: 'query.from', message: `at most ${METRICS_MAX_RANGE_S / 86_400} days before to` },
          ]);
        const m = await visibleMachine(ctx, principal, params.id);
        const pick = chooseSeries({ from, to }, query.step, now, settings);
        const points = await readSeries(ctx.ds, m.id, pick.from, to, pick.step, pick.source);
        return {
          status: 200,
          body: {
            machineId: m.id,
            from: pick.from.toISOString(),
            to: to.toISOString(),
            step: pick.step,
            source: pick.source,
            ...seriesColumns(points),
          },
        };
      },
    ),
  ];
}
