/**
 * The API process's composition root: `createApp(deps)` builds the Express app (routes, validation,
 * problem+json errors, OpenAPI + Swagger UI), the event relay and, on `listen`, the Socket.IO server.
 * Routes only read the database or start/cancel workflows; machine state is written by workflows.
 */
import { createServer, type Server as HttpServer } from 'node:http';
import { type AddressInfo } from 'node:net';
import { type Client } from '@temporalio/client';
import express, { type Express, Router } from 'express';
import pino, { type Logger } from 'pino';
import { type Server as SocketServer } from 'socket.io';
import swaggerUi from 'swagger-ui-express';
import { type DataSource } from 'typeorm';
import { type Config, loadConfig } from '../config';
import { type LibvirtProvider } from '../libvirt/provider';
import { SecretBox } from '../secrets';
import { authenticate, PrincipalCache } from './auth';
import { type ApiContext } from './context';
import { errorHandler, notFoundHandler } from './errors';
import { IdempotencyStore, type IdempotencyOptions } from './idempotency';
import { MetricsFeed, type MetricsFeedOptions } from './metrics-feed';
import { type ApiMetrics, createApiMetrics } from './metrics';
import { buildOpenApi } from './openapi';
import { Operations } from './operations';
import { EventRelay, type RelayOptions } from './relay';
import { mount, route, type RouteSpec } from './route';
import { departmentFirewallRoutes, serviceCatalogueRoutes } from './routes/department-firewall';
import { departmentRoutes, templateRoutes } from './routes/departments';
import { filterRoutes } from './routes/filters';
import { imageRoutes } from './routes/images';
import { machineGuestRoutes } from './routes/machine-guest';
import { machineMetricsRoutes, type MetricsApiSettings } from './routes/machine-metrics';
import { machineFirewallRoutes, machineNetworkRoutes, machineRoutes } from './routes/machines';
import { networksRoutes } from './routes/networks';
import { systemRoutes } from './routes/system';
import { userRoutes } from './routes/users';
import { attachSockets, type SocketOptions } from './sockets';

/** What the API needs. Tests pass real ones (the test database, the test Temporal server, libvirtd). */
export interface AppDeps {
  dataSource: DataSource;
  temporal: Client;
  config: Pick<Config, 'jwtSecret' | 'secretsKey' | 'TEMPORAL_UI_URL' | 'TEMPORAL_NAMESPACE'>;
  libvirt: LibvirtProvider;
  logger?: Logger;
  relay?: RelayOptions;
  /** The live `vms:metrics` feed (wake-ups, throttle) and the collection settings the metrics route reads. */
  metrics?: MetricsFeedOptions & Partial<MetricsApiSettings>;
  idempotency?: IdempotencyOptions;
  sockets?: SocketOptions;
  /** Host new machines are placed on (default: the workflow picks the first registered host). */
  placementHost?: string;
  /** Image uploads: staging folder and size limit (default: those of `loadConfig()`). */
  images?: { stagingDir: string; maxBytes: number };
  /** Default graceful-shutdown deadline of DELETE /api/machines/:id (default: the workflow's). */
  destroyShutdownTimeoutSec?: number;
  version?: string;
  /** Process and Node.js runtime metrics in `/metrics` (default true; tests building many apps turn them off). */
  processMetrics?: boolean;
}

/** A built API: the Express app, its routes and document, and the server once listening. */
export interface VmflowApi {
  app: Express;
  routes: RouteSpec[];
  openapi: ReturnType<typeof buildOpenApi>;
  relay: EventRelay;
  /** The live `vms:metrics` feed of subscribed sockets (docs/metrics.md). */
  metricsFeed: MetricsFeed;
  /** Prometheus metrics: served by `metrics.serve(host, port)` on a listener of their own (src/api/metrics.ts). */
  metrics: ApiMetrics;
  /** Set once listening. */
  io: SocketServer | null;
  http: HttpServer | null;
  /** Starts HTTP + Socket.IO + the relay. Port 0 picks a free one. */
  listen(port: number, host?: string): Promise<{ url: string; port: number }>;
  /** Stops the relay, closes sockets and the HTTP server (not the deps). */
  close(): Promise<void>;
}

/** The image settings of the environment (IMAGE_STAGING_DIR, IMAGE_MAX_BYTES). */
function defaultImageSettings(): { stagingDir: string; maxBytes: number } {
  return loadConfig({ ...process.env, NODE_ENV: 'development' }).images;
}

/** Builds the API. */
export function createApp(deps: AppDeps): VmflowApi {
  const logger = deps.logger ?? pino({ level: 'info' });
  const relay = new EventRelay(deps.dataSource, logger, deps.relay);
  const principals = new PrincipalCache(deps.dataSource);
  const metricsFeed = new MetricsFeed(deps.dataSource, logger, deps.metrics);
  relay.onDelivered((events) => metricsFeed.onEvents(events));
  relay.onDelivered((events) => {
    for (const { row } of events) {
      if (row.resource === 'users' && row.resourceId) principals.invalidate(row.resourceId);
      else if (row.resource === 'departments') principals.invalidate();
    }
  });
  const ctx: ApiContext = {
    ds: deps.dataSource,
    temporal: deps.temporal,
    config: deps.config,
    libvirt: deps.libvirt,
    secrets: new SecretBox(deps.config.secretsKey),
    relay,
    operations: new Operations(deps.dataSource, deps.temporal, {
      url: deps.config.TEMPORAL_UI_URL,
      namespace: deps.config.TEMPORAL_NAMESPACE,
    }),
    logger,
    principals,
    images: deps.images ?? defaultImageSettings(),
    ...(deps.placementHost ? { placementHost: deps.placementHost } : {}),
    ...(deps.destroyShutdownTimeoutSec !== undefined
      ? { destroyShutdownTimeoutSec: deps.destroyShutdownTimeoutSec }
      : {}),
  };

  let doc: ReturnType<typeof buildOpenApi> | null = null;
  const openapiRoute = route({
    method: 'get',
    path: '/api/openapi.json',
    tag: 'docs',
    summary: 'This OpenAPI 3.1 document',
    auth: false,
    responses: { 200: { description: 'the document' } },
    async handler() {
      return { status: 200, body: doc };
    },
  });
  // In this order the routes are mounted and documented (the OpenAPI document's path order).
  const routes: RouteSpec[] = [
    ...userRoutes(ctx),
    ...departmentRoutes(ctx),
    ...templateRoutes(ctx),
    ...machineRoutes(ctx),
    ...machineGuestRoutes(ctx),
    ...machineMetricsRoutes(ctx, { intervalMs: 10_000, rawRetentionS: 3600, ...deps.metrics }),
    ...networksRoutes(ctx),
    ...imageRoutes(ctx),
    ...machineNetworkRoutes(ctx),
    ...serviceCatalogueRoutes(ctx),
    ...filterRoutes(ctx),
    ...departmentFirewallRoutes(ctx),
    ...machineFirewallRoutes(ctx),
    ...systemRoutes(ctx),
    openapiRoute,
  ];
  doc = buildOpenApi(routes, deps.version);
  doc.paths ??= {};
  doc.paths['/api/docs'] = {
    get: {
      summary: 'Swagger UI for this document',
      tags: ['docs'],
      security: [],
      responses: { '200': { description: 'HTML page' } },
    },
  };

  const app = express();
  const metrics = createApiMetrics({
    dataSource: deps.dataSource,
    relay,
    sockets: () => api.io,
    processMetrics: deps.processMetrics,
    onError: (err, what) => logger.warn({ err }, `metrics: ${what} failed`),
  });
  app.use(metrics.http);
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  app.use((_req, res, next) => {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    next();
  });
  app.use(express.json({ limit: '256kb' }));
  const router = Router();
  const auth = authenticate(principals, deps.config.jwtSecret);
  const idempotency = new IdempotencyStore(deps.dataSource, {
    ...deps.idempotency,
    hashKey: deps.config.secretsKey,
  });
  for (const r of routes) mount(router, r, { authenticate: auth, idempotency });
  app.use(router);
  app.use('/api/docs', swaggerUi.serve, swaggerUi.setup(doc as never, { customSiteTitle: 'vmflow API' }));
  app.use(notFoundHandler);
  app.use(errorHandler(logger));

  const api: VmflowApi = {
    app,
    routes,
    openapi: doc,
    relay,
    metricsFeed,
    metrics,
    io: null,
    http: null,
    async listen(port, host = '127.0.0.1') {
      const http = createServer(app);
      api.http = http;
      api.io = attachSockets(
        http,
        { dataSource: deps.dataSource, jwtSecret: deps.config.jwtSecret, relay, metrics: metricsFeed },
        deps.sockets,
      );
      await relay.start(api.io);
      metricsFeed.start(api.io);
      await new Promise<void>((resolve, reject) => {
        http.once('error', reject);
        http.listen(port, host, () => resolve());
      });
      const addr = http.address() as AddressInfo;
      return { url: `http://${host}:${addr.port}`, port: addr.port };
    },
    async close() {
      await relay.stop();
      await metricsFeed.stop();
      const http = api.http;
      const closed = api.io
        ? new Promise<void>((resolve) => api.io!.close(() => resolve()))
        : http
          ? new Promise<void>((resolve) => http.close(() => resolve()))
          : Promise.resolve();
      http?.closeAllConnections(); // idle keep-alive connections would hold close() open
      await closed;
      api.io = null;
      api.http = null;
    },
  };
  return api;
}
