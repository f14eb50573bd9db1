/**
 * Rollup math: raw samples folded into one row per VM per bucket (1 minute in storage): the mean of each
 * field over the samples that reported it (a null is "not known", never 0), the peak CPU, and how many
 * samples went in. Pure; the store (src/metrics/store.ts) reads the raw rows and writes the result.
 */
import { METRIC_FIELDS, type MetricPoint, type MetricValues } from './point';

/** One VM's bucket. */
export interface RollupRow extends MetricValues {
  machineId: string;
  /** Start of the bucket. */
  bucket: Date;
  /** Samples folded in. */
  samples: number;
  /** How many of them carried an agent sample. */
  agentSamples: number;
  /** Peak of `cpuPct` over the bucket. */
  cpuPctMax: number | null;
}

/** Start of the `bucketMs` bucket that holds `at` (buckets are aligned to the epoch). */
export function bucketStart(at: Date | number, bucketMs: number): Date {
  const t = typeof at === 'number' ? at : at.getTime();
  return new Date(t - (((t % bucketMs) + bucketMs) % bucketMs));
}

/** Folds raw points (any VMs, any order) into one row per VM per bucket, sorted by VM then time. */
export function rollup(points: readonly MetricPoint[], bucketMs: number): RollupRow[] {
  const acc = new Map<
    string,
    { row: RollupRow; sums: Record<string, number>; counts: Record<string, number> }
  >();
  for (const p of points) {
    const bucket = bucketStart(p.at, bucketMs);
    const key = `${p.machineId}|${bucket.getTime()}`;
    let a = acc.get(key);
    if (!a) {
      const row = {
        machineId: p.machineId,
        bucket,
        samples: 0,
        agentSamples: 0,
        cpuPctMax: null,
      } as RollupRow;
      a = { row, sums: {}, counts: {} };
      acc.set(key, a);
    }
    a.row.samples++;
    if (p.agent) a.row.agentSamples++;
    for (const f of METRIC_FIELDS) {
      const v = p[f];
      if (v === null || !Number.isFinite(v)) continue;
      a.sums[f] = (a.sums[f] ?? 0) + v;
      a.counts[f] = (a.counts[f] ?? 0) + 1;
    }
    if (p.cpuPct !== null) a.row.cpuPctMax = Math.max(a.row.cpuPctMax ?? 0, p.cpuPct);
  }
  const rows = [...acc.values()].map(({ row, sums, counts }) => {
    for (const f of METRIC_FIELDS) row[f] = counts[f] ? sums[f]! / counts[f]! : null;
    return row;
  });
  return rows.sort((x, y) =>
    x.machineId === y.machineId
      ? x.bucket.getTime() - y.bucket.getTime()
      : x.machineId < y.machineId
        ? -1
        : 1,
  );
}
