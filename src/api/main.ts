/**
 * The API process (`npm run api`): loads the config, connects the database, Temporal and libvirt,
 * creates the first admin on first start, and serves HTTP + Socket.IO on PORT and Prometheus `/metrics` on
 * METRICS_HOST:API_METRICS_PORT.
 */
import 'reflect-metadata';
import { Client, Connection } from '@temporalio/client';
import pino from 'pino';
import { loadConfig } from '../config';
import { createDataSource } from '../entities/data-source';
import { eventWakeSubscriber, METRICS_CHANNEL, redisWaker, redisWakeSource } from '../events/wake';
import { LibvirtProvider } from '../libvirt/provider';
import { createApp } from './app';
import { ensureAdmin } from './auth';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = pino({ level: config.LOG_LEVEL });
  for (const w of config.warnings) logger.warn(`WARNING: ${w}`);
  // Events this process writes (logins, users, departments) wake every relay, as the worker's do.
  const waker = config.REDIS_URL ? redisWaker(config.REDIS_URL, logger) : null;
  const dataSource = createDataSource(config.DATABASE_URL, {
    poolSize: 20,
    subscribers: waker ? [eventWakeSubscriber(waker)] : [],
  });
  await dataSource.initialize();
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  const temporal = new Client({ connection, namespace: config.TEMPORAL_NAMESPACE });
  // The API needs libvirt only for /readyz; it opens the connection lazily (a down libvirtd does not stop it).
  const libvirt = new LibvirtProvider(config.LIBVIRT_URI);
  if (await ensureAdmin(dataSource, config.admin, logger)) {
    const dev = !process.env.ADMIN_EMAIL || !process.env.ADMIN_PASSWORD;
    logger.warn(
      `created the first admin ${config.admin.email}${dev ? ' with the DEVELOPMENT-ONLY password: change it' : ''}`,
    );
  }
  const api = createApp({
    dataSource,
    temporal,
    config,
    libvirt,
    logger,
    images: config.images,
    version: process.env.npm_package_version,
    ...(config.REDIS_URL ? { relay: { wake: redisWakeSource(config.REDIS_URL, logger) } } : {}),
    metrics: {
      ...config.metrics,
      ...(config.REDIS_URL ? { wake: redisWakeSource(config.REDIS_URL, logger, METRICS_CHANNEL) } : {}),
    },
  });
  const { url } = await api.listen(config.PORT, process.env.API_HOST ?? '127.0.0.1');
  logger.info(`api listening on ${url} (docs: ${url}/api/docs)`);
  // Prometheus on its own listener (loopback by default), never on the API's public port: it has no token.
  const metrics = await api.metrics.serve(config.METRICS_HOST, config.API_METRICS_PORT);
  logger.info(`api metrics on ${metrics.url}`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    logger.info('api stopping');
    await metrics.close();
    await api.close();
    await connection.close();
    await libvirt.close().catch(() => undefined);
    await dataSource.destroy();
    await waker?.close();
    process.exit(0);
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.on(sig, () => void stop());
}

main().catch((err: unknown) => {
  console.error(`api failed to start: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
