/**
 * The metrics tables (migration MachineMetrics1764784800000; docs/metrics.md): raw samples written in
 * batches (one multi-row insert per collection interval and host), 1-minute rollups computed from them,
 * retention enforced by deletes in bounded chunks, and the reads of the API and of the live feed.
 * Plain SQL on the data source: these are bulk, append-mostly tables with no entity life cycle.
 */
import { type DataSource } from 'typeorm';
import { METRIC_FIELDS, type MetricPoint } from './point';
import { rollup, type RollupRow } from './rollup';

/** Rows per INSERT statement (bounds the packet size: ~100 bytes of values a row). */
const INSERT_CHUNK = 1000;
/** Rows per DELETE of the purge (short statements: they never hold locks long). */
const PURGE_CHUNK = 5000;
/** The rollup bucket. */
export const ROLLUP_MS = 60_000;

const cols = (names: readonly string[]) => names.map((c) => `\`${c}\``).join(', ');
const RAW_COLUMNS = ['machineId', 'at', 'agent', ...METRIC_FIELDS];
const MINUTE_COLUMNS = ['machineId', 'bucket', 'samples', 'agentSamples', 'cpuPctMax', ...METRIC_FIELDS];

/** A finite number or null (NaN and ±Infinity never reach the table). */
const val = (v: number | null) => (v === null || !Number.isFinite(v) ? null : v);

/**
 * One multi-row INSERT per chunk; a row already there (same key) is updated with `onDuplicate`, or left as
 * it is when `onDuplicate` is null (INSERT IGNORE).
 */
async function insertRows(
  ds: DataSource,
  table: string,
  columns: string[],
  rows: unknown[][],
  onDuplicate: string | null,
): Promise<void> {
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    const chunk = rows.slice(i, i + INSERT_CHUNK);
    const one = `(${columns.map(() => '?').join(', ')})`;
    const [verb, tail] =
      onDuplicate === null ? ['INSERT IGNORE', ''] : ['INSERT', ` ON DUPLICATE KEY UPDATE ${onDuplicate}`];
    await ds.query(
      `${verb} INTO \`${table}\` (${cols(columns)}) VALUES ${chunk.map(() => one).join(', ')}${tail}`,
      chunk.flat(),
    );
  }
}

/** Writes raw samples: one statement for the whole batch (in chunks of {@link INSERT_CHUNK}). */
export async function insertRaw(ds: DataSource, points: readonly MetricPoint[]): Promise<void> {
  if (!points.length) return;
  const rows = points.map((p) => [
    p.machineId,
    p.at,
    p.agent ? 1 : 0,
    ...METRIC_FIELDS.map((f) => val(p[f])),
  ]);
  await insertRows(ds, 'machine_metric_raw', RAW_COLUMNS, rows, '`machineId` = `machineId`');
}

type RawRow = Record<string, unknown>;

const toNumber = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));

function toPoint(r: RawRow): MetricPoint {
  const p = {
    machineId: String(r.machineId),
    at: new Date(r.at as Date),
    agent: Number(r.agent) === 1,
  } as MetricPoint;
  for (const f of METRIC_FIELDS) p[f] = toNumber(r[f]);
  return p;
}

/** Raw samples of the VMs of `hostId` (all VMs when null) taken in [from, to). */
export async function readRaw(
  ds: DataSource,
  from: Date,
  to: Date,
  hostId: string | null,
): Promise<MetricPoint[]> {
  const rows: RawRow[] = hostId
    ? await ds.query(
        `SELECT ${RAW_COLUMNS.map((c) => `r.\`${c}\``).join(', ')} FROM \`machine_metric_raw\` r ` +
          'JOIN `machine` m ON m.`id` = r.`machineId` AND m.`hostId` = ? WHERE r.`at` >= ? AND r.`at` < ?',
        [hostId, from, to],
      )
    : await ds.query(
        `SELECT ${cols(RAW_COLUMNS)} FROM \`machine_metric_raw\` WHERE \`at\` >= ? AND \`at\` < ?`,
        [from, to],
      );
  return rows.map(toPoint);
}

/**
 * Computes the 1-minute rollups of the minutes in [from, to) (aligned to minutes by the caller) from the
 * raw rows, for the VMs of `hostId` (each host's worker rolls up its own VMs), and upserts them: running
 * it again over the same minutes rewrites the same rows — unless `keep`, where a minute already stored is
 * left as it is (a restarted worker catching up). Returns the rows computed. The caller bounds the span
 * (one read of every raw row in it: see {@link rollupWindows}).
 */
export async function rollupMinutes(
  ds: DataSource,
  from: Date,
  to: Date,
  hostId: string | null,
  opts: { keep?: boolean } = {},
): Promise<RollupRow[]> {
  const rows = rollup(await readRaw(ds, from, to, hostId), ROLLUP_MS);
  const values = rows.map((r) => [
    r.machineId,
    r.bucket,
    Math.min(r.samples, 65535),
    Math.min(r.agentSamples, 65535),
    val(r.cpuPctMax),
    ...METRIC_FIELDS.map((f) => val(r[f])),
  ]);
  const update = MINUTE_COLUMNS.slice(2)
    .map((c) => `\`${c}\` = VALUES(\`${c}\`)`)
    .join(', ');
  await insertRows(ds, 'machine_metric_minute', MINUTE_COLUMNS, values, opts.keep ? null : update);
  return rows;
}

/**
 * The spans [from, to) (ms, minute-aligned) that roll up the minutes in [from, upTo): at most
 * `chunkMinutes` each, and none straddling `split` (so a span lies wholly before or after it: the
 * catch-up of a restarted worker and the minutes that ended since are written differently).
 */
export function rollupWindows(
  from: number,
  upTo: number,
  split: number,
  chunkMinutes: number,
): Array<[number, number]> {
  const step = Math.max(1, Math.floor(chunkMinutes)) * ROLLUP_MS;
  const out: Array<[number, number]> = [];
  for (let t = from; t < upTo;) {
    let to = Math.min(t + step, upTo);
    if (t < split && to > split) to = split;
    out.push([t, to]);
    t = to;
  }
  return out;
}

/** What a purge removed. */
export interface PurgeResult {
  raw: number;
  minute: number;
}

async function deleteBefore(ds: DataSource, table: string, column: string, before: Date): Promise<number> {
  let total = 0;
  for (;;) {
    const res = (await ds.query(`DELETE FROM \`${table}\` WHERE \`${column}\` < ? LIMIT ${PURGE_CHUNK}`, [
      before,
    ])) as { affectedRows?: number };
    const n = res.affectedRows ?? 0;
    total += n;
    if (n < PURGE_CHUNK) return total;
  }
}

/** Deletes raw samples older than `rawBefore` and rollups older than `minuteBefore` (all VMs). */
export async function purgeMetrics(
  ds: DataSource,
  rawBefore: Date,
  minuteBefore: Date,
): Promise<PurgeResult> {
  return {
    raw: await deleteBefore(ds, 'machine_metric_raw', 'at', rawBefore),
    minute: await deleteBefore(ds, 'machine_metric_minute', 'bucket', minuteBefore),
  };
}

/** A point of a served series: the bucket's start, the mean of each field, CPU's peak, samples in it. */
export interface SeriesPoint extends Record<(typeof METRIC_FIELDS)[number], number | null> {
  at: Date;
  cpuPctMax: number | null;
  samples: number;
}

/**
 * The series of one VM over [from, to) in buckets of `stepS` seconds counted from `from`, read from the raw
 * samples or the 1-minute rollups (bucket means of the stored means, each minute weighing the same). One
 * query on the (machineId, time) key: the rollups at their own resolution (`from` on a minute, a step of
 * 60 s) are read as stored, in key order; anything else is grouped.
 */
export async function readSeries(
  ds: DataSource,
  machineId: string,
  from: Date,
  to: Date,
  stepS: number,
  source: 'raw' | 'minute',
): Promise<SeriesPoint[]> {
  const [table, time, peak, count] =
    source === 'raw'
      ? ['machine_metric_raw', 'at', '`cpuPct`', '1']
      : ['machine_metric_minute', 'bucket', '`cpuPctMax`', '`samples`'];
  const asStored = source === 'minute' && stepS === 60 && from.getTime() % 60_000 === 0;
  const rows: RawRow[] = asStored
    ? await ds.query(
        `SELECT FLOOR(TIMESTAMPDIFF(SECOND, ?, \`bucket\`) / 60) AS \`slot\`, ${cols(METRIC_FIELDS)}, ` +
          '`cpuPctMax`, `samples` FROM `machine_metric_minute` WHERE `machineId` = ? AND `bucket` >= ? AND `bucket` < ? ' +
          'ORDER BY `machineId`, `bucket`',
        [from, machineId, from, to],
      )
    : await ds.query(
        `SELECT FLOOR(TIMESTAMPDIFF(SECOND, ?, \`${time}\`) / ?) AS \`slot\`, ` +
          `${METRIC_FIELDS.map((f) => `AVG(\`${f}\`) AS \`${f}\``).join(', ')}, MAX(${peak}) AS \`cpuPctMax\`, ` +
          `SUM(${count}) AS \`samples\` FROM \`${table}\` WHERE \`machineId\` = ? AND \`${time}\` >= ? AND \`${time}\` < ? ` +
          'GROUP BY `slot` ORDER BY `slot`',
        [from, stepS, machineId, from, to],
      );
  return rows.map((r) => {
    const p = {
      at: new Date(from.getTime() + Number(r.slot) * stepS * 1000),
      cpuPctMax: toNumber(r.cpuPctMax),
      samples: Number(r.samples),
    } as SeriesPoint;
    for (const f of METRIC_FIELDS) p[f] = toNumber(r[f]);
    return p;
  });
}

/** The raw samples of the given VMs taken after `since`, oldest first (the live feed's read). */
export async function readRawSince(
  ds: DataSource,
  machineIds: readonly string[],
  since: Date,
): Promise<MetricPoint[]> {
  if (!machineIds.length) return [];
  const rows: RawRow[] = await ds.query(
    `SELECT ${cols(RAW_COLUMNS)} FROM \`machine_metric_raw\` WHERE \`machineId\` IN (?) AND \`at\` > ? ORDER BY \`at\``,
    [machineIds, since],
  );
  return rows.map(toPoint);
}
