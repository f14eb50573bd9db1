/**
 * A domain's whole life through the binding, against the real libvirtd: define (qcow2 disk from our
 * pool, NIC on our isolated network), lookups, start, suspend/resume, live vCPU and memory
 * changes, reboot/reset, listings with filters, stats, destroy, undefine.
 */
import { Connection, type Domain, type Network, type StoragePool } from '../../../src/libvirt/connection';
import {
  LIBVIRT_URI,
  createNetwork,
  createPool,
  domainType,
  domainXml,
  qcow2VolumeXml,
  removeDomain,
  removeNetwork,
  removePool,
  uniqueName,
} from './support';

const MiB = 1024 * 1024;

describe('Domain lifecycle (libvirt binding)', () => {
  let conn: Connection;
  let pool: StoragePool | undefined;
  let net: Network | undefined;
  let dom: Domain | undefined;
  const name = uniqueName('dom');

  beforeAll(async () => {
    conn = await Connection.open(LIBVIRT_URI);
    pool = await createPool(conn);
    net = await createNetwork(conn, 1);
  });

  afterAll(async () => {
    await removeDomain(dom);
    await removeNetwork(net);
    await removePool(pool);
    await conn?.close();
  });

  it('defines, runs, changes and removes a domain', async () => {
    const disk = await pool!.createVolume(qcow2VolumeXml('disk0.qcow2', 64 * MiB));
    dom = await conn.defineDomain(
      domainXml({
        name,
        type: domainType(),
        memoryMiB: 128,
        maxMemoryMiB: 128,
        vcpus: 1,
        maxVcpus: 2,
        disk: await disk.getPath(),
        interfaces: [{ network: await net!.getName() }],
      }),
      { validate: true },
    );

    // Defined, not running.
    const uuid = await dom.getUUID();
    expect(uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(await dom.getName()).toBe(name);
    expect(await dom.isPersistent()).toBe(true);
    expect(await dom.isActive()).toBe(false);
    expect(await dom.getID()).toBe(-1);
    expect((await dom.getState()).state).toBe('shutoff');
    expect(await (await conn.lookupDomainByName(name)).getUUID()).toBe(uuid);
    expect(await (await conn.lookupDomainByUUID(uuid)).getName()).toBe(name);
    expect(await dom.getAutostart()).toBe(false);
    await dom.setAutostart(true);
    expect(await dom.getAutostart()).toBe(true);
    await dom.setAutostart(false);
    const names = async (filter: Parameters<Connection['listAllDomains']>[0]) =>
      Promise.all((await conn.listAllDomains(filter)).map((d) => d.getName()));
    expect(await names({ inactive: true })).toContain(name);
    expect(await names({ active: true })).not.toContain(name);

    // Start.
    await dom.start();
    expect(await dom.isActive()).toBe(true);
    expect((await dom.getInfo()).state).toBe('running');
    const id = await dom.getID();
    expect(id).toBeGreaterThan(0);
    expect(await (await conn.lookupDomainByID(id)).getName()).toBe(name);
    expect(await names({ running: true })).toContain(name);
    expect(await names({ shutoff: true })).not.toContain(name);
    expect(await names({ persistent: true, active: true })).toContain(name);
    expect(await names({ transient: true })).not.toContain(name);

    // Suspend / resume.
    await dom.suspend();
    expect((await dom.getState()).state).toBe('paused');
    expect(await names({ paused: true })).toContain(name);
    await dom.resume();
    expect((await dom.getState()).state).toBe('running');

    // Live vCPU hot-plug: <vcpu current='1'>2</vcpu> → 2 live; the persistent config keeps 1.
    expect(await dom.getVcpus({ live: true })).toBe(1);
    expect(await dom.getVcpus({ live: true, maximum: true })).toBe(2);
    await dom.setVcpus(2, { live: true });
    expect(await dom.getVcpus({ live: true })).toBe(2);
    expect((await dom.getInfo()).vcpus).toBe(2);
    expect(await dom.getVcpus({ config: true })).toBe(1);
    expect(await dom.getXML()).toMatch(/<vcpu placement='static'( current='2')?>2<\/vcpu>/);

    // Live balloon 128 → 96 MiB. libvirt accepts the new target, but with no OS (no balloon
    // driver) the guest never gives memory back: libvirt keeps reporting the actual 128 MiB.
    await dom.setMemory(96 * 1024, { live: true });
    const info = await dom.getInfo();
    expect(info.maxMemoryKiB).toBe(128 * 1024);
    expect(info.memoryKiB).toBe(128 * 1024);
    expect(await dom.getXML()).toContain("<currentMemory unit='KiB'>131072</currentMemory>");
    expect((await dom.getStats(['balloon']))['balloon.current']).toBe(128 * 1024);
    // The persistent definition is untouched by a live-only change.
    expect(await dom.getXML({ inactive: true })).toContain(
      "<currentMemory unit='KiB'>131072</currentMemory>",
    );

    // Reboot (ACPI request; with no OS nothing answers, the domain keeps running) and reset.
    await dom.reboot();
    expect((await dom.getState()).state).toBe('running');
    await dom.reset();
    expect((await dom.getState()).state).toBe('running');

    // Stats: one call for all domains, typed parameters flattened.
    const all = await conn.getAllDomainStats();
    const mine = all.find((s) => s.uuid === uuid);
    expect(mine?.name).toBe(name);
    expect(mine?.stats['state.state']).toBe(1); // VIR_DOMAIN_RUNNING
    expect(typeof mine?.stats['cpu.time']).toBe('number');
    expect(mine?.stats['balloon.maximum']).toBe(128 * 1024);
    expect(mine?.stats['block.count']).toBe(1);
    expect(mine?.stats['net.count']).toBe(1);
    expect(typeof mine?.stats['block.0.name']).toBe('string');

    // Destroy and undefine.
    await dom.destroy();
    expect((await dom.getState()).state).toBe('shutoff');
    expect(await names({ shutoff: true })).toContain(name);
    await dom.undefine({ nvram: true, managedSave: true, snapshotsMetadata: true });
    await expect(conn.lookupDomainByName(name)).rejects.toMatchObject({ codeName: 'NO_DOMAIN' });
    dom = undefined;
  });
});
