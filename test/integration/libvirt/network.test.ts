/**
 * An isolated network with DHCP through the binding: define, start, live DHCP-host update (seen in
 * the live and persistent XML), removal of the entry, stop, undefine.
 */
import { Connection, LibvirtErrorCode, type Network } from '../../../src/libvirt/connection';
import {
  LIBVIRT_URI,
  inNamespace,
  isolatedNetworkXml,
  randomMac,
  removeNetwork,
  uniqueName,
} from './support';

describe('Isolated network with DHCP (libvirt binding)', () => {
  let conn: Connection;
  let net: Network | undefined;

  beforeAll(async () => {
    conn = await Connection.open(LIBVIRT_URI);
  });

  afterAll(async () => {
    await removeNetwork(net);
    await conn?.close();
  });

  it('defines, starts, updates DHCP hosts live, stops and undefines a network', async () => {
    const name = uniqueName('net');
    net = await conn.defineNetwork(isolatedNetworkXml(name, 2), { validate: true });
    expect(await net.getName()).toBe(name);
    expect(await net.isActive()).toBe(false);
    expect(await net.isPersistent()).toBe(true);
    expect(await (await conn.lookupNetworkByUUID(await net.getUUID())).getName()).toBe(name);
    expect(
      await Promise.all((await conn.listAllNetworks({ inactive: true })).map((n) => n.getName())),
    ).toContain(name);

    await net.create();
    expect(await net.isActive()).toBe(true);
    expect(
      await Promise.all((await conn.listAllNetworks({ active: true })).map((n) => n.getName())),
    ).toContain(name);
    const bridge = await net.getBridgeName();
    expect(bridge).toMatch(/^virbr\d+$/);
    // The bridge (and its address) lives in libvirtd's namespace.
    expect(await inNamespace('ip', '-4', 'addr', 'show', 'dev', bridge)).toContain('10.251.2.1/24');
    expect(await net.getXML()).not.toContain('<forward');
    expect(await net.getDHCPLeases()).toEqual([]);

    // Live + persistent DHCP host reservation.
    const mac = randomMac();
    const host = `<host mac='${mac}' name='${uniqueName('host')}' ip='10.251.2.10'/>`;
    await net.update('add-last', 'ip-dhcp-host', host, { live: true, config: true });
    expect(await net.getXML()).toContain(`mac='${mac}'`);
    expect(await net.getXML({ inactive: true })).toContain(`mac='${mac}'`);
    expect(await net.getXML()).toContain("ip='10.251.2.10'");

    // A duplicate entry is refused with a typed error.
    await expect(net.update('add-last', 'ip-dhcp-host', host, { live: true })).rejects.toMatchObject({
      name: 'LibvirtError',
    });

    await net.update('delete', 'ip-dhcp-host', host, { live: true, config: true });
    expect(await net.getXML()).not.toContain(mac);
    expect(await net.getXML({ inactive: true })).not.toContain(mac);

    await net.setAutostart(true);
    expect(await net.getAutostart()).toBe(true);
    await net.setAutostart(false);

    await net.destroy();
    expect(await net.isActive()).toBe(false);
    await net.undefine();
    await expect(conn.lookupNetworkByName(name)).rejects.toMatchObject({ code: LibvirtErrorCode.NO_NETWORK });
    net = undefined;
  });
});
