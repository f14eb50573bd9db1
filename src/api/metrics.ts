/**
 * The API's Prometheus exposition (docs/observability.md), served on `/metrics` by a listener of its own at
 * METRICS_HOST:API_METRICS_PORT (loopback by default), not on the API port: the API port is the one put on a
 * public interface, and `/metrics` has no token. HTTP requests are counted by route template (`/api/
 * machines/:id`, never the raw URL, so ids cannot multiply the series), method and status, with durations;
 * connected sockets and the event relay's delivery lag, backlog and watermark are read at each scrape.
 */
import { type NextFunction, type Request, type Response } from 'express';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type Server as SocketServer } from 'socket.io';
import { type DataSource } from 'typeorm';
import { Event } from '../entities/event';
import { countedDurations, createRegistry, type MetricsServer, serveMetrics } from '../prometheus/exposition';
import { type EventRelay } from './relay';

/** Request duration buckets (s). */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Relay lag buckets (s): a wake-up delivers in milliseconds, a poll fallback in about a second. */
const LAG_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The label of a request that matched no route (404s of unknown paths: one series, whatever the path). */
export const UNMATCHED_ROUTE = 'unmatched';

/**
 * The route template a request matched: the Express route's path under its router's mount point, or the
 * mount point of a static handler (`/api/docs`), or {@link UNMATCHED_ROUTE}. Never the raw URL.
 */
export function routeTemplate(req: Request): string {
  const path = (req.route as { path?: unknown } | undefined)?.path;
  if (typeof path === 'string') return `${req.baseUrl ?? ''}${path}`;
  if (req.originalUrl === '/api/docs' || req.originalUrl.startsWith('/api/docs/')) return '/api/docs';
  return UNMATCHED_ROUTE;
}

/** Options of {@link createApiMetrics}. */
export interface ApiMetricsOptions {
  dataSource: DataSource;
  relay: EventRelay;
  /** The Socket.IO server once listening (read at each scrape). */
  sockets: () => SocketServer | null;
  /** Process and Node.js runtime metrics (prom-client's defaults). Default true. */
  processMetrics?: boolean;
  onError?(err: unknown, what: string): void;
}

/** The API's metrics. */
export interface ApiMetrics {
  registry: Registry;
  /** Express middleware that times every request; mount it before the routes. */
  http(req: Request, res: Response, next: NextFunction): void;
  render(): Promise<string>;
  /** Serves {@link render} on `GET /metrics`. */
  serve(host: string, port: number): Promise<MetricsServer>;
}

/** Builds the API's registry and hooks (the relay's delivery listener is added here). */
export function createApiMetrics(opts: ApiMetricsOptions): ApiMetrics {
  const registry = createRegistry({ processMetrics: opts.processMetrics });
  const onError = opts.onError ?? (() => undefined);

  const observe = countedDurations(registry, {
    counter: {
      name: 'vmflow_http_requests_total',
      help: 'HTTP requests answered, by method, route template and status code.',
    },
    histogram: {
      name: 'vmflow_http_request_duration_seconds',
      help: 'Time from receiving an HTTP request to finishing its response, by method, route template and status code.',
      buckets: HTTP_BUCKETS,
    },
    labelNames: ['method', 'route', 'status'],
  });
  const http = (req: Request, res: Response, next: NextFunction) => {
    const start = process.hrtime.bigint();
    res.once('finish', () => {
      const labels = { method: req.method, route: routeTemplate(req), status: String(res.statusCode) };
      observe(labels, Number(process.hrtime.bigint() - start) / 1e9);
    });
    next();
  };

  new Gauge({
    name: 'vmflow_socket_connections',
    help: 'Socket.IO clients connected now (authenticated: a refused handshake never counts).',
    registers: [registry],
    collect() {
      this.set(opts.sockets()?.of('/').sockets.size ?? 0);
    },
  });

  const lag = new Histogram({
    name: 'vmflow_relay_delivery_lag_seconds',
    help: "Time from an event's insert (its createdAt, the database's clock) to its delivery to the Socket.IO rooms.",
    buckets: LAG_BUCKETS,
    registers: [registry],
  });
  const delivered = new Counter({
    name: 'vmflow_relay_events_delivered_total',
    help: 'Events the relay delivered (each once, whatever the number of rooms or sockets).',
    registers: [registry],
  });
  opts.relay.onDelivered((events) => {
    const now = Date.now();
    for (const { row } of events) {
      delivered.inc();
      lag.observe(Math.max(0, now - row.createdAt.getTime()) / 1000);
    }
  });
  new Gauge({
    name: 'vmflow_relay_watermark',
    help: 'The highest event id up to which every event has been delivered (or is known never to exist).',
    registers: [registry],
    collect() {
      this.set(Math.max(0, opts.relay.watermark));
    },
  });
  new Gauge({
    name: 'vmflow_relay_backlog_events',
    help: 'Event ids committed above the watermark, not delivered yet (highest event id minus the watermark).',
    registers: [registry],
    async collect() {
      try {
        const row = await opts.dataSource
          .getRepository(Event)
          .createQueryBuilder('e')
          .select('MAX(e.id)', 'max')
          .getRawOne<{ max: string | null }>();
        const mark = opts.relay.watermark;
        this.set(mark < 0 ? 0 : Math.max(0, Number(row?.max ?? 0) - mark));
      } catch (err) {
        onError(err, 'relay backlog');
      }
    },
  });
  new Gauge({
    name: 'vmflow_relay_wakeups_connected',
    help: '1 while the relay receives wake-ups (Redis), 0 while it polls on its own.',
    registers: [registry],
    collect() {
      this.set(opts.relay.wakeUpsConnected ? 1 : 0);
    },
  });

  const render = () => registry.metrics();
  return {
    registry,
    http,
    render,
    serve: (host, port) => serveMetrics(host, port, render, (err) => onError(err, 'render')),
  };
}
