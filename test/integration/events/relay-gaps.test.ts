/**
 * The relay after a large gap in event ids (issue 12's reliability bug): the event table emptied, as the
 * bench does, or a retention purge, while AUTO_INCREMENT keeps counting, so the first new id lies far
 * above the watermark. Every event must still be delivered, in order, and `/api/events`' bound (the
 * watermark) must keep moving. Runs on a database of its own: other relays (other test runs on this
 * machine) must not see its gaps.
 */
import { randomUUID } from 'node:crypto';
import pino from 'pino';
import { type DataSource } from 'typeorm';
import { EventRelay } from '../../../src/api/relay';
import { type RoutedEvent } from '../../../src/api/events';
import { createDataSource } from '../../../src/entities/data-source';
import { migrateDatabase } from '../../../src/entities/migrate';
import { publishEvent } from '../../../src/events/publish';
import { waitFor } from '../../support/machines';

const GAP = 1_000_000;

let ds: DataSource;
const errors: unknown[] = [];
const logger = pino({ level: 'warn' }, { write: (line: string) => void errors.push(JSON.parse(line)) });

beforeAll(async () => {
  const url = new URL(process.env.DATABASE_URL!);
  url.pathname = `${url.pathname}_relay`;
  await migrateDatabase(url.toString());
  ds = createDataSource(url.toString(), { poolSize: 4 });
  await ds.initialize();
});
afterAll(async () => {
  await ds?.destroy();
});

async function publish(tag: string): Promise<number> {
  await publishEvent(ds.manager, {
    resource: 'system',
    action: 'test',
    resourceId: null,
    payload: { tag },
    dedupeKey: `relay-gap-${randomUUID()}`,
  });
  const row = await ds.query('SELECT id FROM `event` WHERE JSON_VALUE(payload, "$.tag") = ?', [tag]);
  return Number(row[0].id);
}

/** Empties the table and moves AUTO_INCREMENT `gap` ids past the last id ever given. */
async function emptyWithGap(gap: number): Promise<void> {
  const [{ next }] = await ds.query(
    "SELECT AUTO_INCREMENT AS next FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'event'",
  );
  await ds.query('DELETE FROM `event`');
  await ds.query(`ALTER TABLE \`event\` AUTO_INCREMENT = ${Number(next ?? 1) + gap}`);
}

function collect(relay: EventRelay): number[] {
  const seen: number[] = [];
  relay.onDelivered((batch: RoutedEvent[]) => seen.push(...batch.map((e) => Number(e.row.id))));
  return seen;
}

describe('event relay over gaps in ids', () => {
  it('delivers the first events after the table was emptied and AUTO_INCREMENT moved on', async () => {
    await publish(`seed-${randomUUID()}`);
    await emptyWithGap(GAP);
    const relay = new EventRelay(ds, logger, { pollMs: 20, maxHoldMs: 2_000 });
    const seen = collect(relay);
    await relay.start(null);
    try {
      const a = await publish(`a-${randomUUID()}`);
      const b = await publish(`b-${randomUUID()}`);
      expect(b).toBeGreaterThan(GAP);
      await waitFor(async () => seen.includes(b), 'the events after the gap are delivered', 15_000);
      expect(seen).toEqual([a, b]);
      expect(relay.watermark).toBe(b);
    } finally {
      await relay.stop();
    }
    expect(errors).toEqual([]);
  });

  it('delivers across a gap that opens while it runs, and keeps going after it', async () => {
    const relay = new EventRelay(ds, logger, { pollMs: 20, maxHoldMs: 2_000 });
    const seen = collect(relay);
    await relay.start(null);
    try {
      const before = await publish(`before-${randomUUID()}`);
      await waitFor(async () => seen.includes(before), 'the event before the gap is delivered', 15_000);
      const [{ next }] = await ds.query(
        "SELECT AUTO_INCREMENT AS next FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'event'",
      );
      await ds.query(`ALTER TABLE \`event\` AUTO_INCREMENT = ${Number(next) + GAP}`);
      const after = [await publish(`x-${randomUUID()}`), await publish(`y-${randomUUID()}`)];
      await waitFor(async () => seen.includes(after[1]!), 'the events after the gap are delivered', 15_000);
      expect(seen).toEqual([before, ...after]);
      expect(relay.watermark).toBe(after[1]);
    } finally {
      await relay.stop();
    }
    expect(errors).toEqual([]);
  });

  it('still waits for an id inside a large gap that an open transaction holds', async () => {
    const relay = new EventRelay(ds, logger, { pollMs: 20, maxHoldMs: 60_000 });
    const seen = collect(relay);
    await relay.start(null);
    const qr = ds.createQueryRunner();
    try {
      const first = await publish(`first-${randomUUID()}`);
      await waitFor(async () => seen.includes(first), 'the first event is delivered', 15_000);
      const [{ next }] = await ds.query(
        "SELECT AUTO_INCREMENT AS next FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'event'",
      );
      await ds.query(`ALTER TABLE \`event\` AUTO_INCREMENT = ${Number(next) + GAP}`);
      // An open transaction takes an id past the gap but does not commit yet.
      await qr.connect();
      await qr.startTransaction();
      const heldTag = `held-${randomUUID()}`;
      await publishEvent(qr.manager, {
        resource: 'system',
        action: 'test',
        resourceId: null,
        payload: { tag: heldTag },
        dedupeKey: `relay-gap-${randomUUID()}`,
      });
      const later = await publish(`later-${randomUUID()}`);
      // The later, committed event waits behind the held one: order is kept.
      await new Promise((r) => setTimeout(r, 500));
      expect(seen).toEqual([first]);
      await qr.commitTransaction();
      await waitFor(
        async () => seen.includes(later),
        'both events are delivered once the hole fills',
        15_000,
      );
      expect(seen).toHaveLength(3);
      expect(seen[2]).toBe(later);
      expect(seen[1]).toBeLessThan(later);
    } finally {
      if (qr.isTransactionActive) await qr.rollbackTransaction();
      await qr.release();
      await relay.stop();
    }
    expect(errors).toEqual([]);
  });
});
