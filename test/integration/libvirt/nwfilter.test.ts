/**
 * Network filters through the binding, proven by the firewall itself: a filter (drop inbound tcp/23
 * + clean-traffic) bound to a running domain's ports — once through `<filterref>` in the domain XML
 * (libvirt creates the binding), once through createNWFilterBinding — shows up as ebtables and
 * iptables chains for the tap device inside libvirtd's namespace, and disappears with the binding.
 *
 * libvirt drives the `ebtables`/`iptables` commands, which here are the nf_tables variants
 * (iptables v1.8.9 (nf_tables)); `iptables-legacy` shows nothing.
 * The filters carry an explicit IP parameter: without one, clean-traffic waits to learn the
 * guest's IP (which an OS-less guest never sends) and libvirt installs only a learning chain.
 */
import {
  Connection,
  LibvirtErrorCode,
  type Domain,
  type NWFilter,
  type Network,
} from '../../../src/libvirt/connection';
import {
  LIBVIRT_URI,
  createNetwork,
  domainType,
  domainXml,
  inNamespace,
  quietly,
  randomMac,
  removeDomain,
  removeNetwork,
  tapDevices,
  uniqueName,
} from './support';

/** Lines of the namespace's ebtables (nat) and iptables (filter) rules that mention `dev`. */
async function firewallFor(dev: string): Promise<{ ebtables: string[]; iptables: string[] }> {
  const mentions = (out: string) => out.split('\n').filter((l) => new RegExp(`\\b${dev}\\b`).test(l));
  return {
    ebtables: mentions(await inNamespace('ebtables', '-t', 'nat', '-L')),
    iptables: mentions(await inNamespace('iptables', '-S')),
  };
}

describe('NWFilter bindings on a running domain (libvirt binding)', () => {
  let conn: Connection;
  let net: Network | undefined;
  let filter: NWFilter | undefined;
  let dom: Domain | undefined;

  beforeAll(async () => {
    conn = await Connection.open(LIBVIRT_URI);
    net = await createNetwork(conn, 3);
  });

  afterAll(async () => {
    await removeDomain(dom);
    if (filter) await quietly(() => filter!.undefine());
    await removeNetwork(net);
    await conn?.close();
  });

  it('binds a filter to a running domain and shows its rules in ebtables/iptables until removed', async () => {
    const filterName = uniqueName('nofw');
    filter = await conn.defineNWFilter(
      `<filter name='${filterName}' chain='root'>
        <filterref filter='clean-traffic'/>
        <rule action='drop' direction='in' priority='500'><tcp dstportstart='23'/></rule>
      </filter>`,
      { validate: true },
    );
    expect(await filter.getName()).toBe(filterName);
    expect(await (await conn.lookupNWFilterByUUID(await filter.getUUID())).getName()).toBe(filterName);
    expect(await Promise.all((await conn.listAllNWFilters()).map((f) => f.getName()))).toEqual(
      expect.arrayContaining([filterName, 'clean-traffic']),
    );
    expect(await filter.getXML()).toContain("<filterref filter='clean-traffic'/>");

    // NIC 0 filtered through <filterref> in the domain XML; NIC 1 unfiltered for now.
    const domName = uniqueName('fwdom');
    const [mac0, mac1] = [randomMac(), randomMac()];
    const netName = await net!.getName();
    const xml = domainXml({
      name: domName,
      type: domainType(),
      interfaces: [
        { network: netName, mac: mac0, filter: filterName },
        { network: netName, mac: mac1 },
      ],
    }).replace(
      `<filterref filter='${filterName}'/>`,
      `<filterref filter='${filterName}'><parameter name='IP' value='10.251.3.10'/></filterref>`,
    );
    dom = await conn.defineDomain(xml);
    await dom.start();
    const [tap0, tap1] = await tapDevices(dom);
    expect(tap0).toBeDefined();
    expect(tap1).toBeDefined();

    // The domain's filterref became a binding on tap0, with its rules in both tables.
    const listed = await Promise.all(
      (await conn.listAllNWFilterBindings()).map(async (b) => [
        await b.getPortDev(),
        await b.getFilterName(),
      ]),
    );
    expect(listed).toContainEqual([tap0, filterName]);
    expect(listed.map(([dev]) => dev)).not.toContain(tap1);
    const auto = await conn.lookupNWFilterBindingByPortDev(tap0);
    expect(await auto.getFilterName()).toBe(filterName);
    let fw = await firewallFor(tap0);
    expect(fw.ebtables).toEqual(
      expect.arrayContaining([`-i ${tap0} -j libvirt-I-${tap0}`, `-o ${tap0} -j libvirt-O-${tap0}`]),
    );
    expect(fw.iptables).toEqual(expect.arrayContaining([`-N FI-${tap0}`, `-N FO-${tap0}`, `-N HI-${tap0}`]));
    expect(fw.iptables).toContain(`-A FO-${tap0} -p tcp -m tcp --dport 23 -j DROP`);
    expect(await firewallFor(tap1)).toEqual({ ebtables: [], iptables: [] });

    // Bind the same filter to tap1 explicitly, as vmflow does for live firewall changes.
    const binding = await conn.createNWFilterBinding(
      `<filterbinding>
        <owner><name>${domName}</name><uuid>${await dom.getUUID()}</uuid></owner>
        <portdev name='${tap1}'/>
        <mac address='${mac1}'/>
        <filterref filter='${filterName}'><parameter name='IP' value='10.251.3.11'/></filterref>
      </filterbinding>`,
      { validate: true },
    );
    expect(await binding.getPortDev()).toBe(tap1);
    expect(await binding.getFilterName()).toBe(filterName);
    expect(await binding.getXML()).toContain(`<parameter name='MAC' value='${mac1}'/>`);
    expect(await Promise.all((await conn.listAllNWFilterBindings()).map((b) => b.getPortDev()))).toContain(
      tap1,
    );
    fw = await firewallFor(tap1);
    expect(fw.ebtables).toEqual(
      expect.arrayContaining([`-i ${tap1} -j libvirt-I-${tap1}`, `-o ${tap1} -j libvirt-O-${tap1}`]),
    );
    expect(fw.iptables).toContain(`-A FO-${tap1} -p tcp -m tcp --dport 23 -j DROP`);

    // A filter in use cannot be undefined.
    await expect(filter.undefine()).rejects.toMatchObject({ code: LibvirtErrorCode.OPERATION_INVALID });

    // Deleting the binding removes exactly its rules.
    await binding.delete();
    await expect(conn.lookupNWFilterBindingByPortDev(tap1)).rejects.toMatchObject({
      code: LibvirtErrorCode.NO_NWFILTER_BINDING,
    });
    expect(await firewallFor(tap1)).toEqual({ ebtables: [], iptables: [] });
    expect((await firewallFor(tap0)).iptables.length).toBeGreaterThan(0);

    // Stopping the domain removes the automatic binding and its rules.
    await dom.destroy();
    expect(
      await Promise.all((await conn.listAllNWFilterBindings()).map((b) => b.getPortDev())),
    ).not.toContain(tap0);
    expect(await firewallFor(tap0)).toEqual({ ebtables: [], iptables: [] });

    await removeDomain(dom);
    dom = undefined;
    await filter.undefine();
    await expect(conn.lookupNWFilterByName(filterName)).rejects.toMatchObject({
      code: LibvirtErrorCode.NO_NWFILTER,
    });
    filter = undefined;
  });
});
