/**
 * Event wake-ups (DESIGN decision 10): the event table stays the source of truth for order and catch-up;
 * a publish on Redis after an event row commits only tells every relay "look now". Losing a wake-up
 * loses nothing: relays still poll, slowly while Redis is there and quickly while it is not.
 *
 * Writers: {@link eventWakeSubscriber} is a TypeORM subscriber that sees each insert into `event` and
 * publishes once the insert is committed (after the surrounding transaction, or at once without one).
 * Readers: {@link redisWakeSource} is what an {@link WakeSource} relay subscribes to.
 */
import { Redis } from 'ioredis';
import {
  EventSubscriber,
  type EntitySubscriberInterface,
  type InsertEvent,
  type QueryRunner,
  type TransactionCommitEvent,
  type TransactionRollbackEvent,
} from 'typeorm';
import { Event } from '../entities/event';

/** The Redis channel that carries wake-ups (the message body means nothing). */
export const EVENTS_CHANNEL = 'vmflow:events';
/** The channel that says "new metrics samples committed" (src/api/metrics-feed.ts; docs/metrics.md). */
export const METRICS_CHANNEL = 'vmflow:metrics';

/** Minimal logger (pino's shape). */
interface Log {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/** Publishes wake-ups. `wake()` never throws and never waits: a lost wake-up only delays delivery. */
export interface EventWaker {
  wake(): void;
  close(): Promise<void>;
}

const redisOptions = {
  // Never queue commands while disconnected: a wake-up published late is worthless, and the queue
  // would grow without bound while Redis is away.
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  lazyConnect: false,
  // Reconnect forever, backing off to 2 s.
  retryStrategy: (times: number) => Math.min(100 * times, 2_000),
} as const;

/**
 * A waker that publishes on Redis. Bursts coalesce: while one publish is in flight, further wake-ups
 * collapse into one more publish after it.
 */
export function redisWaker(url: string, log?: Log, channel: string = EVENTS_CHANNEL): EventWaker {
  const redis = new Redis(url, { ...redisOptions, connectionName: `${channel.replace(':', '-')}-pub` });
  let down = false;
  redis.on('error', (err: Error) => {
    if (!down)
      log?.warn(
        { channel, err: err.message },
        'event wake-ups: Redis unavailable; relays fall back to polling',
      );
    down = true;
  });
  redis.on('ready', () => {
    if (down) log?.info({ channel }, 'event wake-ups: Redis back');
    down = false;
  });
  let inFlight = false;
  let again = false;
  const publish = (): void => {
    inFlight = true;
    again = false;
    redis
      .publish(channel, '1')
      .catch(() => undefined)
      .finally(() => {
        inFlight = false;
        if (again) publish();
      });
  };
  return {
    wake() {
      if (redis.status !== 'ready') return;
      if (inFlight) again = true;
      else publish();
    },
    async close() {
      redis.disconnect();
    },
  };
}

/**
 * A TypeORM subscriber class (TypeORM instantiates it) that wakes relays when an event row is committed:
 * at once for an insert outside a transaction, else after the outermost commit of its transaction
 * (nothing on a rollback).
 */
export function eventWakeSubscriber(
  waker: Pick<EventWaker, 'wake'>,
): new () => EntitySubscriberInterface<Event> {
  const pending = new WeakSet<QueryRunner>();
  class EventWakeSubscriber implements EntitySubscriberInterface<Event> {
    listenTo() {
      return Event;
    }
    afterInsert(e: InsertEvent<Event>) {
      if (e.queryRunner.isTransactionActive) pending.add(e.queryRunner);
      else waker.wake();
    }
    afterTransactionCommit(e: TransactionCommitEvent) {
      // A released savepoint is not a commit: wait for the outermost one.
      if (e.queryRunner.isTransactionActive || !pending.has(e.queryRunner)) return;
      pending.delete(e.queryRunner);
      waker.wake();
    }
    afterTransactionRollback(e: TransactionRollbackEvent) {
      if (!e.queryRunner.isTransactionActive) pending.delete(e.queryRunner);
    }
  }
  // TypeORM instantiates only the listed classes that carry its subscriber decorator.
  EventSubscriber()(EventWakeSubscriber);
  return EventWakeSubscriber;
}

/** What a relay listens to: calls `onWake` on each wake-up and `onStatus` when it connects or drops. */
export interface WakeSource {
  subscribe(onWake: () => void, onStatus: (connected: boolean) => void): void;
  close(): Promise<void>;
}

/** A wake source on Redis pub/sub (reconnects by itself; reports each connect and drop). */
export function redisWakeSource(url: string, log?: Log, channel: string = EVENTS_CHANNEL): WakeSource {
  let redis: Redis | null = null;
  return {
    subscribe(onWake, onStatus) {
      redis = new Redis(url, { ...redisOptions, connectionName: `${channel.replace(':', '-')}-sub` });
      let connected = false;
      const status = (up: boolean) => {
        if (up === connected) return;
        connected = up;
        if (up) log?.info({ channel }, 'event relay: Redis wake-ups on');
        else log?.warn({ channel }, 'event relay: Redis wake-ups lost; polling quickly until they are back');
        onStatus(up);
      };
      redis.on('message', () => onWake());
      redis.on('ready', () => {
        // ioredis re-subscribes by itself after a reconnect; the first time, subscribe here.
        redis!.subscribe(channel).then(
          () => status(true),
          () => status(false),
        );
      });
      redis.on('close', () => status(false));
      redis.on('error', () => status(false));
    },
    async close() {
      redis?.disconnect();
      redis = null;
    },
  };
}
