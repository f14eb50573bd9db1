/* eslint-disable @typescript-eslint/no-explicit-any -- responses and socket payloads are JSON that tests read loosely */
/**
 * The API on the real stack for integration suites: `createApp` with the stack's data source, Temporal
 * client and libvirt provider, listening on a free 127.0.0.1 port, plus a small HTTP client and
 * socket.io-client helpers.
 */
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { type DataSource } from 'typeorm';
import { createApp, type AppDeps, type VmflowApi } from '../../src/api/app';
import { signToken } from '../../src/api/auth';
import { Event } from '../../src/entities/event';
import { Machine } from '../../src/entities/machine';
import { type User } from '../../src/entities/user';
import { libvirtNames } from '../../src/workflows/shared';
import { type Stack } from './stack';

/** The JWT secret the test API signs with. */
export const TEST_JWT_SECRET = 'vmflow-test-jwt-secret-0123456789';
/** Must match the stack's SecretBox key (test/support/stack.ts) so workers can open what the API seals. */
export const TEST_SECRETS_KEY = 'vmflow-test-secrets-key-0123456789';

/** A response as tests look at it. */
export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** A running API. */
export interface ApiHarness {
  api: VmflowApi;
  url: string;
  /** A bearer token for a user. */
  token(user: Pick<User, 'id' | 'role'>): string;
  /** Calls the API (token: a user, a raw token string, or none). */
  call<T = any>(
    method: string,
    path: string,
    opts?: {
      as?: Pick<User, 'id' | 'role'> | string | null;
      body?: unknown;
      headers?: Record<string, string>;
      raw?: string;
    },
  ): Promise<Reply<T>>;
  /** A connected socket (resolves once the relay has served it: `relay:synced`). */
  socket(
    user: Pick<User, 'id' | 'role'> | null,
    opts?: { lastEventId?: number; token?: string },
  ): Promise<RecordingSocket>;
  close(): Promise<void>;
}

/** A socket.io client that records every event it receives, in order. */
export interface RecordingSocket {
  socket: Socket;
  events: Array<{ name: string; payload: any }>;
  /** Resolves when an event matching `pred` has arrived (deadline). */
  waitFor(
    pred: (e: { name: string; payload: any }) => boolean,
    what: string,
    ms?: number,
  ): Promise<{ name: string; payload: any }>;
  close(): void;
}

/** Starts the API on the stack. */
export async function startApi(stack: Stack, over: Partial<AppDeps> = {}): Promise<ApiHarness> {
  const api = createApp({
    dataSource: stack.dataSource,
    temporal: stack.env.client,
    libvirt: stack.libvirt,
    config: {
      jwtSecret: TEST_JWT_SECRET,
      secretsKey: TEST_SECRETS_KEY,
      TEMPORAL_UI_URL: 'http://127.0.0.1:8233',
      TEMPORAL_NAMESPACE: 'default',
    },
    logger: pino({ level: process.env.API_TEST_LOG ?? 'silent' }),
    placementHost: stack.hostName,
    destroyShutdownTimeoutSec: 1,
    relay: { pollMs: 50 },
    // Each app would start its own event-loop and GC monitors; the metrics suite turns them on.
    processMetrics: false,
    ...over,
  });
  const { url } = await api.listen(0);
  const sockets = new Set<Socket>();
  const token = (u: Pick<User, 'id' | 'role'>) => signToken(TEST_JWT_SECRET, u);
  const harness: ApiHarness = {
    api,
    url,
    token,
    async call(method, path, opts = {}) {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      if (opts.as) headers.authorization = `Bearer ${typeof opts.as === 'string' ? opts.as : token(opts.as)}`;
      let body: string | undefined;
      if (opts.raw !== undefined) {
        body = opts.raw;
        headers['content-type'] ??= 'application/json';
      } else if (opts.body !== undefined) {
        body = JSON.stringify(opts.body);
        headers['content-type'] = 'application/json';
      }
      const res = await fetch(`${url}${path}`, { method, headers, body });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        /* not JSON (Swagger UI) */
      }
      return { status: res.status, body: parsed as never, headers: res.headers };
    },
    async socket(user, opts = {}) {
      const auth: Record<string, unknown> = {};
      if (opts.token !== undefined) auth.token = opts.token;
      else if (user) auth.token = token(user);
      if (opts.lastEventId !== undefined) auth.lastEventId = opts.lastEventId;
      const socket = connectSocket(url, {
        auth,
        transports: ['websocket'],
        reconnection: false,
        forceNew: true,
      });
      sockets.add(socket);
      const events: RecordingSocket['events'] = [];
      socket.onAny((name: string, payload: unknown) => events.push({ name, payload }));
      const rec: RecordingSocket = {
        socket,
        events,
        async waitFor(pred, what, ms = 30_000) {
          const end = Date.now() + ms;
          for (;;) {
            const hit = events.find(pred);
            if (hit) return hit;
            if (Date.now() > end)
              throw new Error(
                `socket: timed out waiting for ${what}; got ${events.map((e) => e.name).join(', ')}`,
              );
            await new Promise((r) => setTimeout(r, 20));
          }
        },
        close() {
          socket.close();
          sockets.delete(socket);
        },
      };
      await new Promise<void>((resolve, reject) => {
        socket.once('connect_error', (err: Error) => reject(err));
        socket.once('relay:synced', () => resolve());
      });
      return rec;
    },
    async close() {
      for (const s of sockets) s.close();
      await api.close();
    },
  };
  return harness;
}

/** Inserts a machine row directly (no hypervisor behind it): for permission and validation tables only. */
export async function seedMachineRow(
  ds: DataSource,
  over: Partial<Machine> & Pick<Machine, 'ownerId' | 'departmentId' | 'templateId' | 'hostId'>,
): Promise<Machine> {
  const id = over.id ?? randomUUID();
  const row = {
    id,
    name: `fixture ${id.slice(0, 8)}`,
    internalName: libvirtNames.domain(id),
    libvirtUuid: null,
    status: 'off' as const,
    cpu: 1,
    memoryMiB: 64,
    storageGiB: 10,
    os: 'none',
    macAddress: null,
    networkName: null,
    diskPath: null,
    filterName: libvirtNames.vmFilter(id),
    sourceMachineId: null,
    linkedClone: false,
    pendingHardware: null,
    lastError: null,
    currentOperationId: null,
    ...over,
  };
  await ds.getRepository(Machine).insert(row as never);
  return ds.getRepository(Machine).findOneByOrFail({ id });
}

/** The highest event id now. */
export async function maxEventId(ds: DataSource): Promise<number> {
  const r = await ds
    .getRepository(Event)
    .createQueryBuilder('e')
    .select('MAX(e.id)', 'max')
    .getRawOne<{ max: string | null }>();
  return Number(r?.max ?? 0);
}
