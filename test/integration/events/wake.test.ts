/**
 * Event wake-ups over Redis (DESIGN decision 10): a committed event wakes every relay at once; the event
 * table stays the source of truth, so when Redis is down or restarts delivery goes on (polling), and two
 * API processes each deliver every event exactly once, in order, to their own sockets.
 *
 * Uses a Redis server of its own (a free loopback port) so that it can stop and restart it, and relays
 * whose fallback poll is a minute: an event delivered in seconds was delivered by a wake-up.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import pino from 'pino';
import { io as connectSocket, type Socket } from 'socket.io-client';
import { type DataSource } from 'typeorm';
import { signToken } from '../../../src/api/auth';
import { EventRelay } from '../../../src/api/relay';
import { publishEvent } from '../../../src/events/publish';
import { createDataSource } from '../../../src/entities/data-source';
import { eventWakeSubscriber, redisWaker, redisWakeSource, type EventWaker } from '../../../src/events/wake';
import { seedUser } from '../../support/db';
import { waitFor } from '../../support/machines';
import { freePort, RedisServer } from '../../support/redis';

const root = path.resolve(__dirname, '../../..');
const JWT_SECRET = 'vmflow-test-jwt-secret-wake-0123456789';
const FALLBACK_POLL_MS = 60_000;
const DELIVERY_DEADLINE_MS = 10_000;
const quiet = pino({ level: 'silent' });

let redis: RedisServer;
let ds: DataSource;
let waker: EventWaker;

beforeAll(async () => {
  redis = new RedisServer(await freePort());
  await redis.start();
  waker = redisWaker(redis.url);
  ds = createDataSource(process.env.DATABASE_URL!, {
    poolSize: 4,
    subscribers: [eventWakeSubscriber(waker)],
  });
  await ds.initialize();
});
afterAll(async () => {
  await ds?.destroy();
  await waker?.close();
  await redis?.stop();
});

/** Publishes an event tagged `tag` (admins see it), outside a transaction. */
async function publish(tag: string, manager = ds.manager): Promise<void> {
  await publishEvent(manager, {
    resource: 'system',
    action: 'wake-test',
    resourceId: null,
    payload: { tag },
    dedupeKey: `wake-test-${randomUUID()}`,
  });
}

function tagsSeen(relay: EventRelay): string[] {
  const seen: string[] = [];
  relay.onDelivered((batch) => {
    for (const { row } of batch) if (row.action === 'wake-test') seen.push(String(row.payload.tag));
  });
  return seen;
}

describe('event wake-ups', () => {
  let relay: EventRelay;
  let seen: string[];
  beforeAll(async () => {
    relay = new EventRelay(ds, quiet, {
      wake: redisWakeSource(redis.url),
      fallbackPollMs: FALLBACK_POLL_MS,
      pollMs: 100,
    });
    seen = tagsSeen(relay);
    await relay.start(null);
    await waitFor(async () => relay.wakeUpsConnected, 'the relay to subscribe', 10_000);
  });
  afterAll(async () => {
    await relay?.stop();
  });

  it('delivers an event committed outside a transaction on its wake-up, not on the fallback poll', async () => {
    // Let the relay settle into its long fallback wait first.
    await new Promise((r) => setTimeout(r, 300));
    const tag = `plain-${randomUUID()}`;
    await publish(tag);
    await waitFor(async () => seen.includes(tag), 'the woken relay to deliver', DELIVERY_DEADLINE_MS);
  });

  it('wakes only after the transaction that wrote the event commits, and not for a rollback', async () => {
    await new Promise((r) => setTimeout(r, 300));
    const rolledBack = `rolled-back-${randomUUID()}`;
    await ds
      .transaction(async (m) => {
        await publish(rolledBack, m);
        throw new Error('roll back');
      })
      .catch(() => undefined);
    const tag = `in-tx-${randomUUID()}`;
    await ds.transaction(async (m) => {
      await publish(tag, m);
      await new Promise((r) => setTimeout(r, 200)); // the relay must not have it yet: not committed
      expect(seen).not.toContain(tag);
    });
    await waitFor(async () => seen.includes(tag), 'the commit to wake the relay', DELIVERY_DEADLINE_MS);
    expect(seen).not.toContain(rolledBack);
  });

  it('keeps delivering while Redis is down (polling), and uses wake-ups again once it is back', async () => {
    await redis.stop();
    await waitFor(async () => !relay.wakeUpsConnected, 'the relay to notice Redis is gone', 10_000);
    const whileDown = [`down-1-${randomUUID()}`, `down-2-${randomUUID()}`];
    for (const t of whileDown) await publish(t);
    await waitFor(
      async () => whileDown.every((t) => seen.includes(t)),
      'delivery without Redis',
      DELIVERY_DEADLINE_MS,
    );

    await redis.start();
    await waitFor(async () => relay.wakeUpsConnected, 'the relay to resubscribe', 15_000);
    // The writer reconnects on its own too; its next wake-ups go through.
    await new Promise((r) => setTimeout(r, 2_500));
    const tag = `back-${randomUUID()}`;
    await publish(tag);
    await waitFor(async () => seen.includes(tag), 'a wake-up after the restart', DELIVERY_DEADLINE_MS);
    const mine = seen.filter((t) => t.startsWith('down-') || t.startsWith('back-'));
    expect(mine).toEqual([...whileDown, tag]);
  });
});

/** An API process (`src/api/main.ts`) on its own port, added to `track` as soon as it is spawned. */
async function startApiProcess(port: number, track: ChildProcess[]): Promise<ChildProcess> {
  const proc = spawn(
    process.execPath,
    [path.join(root, 'node_modules/tsx/dist/cli.mjs'), 'src/api/main.ts'],
    {
      cwd: root,
      env: {
        ...process.env,
        NODE_ENV: 'test',
        PORT: String(port),
        API_HOST: '127.0.0.1',
        // Two API processes on one host: each its own Prometheus listener (0: any free port).
        API_METRICS_PORT: '0',
        REDIS_URL: redis.url,
        JWT_SECRET,
        SECRETS_KEY: 'vmflow-test-secrets-key-0123456789',
        ADMIN_EMAIL: 'wake-test-admin@test.vmflow.local',
        ADMIN_PASSWORD: 'wake-test-admin-password',
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  track.push(proc);
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  proc.stdout!.on('data', (d: Buffer) => (err += d.toString()));
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`api exited: ${err}`);
      const r = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null);
      return r?.ok ?? false;
    },
    'an API process to listen',
    60_000,
  );
  return proc;
}

describe('two API processes', () => {
  const procs: ChildProcess[] = [];
  const sockets: Socket[] = [];
  afterAll(async () => {
    for (const s of sockets) s.close();
    for (const p of procs) {
      if (p.exitCode !== null || p.signalCode !== null) continue; // exited already (one that failed to start)
      const exited = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await exited;
    }
  });

  it('each delivers every event exactly once, in order, to its own sockets', async () => {
    const ports = [await freePort(), await freePort()];
    // Each process is tracked from its spawn: one that fails to start must not leave the other running.
    await Promise.all(ports.map((p) => startApiProcess(p, procs)));
    const admin = await seedUser(ds, 'ADMIN');
    const token = signToken(JWT_SECRET, admin);
    const received: string[][] = [];
    const ids: number[][] = [];
    for (const port of ports) {
      const got: string[] = [];
      const gotIds: number[] = [];
      received.push(got);
      ids.push(gotIds);
      const s = connectSocket(`http://127.0.0.1:${port}`, { auth: { token }, transports: ['websocket'] });
      sockets.push(s);
      s.on('system:wake-test', (e: { eventId: number; data: { tag: string } }) => {
        got.push(e.data.tag);
        gotIds.push(e.eventId);
      });
      await new Promise<void>((resolve, reject) => {
        s.once('relay:synced', () => resolve());
        s.once('connect_error', reject);
      });
    }
    const run = randomUUID().slice(0, 8);
    const tags = Array.from({ length: 40 }, (_, i) => `two-${run}-${String(i).padStart(2, '0')}`);
    // Half outside transactions, half in concurrent ones (commits in any order: holes the relays settle).
    await Promise.all(tags.map((t, i) => (i % 2 ? publish(t) : ds.transaction(async (m) => publish(t, m)))));
    for (const got of received)
      await waitFor(
        async () => tags.every((t) => got.includes(t)),
        'every event on each API process',
        DELIVERY_DEADLINE_MS,
      );
    await new Promise((r) => setTimeout(r, 300)); // anything duplicated would have arrived by now
    for (const [i, got] of received.entries()) {
      const mine = got.filter((t) => t.startsWith(`two-${run}-`));
      expect(new Set(mine).size).toBe(tags.length);
      expect(mine).toHaveLength(tags.length);
      // In id order (the order the table gives), whatever order the transactions committed in.
      expect(ids[i]).toEqual([...ids[i]!].sort((a, b) => a - b));
    }
    expect(received[0]).toEqual(received[1]);
  });
});
