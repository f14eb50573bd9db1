/**
 * The shared exposition helpers: the SDK's families appended to ours without duplicates (promtool, the
 * independent oracle, accepts the result), and the `/metrics` listener.
 */
import { Counter, Registry } from 'prom-client';
import { mergeExpositions, serveMetrics, splitFamilies } from '../../../src/prometheus/exposition';
import { families, promtoolCheck, scrape, value } from '../../support/prometheus';

const theirs = `# HELP temporal_request_total Client requests
# TYPE temporal_request_total counter
temporal_request_total{operation="Poll"} 3
# HELP up_total clashes with ours
# TYPE up_total counter
up_total 9
# HELP temporal_latency_seconds Latency
# TYPE temporal_latency_seconds histogram
temporal_latency_seconds_bucket{le="0.1"} 1
temporal_latency_seconds_bucket{le="+Inf"} 2
temporal_latency_seconds_sum 0.3
temporal_latency_seconds_count 2
`;

describe('mergeExpositions', () => {
  it('splits an exposition into families, histogram series with their family', () => {
    expect(splitFamilies(theirs).map((f) => [f.name, f.lines.length])).toEqual([
      ['temporal_request_total', 3],
      ['up_total', 3],
      ['temporal_latency_seconds', 6],
    ]);
  });

  it('appends the families that clash with none of ours, and drops the others: promtool accepts the whole', async () => {
    const registry = new Registry();
    new Counter({ name: 'up_total', help: 'ours', registers: [registry] }).inc(1);
    const ours = await registry.metrics();
    const merged = mergeExpositions(ours, theirs);
    expect(merged.dropped).toEqual(['up_total']);
    expect([...families(merged.text).keys()]).toEqual([
      'up_total',
      'temporal_request_total',
      'temporal_latency_seconds',
    ]);
    expect(value(merged.text, 'up_total')).toBe(1); // ours kept, theirs gone
    expect(value(merged.text, 'temporal_latency_seconds_count')).toBe(2);
    const check = await promtoolCheck(merged.text);
    expect(check).toEqual({ code: 0, output: '' });
    // the oracle does catch the duplicate this avoids
    expect((await promtoolCheck(`${ours}${theirs}`)).code).not.toBe(0);
  });
});

describe('serveMetrics', () => {
  it('answers GET /metrics with the exposition and its content type, 404 elsewhere, 500 without details', async () => {
    let fail = false;
    const server = await serveMetrics('127.0.0.1', 0, async () => {
      if (fail) throw new Error('secret detail');
      return 'x_total 1\n';
    });
    try {
      expect(server.url).toBe(`http://127.0.0.1:${server.port}/metrics`);
      expect(await scrape(server.url)).toBe('x_total 1\n');
      expect((await fetch(`http://127.0.0.1:${server.port}/`)).status).toBe(404);
      expect((await fetch(server.url, { method: 'POST' })).status).toBe(404);
      fail = true;
      const res = await fetch(server.url);
      expect(res.status).toBe(500);
      expect(await res.text()).not.toContain('secret');
    } finally {
      await server.close();
    }
  });
});
