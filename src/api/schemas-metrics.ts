/**
 * The zod schemas of GET /api/machines/:id/metrics: as in src/api/schemas.ts, the same objects validate
 * the request and generate the OpenAPI document. The series' fields follow the stored ones
 * (src/metrics/point.ts, METRIC_FIELDS).
 */
import { z } from 'zod';
import { METRIC_FIELDS } from '../metrics/point';
import './schemas'; // extends zod with `.openapi()`

/** The most points one response may carry (24 hours of 1-minute points fit). */
export const METRICS_MAX_POINTS = 1500;
/** The longest range one request may ask for. */
export const METRICS_MAX_RANGE_S = 31 * 86_400;

const instant = (what: string) =>
  z.iso
    .datetime({ offset: true })
    .optional()
    .openapi({ param: { description: `${what} (RFC 3339)` } });

/** The query of the series. */
export const MetricsQuery = z.strictObject({
  from: instant('start of the range, included (default: one hour before `to`)'),
  to: instant('end of the range, excluded (default: now)'),
  step: z.coerce
    .number()
    .int()
    .min(1)
    .max(86_400)
    .optional()
    .openapi({
      param: {
        description:
          'seconds per point (default: the finest the data allows within the point cap); 60 or more reads the 1-minute rollups',
      },
    }),
});

const column = (description: string) => z.array(z.number().nullable()).openapi({ description });

/** The series, one array per field ("columns"): entry i of each is the bucket starting at `at[i]`. */
export const MetricsSeriesSchema = z
  .object({
    machineId: z.string(),
    from: z
      .string()
      .openapi({ description: 'start of the first bucket (the range start, aligned to the step)' }),
    to: z.string(),
    step: z.number().int().openapi({ description: 'seconds per bucket' }),
    source: z.enum(['raw', 'minute']).openapi({ description: 'raw samples or 1-minute rollups' }),
    at: z.array(z.string()).openapi({ description: 'start of each bucket that holds data (RFC 3339)' }),
    samples: z.array(z.number().int()).openapi({ description: 'raw samples in each bucket' }),
    cpuPctMax: column('peak CPU % in each bucket'),
    ...Object.fromEntries(METRIC_FIELDS.map((f) => [f, column(`mean ${f} in each bucket; null: not known`)])),
  })
  .openapi('MetricsSeries');
