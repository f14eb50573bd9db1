/**
 * Process configuration, parsed once from the environment (zod) and passed down.
 * Secrets come only from the environment; the development defaults below are loud about it.
 */
import { homedir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { DEV_SECRETS_KEY } from './secrets';

/** Value used when JWT_SECRET is unset: for development only, never for production. */
export const DEV_JWT_SECRET = 'vmflow-DEVELOPMENT-ONLY-jwt-secret-do-not-use-in-production';
/** Admin credentials created on first start when ADMIN_EMAIL/ADMIN_PASSWORD are unset (development only). */
export const DEV_ADMIN = { email: 'admin@vmflow.local', password: 'vmflow-dev-admin-password' } as const;

const schema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  DATABASE_URL: z.string().url().default('mysql://root@127.0.0.1:3306/vmflow'),
  TEMPORAL_ADDRESS: z.string().default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TEMPORAL_UI_URL: z.string().url().default('http://127.0.0.1:8233'),
  LIBVIRT_URI: z.string().default('qemu:///system'),
  /**
   * Redis for event wake-ups (pub/sub only; it stores nothing). Empty: no wake-ups, relays poll. Redis
   * being down never stops delivery: relays then poll quickly until it is back.
   */
  REDIS_URL: z
    .string()
    .refine((v) => v === '' || /^rediss?:\/\//.test(v), 'a redis:// or rediss:// URL, or empty')
    .default('redis://127.0.0.1:6379'),
  /** The hypervisor host this worker serves; its activities run on task queue `host-<HOST_NAME>`. */
  HOST_NAME: z
    .string()
    .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and dashes')
    .default('local'),
  /** libvirt storage pool and network that set-up creates for this host. */
  STORAGE_POOL: z.string().default('vmflow'),
  DEFAULT_NETWORK: z.string().default('vmflow-default'),
  /** Force the domain type; default: probe the host once (kvm where QEMU can use it, else qemu/TCG). */
  VIRT_TYPE: z.enum(['kvm', 'qemu']).optional(),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  JWT_SECRET: z.string().min(16).optional(),
  /** Key that seals guest credentials and derives console passwords. */
  SECRETS_KEY: z.string().min(16).optional(),
  ADMIN_EMAIL: z.string().email().optional(),
  ADMIN_PASSWORD: z.string().min(8).optional(),
  /**
   * Where the API stages an image upload until the import workflow has written it into the volume. In
   * production: storage the host workers can read at the same path (a shared mount), or the API running on
   * the host. Default: `$VMFLOW_CACHE/staging` (`~/.cache/vmflow/staging`).
   */
  IMAGE_STAGING_DIR: z
    .string()
    .optional()
    .transform((v) => v || undefined),
  /** The largest image upload accepted (bytes); larger bodies are answered 413. Default 64 GiB. */
  IMAGE_MAX_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(Number.MAX_SAFE_INTEGER)
    .default(64 * 1024 ** 3),
  /**
   * The host-side watcher of vmflow's guest agent (src/worker/agent-watcher.ts): `on` follows every running
   * vmflow domain's agent channel from the worker; `off` leaves the channels unread.
   */
  AGENT_WATCHER: z.enum(['on', 'off']).default('on'),
  /** How often the watcher reconciles its domains with libvirt (ms), besides following lifecycle events. */
  AGENT_WATCHER_RECONCILE_MS: z.coerce.number().int().min(1000).max(3_600_000).default(30_000),
  /**
   * VM metrics (docs/metrics.md): `on` makes each host's worker collect libvirt's bulk stats (and the agent's
   * samples) of its running VMs every METRICS_INTERVAL_MS, store them raw for METRICS_RAW_RETENTION_S and as
   * 1-minute rollups for METRICS_ROLLUP_RETENTION_S, purging older rows every METRICS_PURGE_INTERVAL_MS.
   */
  METRICS: z.enum(['on', 'off']).default('on'),
  METRICS_INTERVAL_MS: z.coerce.number().int().min(1000).max(300_000).default(10_000),
  METRICS_RAW_RETENTION_S: z.coerce
    .number()
    .int()
    .min(120)
    .max(7 * 86_400)
    .default(3600),
  METRICS_ROLLUP_RETENTION_S: z.coerce
    .number()
    .int()
    .min(3600)
    .max(400 * 86_400)
    .default(7 * 86_400),
  METRICS_PURGE_INTERVAL_MS: z.coerce.number().int().min(1000).max(86_400_000).default(60_000),
  /**
   * Where the Prometheus endpoints listen (docs/observability.md). They need no token, so they listen on
   * loopback by default; another address exposes them unauthenticated to whoever can reach it.
   */
  METRICS_HOST: z.union([z.ipv4(), z.ipv6()]).default('127.0.0.1'),
  /** The worker's `/metrics` (per-VM gauges, agent watcher, activities, Temporal SDK). 0: any free port. */
  WORKER_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),
  /**
   * The Temporal SDK's own Prometheus exporter, always on 127.0.0.1: the worker's `/metrics` fetches it and
   * serves it with its own families, so nobody needs to scrape it directly.
   */
  TEMPORAL_METRICS_PORT: z.coerce.number().int().min(1).max(65535).default(9465),
  /** The API's `/metrics` (HTTP requests, sockets, relay), on its own listener at METRICS_HOST. 0: any free port. */
  API_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9466),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export type Config = ReturnType<typeof loadConfig>;

/** Parses the environment. Throws with every bad variable named. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env) {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid configuration:\n${lines.join('\n')}`);
  }
  const c = parsed.data;
  if (c.METRICS_RAW_RETENTION_S * 1000 < 2 * c.METRICS_INTERVAL_MS)
    throw new Error('invalid configuration:\n  METRICS_RAW_RETENTION_S: must hold at least two samples');
  if (c.METRICS_ROLLUP_RETENTION_S < c.METRICS_RAW_RETENTION_S)
    throw new Error(
      'invalid configuration:\n  METRICS_ROLLUP_RETENTION_S: must not be shorter than METRICS_RAW_RETENTION_S',
    );
  const warnings: string[] = [];
  if (!c.JWT_SECRET) {
    if (c.NODE_ENV === 'production') throw new Error('JWT_SECRET must be set in production');
    warnings.push(
      'JWT_SECRET is unset: using the DEVELOPMENT-ONLY secret. Never run like this in production.',
    );
  }
  if (!c.SECRETS_KEY) {
    if (c.NODE_ENV === 'production') throw new Error('SECRETS_KEY must be set in production');
    warnings.push(
      'SECRETS_KEY is unset: using the DEVELOPMENT-ONLY key for guest credentials and console passwords.',
    );
  }
  if (!c.ADMIN_EMAIL || !c.ADMIN_PASSWORD) {
    if (c.NODE_ENV === 'production')
      throw new Error('ADMIN_EMAIL and ADMIN_PASSWORD must be set in production');
    warnings.push(
      `ADMIN_EMAIL/ADMIN_PASSWORD unset: the first admin is ${DEV_ADMIN.email} with the DEVELOPMENT-ONLY password. Change it.`,
    );
  }
  if (!/^127\.|^::1$/.test(c.METRICS_HOST))
    warnings.push(
      `METRICS_HOST=${c.METRICS_HOST}: the /metrics endpoints answer anyone who can reach that address, without a token.`,
    );
  return {
    ...c,
    jwtSecret: c.JWT_SECRET ?? DEV_JWT_SECRET,
    secretsKey: c.SECRETS_KEY ?? DEV_SECRETS_KEY,
    admin: { email: c.ADMIN_EMAIL ?? DEV_ADMIN.email, password: c.ADMIN_PASSWORD ?? DEV_ADMIN.password },
    hostTaskQueue: `host-${c.HOST_NAME}`,
    metrics: {
      intervalMs: c.METRICS_INTERVAL_MS,
      rawRetentionS: c.METRICS_RAW_RETENTION_S,
      rollupRetentionS: c.METRICS_ROLLUP_RETENTION_S,
      purgeIntervalMs: c.METRICS_PURGE_INTERVAL_MS,
    },
    images: {
      stagingDir:
        c.IMAGE_STAGING_DIR ??
        path.join(env.VMFLOW_CACHE ?? path.join(homedir(), '.cache', 'vmflow'), 'staging'),
      maxBytes: c.IMAGE_MAX_BYTES,
    },
    warnings,
  };
}
