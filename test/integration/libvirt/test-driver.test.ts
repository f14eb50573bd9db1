/**
 * Fast checks of the binding against libvirt's in-process `test:///default` driver (a fake
 * hypervisor with one running domain, `test`): host queries, string enums versus the C headers,
 * argument validation, read-only connections, events, and native lifetimes (a connection that is
 * garbage-collected without close() is released).
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  Connection,
  DOMAIN_EVENT_TYPES,
  DOMAIN_STATES,
  LibvirtErrorCode,
  type DomainLifecycleEvent,
} from '../../../src/libvirt/connection';
import { getNative, type NativeConstantName } from '../../../src/libvirt/native';
import { waitFor } from './support';

const TEST_URI = 'test:///default';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

describe('libvirt binding on test:///default', () => {
  let conn: Connection;

  beforeAll(async () => {
    conn = await Connection.open(TEST_URI);
  });

  afterAll(async () => {
    await conn?.close();
  });

  it('answers host queries', async () => {
    expect(await conn.isAlive()).toBe(true);
    expect(await conn.getURI()).toBe(TEST_URI);
    expect(await conn.getLibVersion()).toMatch(/^\d+\.\d+\.\d+$/);
    const node = await conn.getNodeInfo();
    expect(node).toMatchObject({
      cpus: expect.any(Number),
      memoryKiB: expect.any(Number),
      model: expect.any(String),
    });
    expect(await conn.getFreeMemory()).toBeGreaterThan(0);
    expect(await conn.getCapabilities()).toContain('<capabilities>');
    expect(typeof (await conn.getHostname())).toBe('string');
  });

  it('maps the running test domain and its stats', async () => {
    const [dom] = await conn.listAllDomains({ running: true });
    expect(await dom.getName()).toBe('test');
    const info = await dom.getInfo();
    expect(info.state).toBe('running');
    expect(info.vcpus).toBeGreaterThan(0);
    expect(await dom.isActive()).toBe(true);
    const stats = await conn.getAllDomainStats({ groups: ['state'] });
    expect(stats.find((s) => s.name === 'test')?.stats['state.state']).toBe(1);
  });

  it('keeps its string tables in step with the libvirt headers', () => {
    const c = getNative().constants;
    const states = [
      'NOSTATE',
      'RUNNING',
      'BLOCKED',
      'PAUSED',
      'SHUTDOWN',
      'SHUTOFF',
      'CRASHED',
      'PMSUSPENDED',
    ];
    states.forEach((s, i) => {
      expect(c[`VIR_DOMAIN_${s}` as NativeConstantName]).toBe(i);
      expect(DOMAIN_STATES[i]).toBe(s.toLowerCase());
    });
    DOMAIN_EVENT_TYPES.forEach((t, i) =>
      expect(c[`VIR_DOMAIN_EVENT_${t.toUpperCase()}` as NativeConstantName]).toBe(i),
    );
    expect(LibvirtErrorCode.NO_DOMAIN).toBe(42);
    expect(LibvirtErrorCode.NO_NWFILTER).toBe(62);
    expect(LibvirtErrorCode.NO_NWFILTER_BINDING).toBe(101);
    expect(LibvirtErrorCode.OPERATION_TIMEOUT).toBe(68);
  });

  it('rejects bad arguments with a TypeError instead of crashing', async () => {
    const native = getNative();
    // Native TypeErrors come from the main realm (not Jest's sandbox): match by name.
    const typeError = { name: 'TypeError' };
    await expect(native.open(42 as unknown as string, 0, () => undefined)).rejects.toMatchObject(typeError);
    const [dom] = await conn.listAllDomains({ running: true });
    await expect(dom.setVcpus(-1)).rejects.toMatchObject(typeError);
    await expect(conn.lookupDomainByName(undefined as unknown as string)).rejects.toMatchObject(typeError);
  });

  it('refuses writes on a read-only connection', async () => {
    const ro = await Connection.open(TEST_URI, { readOnly: true });
    try {
      const [dom] = await ro.listAllDomains();
      await expect(dom.suspend()).rejects.toMatchObject({ code: LibvirtErrorCode.OPERATION_DENIED });
    } finally {
      await ro.close();
    }
  });

  it('delivers lifecycle events from the test driver', async () => {
    const seen: DomainLifecycleEvent[] = [];
    const unsubscribe = await conn.onDomainLifecycle((ev) => seen.push(ev));
    try {
      const [dom] = await conn.listAllDomains({ running: true });
      await dom.suspend();
      await dom.resume();
      await waitFor('suspended and resumed', () =>
        ['suspended', 'resumed'].every((t) => seen.some((e) => e.event === t && e.domainName === 'test')),
      );
    } finally {
      await unsubscribe();
    }
  });

  it('releases a connection and its objects when they are garbage-collected without close()', async () => {
    const native = getNative();
    const settle = async () => {
      gc();
      await new Promise((r) => setImmediate(r));
      return native.debugCounters();
    };
    await settle(); // earlier tests' garbage first
    const before = await settle();
    await (async () => {
      const c = await Connection.open(TEST_URI);
      const doms = await c.listAllDomains();
      expect(doms.length).toBeGreaterThan(0);
      expect(native.debugCounters().connections).toBe(before.connections + 1);
    })();
    await waitFor(
      'the connection and its domains to be finalised',
      async () => {
        const now = await settle();
        return now.connections <= before.connections && now.handles <= before.handles;
      },
      10_000,
    );
  });
});
