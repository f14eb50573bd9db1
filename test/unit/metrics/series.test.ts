/** The metrics route's choice of table and step (range, step, retention, point cap) and its columns. */
import { chooseSeries, seriesColumns } from '../../../src/api/routes/machine-metrics';
import { ProblemError } from '../../../src/api/errors';
import { METRICS_MAX_POINTS } from '../../../src/api/schemas-metrics';
import { METRIC_FIELDS } from '../../../src/metrics/point';
import { type SeriesPoint } from '../../../src/metrics/store';

const NOW = Date.UTC(2026, 11, 2, 15, 30, 0);
const settings = { intervalMs: 10_000, rawRetentionS: 3600 };
const ago = (s: number) => new Date(NOW - s * 1000);

describe('series choice', () => {
  it('reads raw samples at the collection interval for the last hour by default', () => {
    expect(chooseSeries({ from: ago(3600), to: new Date(NOW) }, undefined, NOW, settings)).toEqual({
      source: 'raw',
      step: 10,
      from: ago(3600),
    });
  });

  it('reads rollups past the raw retention, or for a step of a minute or more (rounded up to minutes)', () => {
    expect(chooseSeries({ from: ago(7200), to: ago(3600) }, 10, NOW, settings)).toMatchObject({
      source: 'minute',
      step: 60,
    });
    expect(chooseSeries({ from: ago(600), to: new Date(NOW) }, 90, NOW, settings)).toMatchObject({
      source: 'minute',
      step: 120,
    });
  });

  it('picks a step within the point cap: 24 hours of 1-minute rollups fit', () => {
    const day = chooseSeries({ from: ago(86_400), to: new Date(NOW) }, undefined, NOW, settings);
    expect(day).toMatchObject({ source: 'minute', step: 60 });
    const week = chooseSeries({ from: ago(7 * 86_400), to: new Date(NOW) }, undefined, NOW, settings);
    expect(Math.ceil((7 * 86_400) / week.step)).toBeLessThanOrEqual(METRICS_MAX_POINTS);
  });

  it('refuses a step that would give more points than the cap, naming the field', () => {
    let err: unknown;
    try {
      chooseSeries({ from: ago(3600), to: new Date(NOW) }, 1, NOW, settings);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ProblemError);
    expect((err as ProblemError).status).toBe(400);
    expect((err as ProblemError).toProblem()).toMatchObject({ errors: [{ field: 'query.step' }] });
  });

  it('aligns buckets to the step', () => {
    const r = chooseSeries({ from: new Date(NOW - 3_333), to: new Date(NOW) }, 10, NOW, settings);
    expect(r.from.getTime() % 10_000).toBe(0);
    expect(r.from.getTime()).toBeLessThanOrEqual(NOW - 3_333);
  });
});

describe('series columns', () => {
  it('gives one array per field, entry i for bucket at[i], rounded to what a chart shows', () => {
    const point = (at: number, cpu: number | null, bytes: number | null): SeriesPoint => {
      const p = { at: new Date(at), samples: 6, cpuPctMax: cpu } as SeriesPoint;
      for (const f of METRIC_FIELDS) p[f] = null;
      return { ...p, cpuPct: cpu, memUsedBytes: bytes };
    };
    const cols = seriesColumns([point(NOW, 12.3456, 1_048_576.6), point(NOW + 60_000, null, 99.994)]);
    expect(cols.at).toEqual([new Date(NOW).toISOString(), new Date(NOW + 60_000).toISOString()]);
    expect(cols.samples).toEqual([6, 6]);
    expect(cols.cpuPct).toEqual([12.35, null]);
    expect(cols.cpuPctMax).toEqual([12.35, null]);
    expect(cols.memUsedBytes).toEqual([1_048_577, 99.99]);
    expect(cols.load1).toEqual([null, null]);
    expect(Object.keys(cols).sort()).toEqual(['at', 'cpuPctMax', 'samples', ...METRIC_FIELDS].sort());
  });
});
