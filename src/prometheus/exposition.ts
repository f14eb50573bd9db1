/**
 * What the worker's and the API's `/metrics` endpoints share (docs/observability.md): a loopback HTTP
 * listener that serves one exposition, and the merge of a second exposition (the Temporal SDK's) into ours
 * without duplicate metric families.
 */
import { createServer, type Server } from 'node:http';
import { type AddressInfo } from 'node:net';
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';

/** The Prometheus text format's content type (version 0.0.4). */
export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/**
 * A registry for one process's `/metrics`, with `labels` on every series and, unless `processMetrics` is
 * false, prom-client's process and Node.js metrics (CPU, memory, event-loop lag, GC, handles) less the
 * three gauges it names `*_total`, which `promtool check metrics` rejects (a `_total` suffix promises a
 * counter).
 */
export function createRegistry(
  opts: { processMetrics?: boolean; labels?: Record<string, string> } = {},
): Registry {
  const registry = new Registry();
  if (opts.labels) registry.setDefaultLabels(opts.labels);
  if (opts.processMetrics === false) return registry;
  collectDefaultMetrics({ register: registry });
  for (const name of [
    'nodejs_active_handles_total',
    'nodejs_active_requests_total',
    'nodejs_active_resources_total',
  ])
    registry.removeSingleMetric(name);
  return registry;
}

/**
 * A counter of events and a histogram of their durations under the same labels (`<name>_total` and
 * `<name>_duration_seconds`, or the names given): `observe(labels, seconds)` records both. The counter says
 * "how many, by outcome" without reading a histogram's `_count`; the histogram gives the quantiles.
 */
export function countedDurations<L extends string>(
  registry: Registry,
  spec: {
    counter: { name: string; help: string };
    histogram: { name: string; help: string; buckets: number[] };
    labelNames: readonly L[];
  },
): (labels: Record<L, string>, seconds: number) => void {
  const count = new Counter({ ...spec.counter, labelNames: spec.labelNames, registers: [registry] });
  const time = new Histogram({ ...spec.histogram, labelNames: spec.labelNames, registers: [registry] });
  return (labels, seconds) => {
    count.inc(labels as never);
    time.observe(labels as never, seconds);
  };
}

/** A listening `/metrics` endpoint. */
export interface MetricsServer {
  /** The port it listens on (the one asked for, or the free one picked for 0). */
  port: number;
  url: string;
  close(): Promise<void>;
}

/**
 * Serves `GET /metrics` with `render()`'s text on `host:port` (0: a free port). Anything else is 404; a
 * render that throws answers 500 with nothing of the error (it is passed to `onError`).
 */
export async function serveMetrics(
  host: string,
  port: number,
  render: () => Promise<string>,
  onError: (err: unknown) => void = () => undefined,
): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try GET /metrics\n');
      return;
    }
    render().then(
      (text) => {
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        onError(err);
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n');
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    port: bound,
    url: `http://${shown}:${bound}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The family a sample line belongs to, by its name (histogram and summary series share their base). */
function sampleName(line: string): string {
  const end = line.search(/[{\s]/);
  return end < 0 ? line : line.slice(0, end);
}

/**
 * The metric families of a text exposition, in order: each with its name and its lines (`# HELP`,
 * `# TYPE`, samples). A family starts at its first `# HELP`/`# TYPE` line, or at an untyped sample.
 */
export function splitFamilies(text: string): Array<{ name: string; lines: string[] }> {
  const families: Array<{ name: string; lines: string[] }> = [];
  let current: { name: string; lines: string[] } | null = null;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const meta = /^#\s+(HELP|TYPE)\s+(\S+)/.exec(line);
    if (meta) {
      const name = meta[2]!;
      if (!current || current.name !== name) {
        current = { name, lines: [] };
        families.push(current);
      }
      current.lines.push(line);
      continue;
    }
    if (line.startsWith('#')) continue; // other comments carry nothing
    const name = sampleName(line);
    const belongs =
      current &&
      (name === current.name ||
        (name.startsWith(current.name) &&
          /^_(bucket|sum|count|total|created|info)$/.test(name.slice(current.name.length))));
    if (!belongs) {
      current = { name, lines: [] };
      families.push(current);
    }
    current!.lines.push(line);
  }
  return families;
}

/** Every series name a family may write (its own and the suffixed ones), to detect clashes. */
function seriesNames(family: { name: string; lines: string[] }): string[] {
  const names = new Set([family.name]);
  for (const l of family.lines) if (!l.startsWith('#')) names.add(sampleName(l));
  return [...names];
}

/**
 * `ours` followed by the families of `theirs` that clash with none of ours (same family or series name):
 * one exposition with no duplicate family, as Prometheus requires. Returns the names dropped too.
 */
export function mergeExpositions(ours: string, theirs: string): { text: string; dropped: string[] } {
  const taken = new Set(splitFamilies(ours).flatMap(seriesNames));
  const kept: string[] = [];
  const dropped: string[] = [];
  for (const f of splitFamilies(theirs)) {
    const names = seriesNames(f);
    if (names.some((n) => taken.has(n))) {
      dropped.push(f.name);
      continue;
    }
    names.forEach((n) => taken.add(n));
    kept.push(f.lines.join('\n'));
  }
  const head = ours.endsWith('\n') || !ours ? ours : `${ours}\n`;
  return { text: kept.length ? `${head}${kept.join('\n')}\n` : head, dropped };
}
