/** Rollup math (means over the samples that reported each field, peak CPU, counts) and the live throttle. */
import { METRIC_FIELDS, type MetricPoint, toPoint } from '../../../src/metrics/point';
import { bucketStart, rollup } from '../../../src/metrics/rollup';
import { rollupWindows } from '../../../src/metrics/store';
import { Throttle } from '../../../src/metrics/throttle';

const A = '00000000-0000-4000-8000-00000000000a';
const B = '00000000-0000-4000-8000-00000000000b';
const T0 = Date.UTC(2026, 11, 2, 15, 0, 0);

const point = (machineId: string, atMs: number, over: Partial<MetricPoint> = {}): MetricPoint => {
  const p = { machineId, at: new Date(atMs), agent: false } as MetricPoint;
  for (const f of METRIC_FIELDS) p[f] = null;
  return { ...p, ...over };
};

describe('rollup', () => {
  it('aligns buckets to the minute', () => {
    expect(bucketStart(T0 + 59_999, 60_000).getTime()).toBe(T0);
    expect(bucketStart(new Date(T0 + 60_000), 60_000).getTime()).toBe(T0 + 60_000);
  });

  it('means each field over the samples that reported it; null is unknown, not 0', () => {
    const rows = rollup(
      [
        point(A, T0 + 10_000, { cpuPct: 10, memUsedBytes: 100, netRxBps: null }),
        point(A, T0 + 20_000, { cpuPct: 30, memUsedBytes: null, netRxBps: 50, agent: true }),
        point(A, T0 + 30_000, { cpuPct: 80, memUsedBytes: 300 }),
      ],
      60_000,
    );
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      machineId: A,
      bucket: new Date(T0),
      samples: 3,
      agentSamples: 1,
      cpuPct: 40,
      cpuPctMax: 80,
      memUsedBytes: 200,
      netRxBps: 50,
      load1: null,
    });
  });

  it('keeps VMs and minutes apart, sorted by VM then time, whatever the input order', () => {
    const rows = rollup(
      [
        point(B, T0 + 65_000, { cpuPct: 5 }),
        point(A, T0 + 70_000, { cpuPct: 7 }),
        point(A, T0 + 5_000, { cpuPct: 1 }),
        point(B, T0 + 1_000, { cpuPct: 3 }),
      ],
      60_000,
    );
    expect(rows.map((r) => [r.machineId, r.bucket.getTime() - T0, r.cpuPct])).toEqual([
      [A, 0, 1],
      [A, 60_000, 7],
      [B, 0, 3],
      [B, 60_000, 5],
    ]);
  });

  it('has no peak CPU when no sample had CPU (a first reading)', () => {
    expect(rollup([point(A, T0)], 60_000)[0]).toMatchObject({ cpuPctMax: null, cpuPct: null, samples: 1 });
  });
});

describe('a point from host and agent', () => {
  const host = {
    cpuPct: 12,
    memAssignedBytes: 512,
    memTotalBytes: 400,
    memUsedBytes: 100,
    hostRssBytes: 600,
    diskReadBps: 1,
    diskWriteBps: 2,
    netRxBps: 3,
    netTxBps: 4,
  };

  it('takes the guest memory from the agent when it reports it, and adds its own fields', () => {
    const p = toPoint(A, new Date(T0), host, {
      seq: 1,
      uptimeS: 99,
      cpu: { totalPct: 40, perCorePct: [40] },
      load: [0.5, 0.4, 0.3],
      memory: { totalBytes: 480, availableBytes: 200, usedBytes: 280, swapTotalBytes: 0, swapUsedBytes: 0 },
      filesystems: [
        { mount: '/', fsType: 'ext4', totalBytes: 1000, usedBytes: 400 },
        { mount: '/boot', fsType: 'ext4', totalBytes: 100, usedBytes: 50 },
      ],
      nics: [],
      disks: [],
      users: [{ name: 'u', tty: 'pts/0', since: '2026-12-02T15:00:00Z' }],
      topCpu: [],
      topMemory: [],
    });
    expect(p).toMatchObject({
      agent: true,
      cpuPct: 12,
      guestCpuPct: 40,
      load1: 0.5,
      memTotalBytes: 480,
      memUsedBytes: 280,
      memAssignedBytes: 512,
      fsUsedBytes: 450,
      fsTotalBytes: 1100,
      uptimeS: 99,
      users: 1,
    });
  });

  it('without an agent keeps the host view and leaves the guest fields null', () => {
    const p = toPoint(A, new Date(T0), host, null);
    expect(p).toMatchObject({ agent: false, memUsedBytes: 100, guestCpuPct: null, users: null });
  });
});

describe('throttle', () => {
  it('allows one per key per window, keys independent', () => {
    const t = new Throttle(5_000);
    expect(t.allow(A, 0)).toBe(true);
    expect(t.allow(A, 1_000)).toBe(false);
    expect(t.allow(B, 1_000)).toBe(true);
    expect(t.allow(A, 4_999)).toBe(false);
    expect(t.allow(A, 5_000)).toBe(true);
    expect(t.allow(A, 9_000)).toBe(false);
  });

  it('forgets idle keys (stays as small as the keys in use) and survives a clock stepping back', () => {
    const t = new Throttle(5_000);
    for (let i = 0; i < 100; i++) t.allow(`vm${i}`, 0);
    t.allow(A, 4_000);
    t.sweep(6_000);
    expect(t.size).toBe(1);
    expect(t.allow(A, 1_000)).toBe(true); // the clock went back: never stuck
  });
});

describe('rollup windows (a restarted worker catching up)', () => {
  const M = 60_000;
  it('splits a long catch-up into bounded chunks of minutes, none straddling the start', () => {
    // Seven days of catch-up: bounded reads, not one.
    const week = rollupWindows(T0, T0 + 7 * 1440 * M, T0 + 7 * 1440 * M, 10);
    expect(week).toHaveLength((7 * 1440) / 10);
    expect(week.every(([a, b]) => b - a <= 10 * M)).toBe(true);
    expect(rollupWindows(T0, T0 + 25 * M, T0 + 13 * M, 10)).toEqual([
      [T0, T0 + 10 * M],
      [T0 + 10 * M, T0 + 13 * M],
      [T0 + 13 * M, T0 + 23 * M],
      [T0 + 23 * M, T0 + 25 * M],
    ]);
  });

  it('covers [from, upTo) exactly, and nothing when nothing ended', () => {
    const w = rollupWindows(T0, T0 + 3 * M, T0, 10);
    expect(w).toEqual([[T0, T0 + 3 * M]]);
    expect(rollupWindows(T0, T0, T0, 10)).toEqual([]);
    expect(rollupWindows(T0, T0 + 2 * M, T0 + 5 * M, 0)).toEqual([
      [T0, T0 + M],
      [T0 + M, T0 + 2 * M],
    ]);
  });
});
