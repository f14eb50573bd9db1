/**
 * Domain lifecycle events reach JS: libvirt's event loop runs on the binding's native thread and
 * each event crosses to the JS thread through a thread-safe function. Every expectation waits on
 * a condition with a deadline; nothing sleeps.
 */
import { Connection, type DomainLifecycleEvent, type Domain } from '../../../src/libvirt/connection';
import { LIBVIRT_URI, domainType, domainXml, removeDomain, uniqueName, waitFor } from './support';

describe('Domain lifecycle events (libvirt binding)', () => {
  let conn: Connection;
  const doms: Domain[] = [];

  beforeAll(async () => {
    conn = await Connection.open(LIBVIRT_URI);
  });

  afterAll(async () => {
    for (const d of doms) await removeDomain(d);
    await conn?.close();
  });

  it('delivers defined, started, suspended, resumed, stopped and undefined events', async () => {
    const name = uniqueName('ev');
    const seen: DomainLifecycleEvent[] = [];
    const unsubscribe = await conn.onDomainLifecycle((ev) => {
      if (ev.domainName === name) seen.push(ev);
    });
    const has = (event: DomainLifecycleEvent['event'], detailName: string) => () =>
      seen.some((e) => e.event === event && e.detailName === detailName);

    try {
      const dom = await conn.defineDomain(domainXml({ name, type: domainType() }));
      doms.push(dom);
      const uuid = await dom.getUUID();
      await waitFor('defined/added', has('defined', 'added'));
      await dom.start();
      await waitFor('started/booted', has('started', 'booted'));
      await dom.suspend();
      await waitFor('suspended/paused', has('suspended', 'paused'));
      await dom.resume();
      await waitFor('resumed/unpaused', has('resumed', 'unpaused'));
      await dom.destroy();
      await waitFor('stopped/destroyed', has('stopped', 'destroyed'));
      await dom.undefine();
      await waitFor('undefined/removed', has('undefined', 'removed'));

      expect(seen.every((e) => e.domainUUID === uuid)).toBe(true);
      // libvirt also reports a 'resumed' while starting (QEMU starts paused) and 'shutdown/finished'
      // before 'stopped': check the order of the first occurrence of each transition we caused.
      const firstIndex = (event: string, detailName: string) =>
        seen.findIndex((e) => e.event === event && e.detailName === detailName);
      const order = [
        firstIndex('defined', 'added'),
        firstIndex('started', 'booted'),
        firstIndex('suspended', 'paused'),
        seen.findIndex((e, i) => i > firstIndex('suspended', 'paused') && e.event === 'resumed'),
        firstIndex('stopped', 'destroyed'),
        firstIndex('undefined', 'removed'),
      ];
      expect([...order].sort((a, b) => a - b)).toEqual(order);
      expect(seen.find((e) => e.event === 'stopped')).toMatchObject({ detail: 1, detailName: 'destroyed' });
    } finally {
      await unsubscribe();
    }
  });

  it('stops delivering after unsubscribe, while other subscriptions keep receiving', async () => {
    const name = uniqueName('ev2');
    const first: string[] = [];
    const second: string[] = [];
    const unsubscribeFirst = await conn.onDomainLifecycle((ev) => {
      if (ev.domainName === name) first.push(ev.event);
    });
    const unsubscribeSecond = await conn.onDomainLifecycle((ev) => {
      if (ev.domainName === name) second.push(ev.event);
    });
    try {
      const dom = await conn.defineDomain(domainXml({ name, type: domainType() }));
      doms.push(dom);
      await waitFor('both see defined', () => first.includes('defined') && second.includes('defined'));

      await unsubscribeFirst();
      await unsubscribeFirst(); // idempotent
      await dom.undefine();
      // The second subscription is the synchronisation point: once it has the event, libvirt has
      // dispatched it to every registered callback.
      await waitFor('second sees undefined', () => second.includes('undefined'));
      expect(first).toEqual(['defined']);
    } finally {
      await unsubscribeSecond();
    }
  });

  it('tells onClose listeners when the connection is closed by the client', async () => {
    const other = await Connection.open(LIBVIRT_URI);
    const reasons: string[] = [];
    other.onClose((r) => reasons.push(r));
    await other.setKeepAlive(5, 3); // needs the event loop; accepted by libvirtd
    await other.onDomainLifecycle(() => undefined); // released by close()
    await other.close();
    await other.close(); // idempotent
    expect(reasons).toEqual(['client']);
    expect(await other.isAlive()).toBe(false);
    await expect(other.getHostname()).rejects.toMatchObject({ codeName: 'INVALID_CONN' });
  });
});
