/** The METRICS_* settings: defaults, bounds and the rules between them, each error naming its variable. */
import { loadConfig } from '../../../src/config';

const env = (over: Record<string, string>) => ({ NODE_ENV: 'test', ...over }) as NodeJS.ProcessEnv;

describe('metrics configuration', () => {
  it('defaults to raw samples every 10 s for an hour and 1-minute rollups for 7 days', () => {
    const c = loadConfig(env({}));
    expect(c.METRICS).toBe('on');
    expect(c.metrics).toEqual({
      intervalMs: 10_000,
      rawRetentionS: 3600,
      rollupRetentionS: 7 * 86_400,
      purgeIntervalMs: 60_000,
    });
  });

  it('takes other values', () => {
    const c = loadConfig(
      env({
        METRICS: 'off',
        METRICS_INTERVAL_MS: '5000',
        METRICS_RAW_RETENTION_S: '7200',
        METRICS_ROLLUP_RETENTION_S: '2592000',
        METRICS_PURGE_INTERVAL_MS: '30000',
      }),
    );
    expect(c.METRICS).toBe('off');
    expect(c.metrics).toEqual({
      intervalMs: 5000,
      rawRetentionS: 7200,
      rollupRetentionS: 2_592_000,
      purgeIntervalMs: 30_000,
    });
  });

  it.each([
    [{ METRICS: 'maybe' }, 'METRICS'],
    [{ METRICS_INTERVAL_MS: '10' }, 'METRICS_INTERVAL_MS'],
    [{ METRICS_INTERVAL_MS: 'ten' }, 'METRICS_INTERVAL_MS'],
    [{ METRICS_RAW_RETENTION_S: '30' }, 'METRICS_RAW_RETENTION_S'],
    [{ METRICS_ROLLUP_RETENTION_S: '-1' }, 'METRICS_ROLLUP_RETENTION_S'],
    [{ METRICS_PURGE_INTERVAL_MS: '1.5' }, 'METRICS_PURGE_INTERVAL_MS'],
    // Raw retention must hold two samples (rates and rollups need them) ...
    [{ METRICS_INTERVAL_MS: '120000', METRICS_RAW_RETENTION_S: '200' }, 'METRICS_RAW_RETENTION_S'],
    // ... and rollups must outlive the raw samples they are made of.
    [{ METRICS_RAW_RETENTION_S: '86400', METRICS_ROLLUP_RETENTION_S: '7200' }, 'METRICS_ROLLUP_RETENTION_S'],
  ])('refuses %j naming %s', (over, name) => {
    expect(() => loadConfig(env(over))).toThrow(new RegExp(`invalid configuration:\\n  ${name}:`));
  });
});
