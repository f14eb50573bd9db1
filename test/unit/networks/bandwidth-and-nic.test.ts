/**
 * The generated `<bandwidth>` of a network (valid against libvirt's schema and read back by libvirt's own
 * parser), the plain-words reason of a failed QoS probe, and the NIC XML that moves a machine to another
 * network (same MAC, same filterref, runtime-only parts dropped), and the filterref's IP-learning parameters
 * taken from the network (DHCP snooping from the network's own server where it serves DHCP).
 */
import { randomUUID } from 'node:crypto';
import { nicFilterParameters, retargetInterfaceXml } from '../../../src/activities/libvirt';
import { buildNetworkXml, parseInterfaceDeviceXml, parseNetworkXml } from '../../../src/libvirt/xml';
import { qosReasonFrom } from '../../../src/networks/qos';
import { designNetwork, networkSpecOf } from '../../../src/networks/validate';
import { libvirtNames } from '../../../src/workflows/shared';
import { expectSchemaValid, virshTestDriver } from '../xml/xml-oracle';

function networkXml(
  bandwidth: Parameters<typeof designNetwork>[0]['bandwidth'],
  mode: 'nat' | 'isolated' = 'nat',
) {
  const id = randomUUID();
  const designed = designNetwork({
    name: 'qos',
    mode,
    cidr: '10.40.0.0/24',
    dhcpStart: '10.40.0.100',
    dhcpEnd: '10.40.0.200',
    bandwidth,
  });
  if (!designed.ok) throw new Error(JSON.stringify(designed.problems));
  return buildNetworkXml(
    networkSpecOf(designed.design, {
      networkId: id,
      internalName: libvirtNames.network(id),
      bridgeName: libvirtNames.bridge(id),
    }),
  );
}

describe('network <bandwidth>', () => {
  it.each([
    [
      'both directions, every figure',
      {
        inbound: { average: 1000, peak: 5000, burst: 1024 },
        outbound: { average: 128, peak: 256, burst: 64 },
      },
    ],
    ['inbound only', { inbound: { average: 1 } }],
    ['outbound only, the largest figure', { outbound: { average: 4294967295 } }],
  ])('%s: exactly the figures asked for, valid for libvirt', (_what, bw) => {
    const xml = networkXml(bw);
    const el = /<bandwidth>[\s\S]*<\/bandwidth>/.exec(xml)?.[0] ?? '';
    for (const dir of ['inbound', 'outbound'] as const) {
      const want = (bw as Record<string, Record<string, number> | undefined>)[dir];
      if (!want) {
        expect(el).not.toContain(`<${dir}`);
        continue;
      }
      for (const [k, v] of Object.entries(want)) expect(el).toMatch(new RegExp(`<${dir}[^>]* ${k}="${v}"`));
    }
    expectSchemaValid(xml, 'network');
    // libvirt's own parser reads it back with the same figures.
    const echoed = virshTestDriver(['net-define {0}', `net-dumpxml ${parseNetworkXml(xml).name}`], [xml]);
    expect(parseNetworkXml(echoed).bandwidth).toEqual(bw);
  });

  it('no bandwidth: no element', () => {
    expect(networkXml(undefined)).not.toContain('<bandwidth');
  });
});

describe('qosReasonFrom (the probe of src/networks/qos.ts)', () => {
  it.each([
    [
      'internal error: Child process (tc qdisc add dev vfqp1 parent 1:2 handle 2: sfq perturb 10) unexpected exit status 2: Error: Specified qdisc kind is unknown.\n',
      "the host kernel has no 'sfq' queueing discipline (fair queueing under each limit), which libvirt needs for bandwidth limits (tc: Specified qdisc kind is unknown)",
    ],
    [
      'internal error: Child process (tc qdisc add dev vfqp1 root handle 1: htb default 1) unexpected exit status 2: Error: Specified qdisc kind is unknown.',
      "the host kernel has no 'htb' queueing discipline (rate limits), which libvirt needs for bandwidth limits (tc: Specified qdisc kind is unknown)",
    ],
    [
      'internal error: Child process (tc qdisc add dev vfqp1 ingress) unexpected exit status 2: Error: Specified qdisc kind is unknown.',
      "the host kernel has no 'ingress' queueing discipline (outbound limits are policed on ingress), which libvirt needs for bandwidth limits (tc: Specified qdisc kind is unknown)",
    ],
    [
      'internal error: Child process (tc filter add dev vfqp1 parent ffff: protocol all u32 match u32 0 0 police rate 1000kbps burst 1000kb mtu 64kb drop flowid :1) unexpected exit status 2: Error: Failed to load TC action module.',
      "the host kernel has no 'police' traffic-control action, which libvirt needs for outbound limits (tc: Failed to load TC action module)",
    ],
    [
      'Cannot find tc binary',
      'libvirt could not apply a bandwidth limit on this host: Cannot find tc binary',
    ],
  ])('%s', (message, reason) => {
    expect(qosReasonFrom(message)).toBe(reason);
  });
});

describe('retargetInterfaceXml', () => {
  const live = `<domain type='qemu'><name>vmflow-x</name><devices>
    <interface type='network'>
      <mac address='52:54:00:aa:bb:01'/>
      <source network='vmflow-default' portid='1a404dd6-d12f-47f7-a1a0-bc1aa2e854d3' bridge='vmflowbr0'/>
      <target dev='vnet7'/>
      <model type='virtio'/>
      <filterref filter='vmflow-vm-1'><parameter name='IP' value='10.0.0.5'/></filterref>
      <bandwidth><inbound average='100'/></bandwidth>
      <boot order='2'/>
      <alias name='net0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>
    </interface>
    <interface type='network'><mac address='52:54:00:aa:bb:02'/><source network='other'/></interface>
  </devices></domain>`;

  it('points the NIC with that MAC at the new network, keeping MAC, model, filterref, bandwidth, boot, address', () => {
    const r = retargetInterfaceXml(live, '52:54:00:AA:BB:01', 'vmflow-net-1')!;
    expect(r.source).toBe('vmflow-default');
    expect(r.mac).toBe('52:54:00:aa:bb:01');
    const nic = parseInterfaceDeviceXml(r.xml);
    expect(nic).toEqual({
      type: 'network',
      source: 'vmflow-net-1',
      mac: '52:54:00:aa:bb:01',
      model: 'virtio',
      filterref: { filter: 'vmflow-vm-1', parameters: { IP: '10.0.0.5' } },
      bandwidth: { inbound: { average: 100 } },
      boot: 2,
    });
    expect(r.xml).toContain("slot='0x02'".replace(/'/g, '"'));
    for (const runtime of ['vnet7', 'portid', 'vmflowbr0', 'alias']) expect(r.xml).not.toContain(runtime);
  });

  it('takes the first NIC without a MAC; null when there is none or no NIC has the MAC', () => {
    expect(retargetInterfaceXml(live, null, 'n')?.mac).toBe('52:54:00:aa:bb:01');
    expect(retargetInterfaceXml(live, '52:54:00:00:00:99', 'n')).toBeNull();
    expect(retargetInterfaceXml('<domain><name>x</name><devices/></domain>', null, 'n')).toBeNull();
  });

  it('refuses a network name that is not a libvirt name', () => {
    expect(() => retargetInterfaceXml(live, null, "x'/><evil")).toThrow(/network/);
  });

  it("replaces the filterref's IP-learning parameters with the new network's, keeping the others", () => {
    const learning = { CTRL_IP_LEARNING: 'dhcp', DHCPSERVER: '10.9.0.1' };
    const withOld = live.replace(
      "<parameter name='IP' value='10.0.0.5'/>",
      "<parameter name='IP' value='10.0.0.5'/><parameter name='CTRL_IP_LEARNING' value='dhcp'/>" +
        "<parameter name='DHCPSERVER' value='10.0.0.1'/>",
    );
    const moved = parseInterfaceDeviceXml(retargetInterfaceXml(withOld, null, 'vmflow-net-2', learning)!.xml);
    expect(moved.filterref).toEqual({ filter: 'vmflow-vm-1', parameters: { IP: '10.0.0.5', ...learning } });
    // To a network without DHCP: libvirt's default learning again.
    const plain = parseInterfaceDeviceXml(retargetInterfaceXml(withOld, null, 'vmflow-net-3')!.xml);
    expect(plain.filterref).toEqual({ filter: 'vmflow-vm-1', parameters: { IP: '10.0.0.5' } });
  });
});

describe('nicFilterParameters', () => {
  const network = (ips: string) =>
    parseNetworkXml(`<network><name>vmflow-net-x</name><bridge name='vmflowbr9'/>${ips}</network>`);

  it("learns the address by DHCP snooping, from the network's own DHCP server, where IPv4 serves DHCP", () => {
    const dhcp = network(
      "<ip address='fd00::1' prefix='64'/><ip address='10.9.0.1' prefix='24'>" +
        "<dhcp><range start='10.9.0.100' end='10.9.0.200'/></dhcp></ip>",
    );
    expect(nicFilterParameters(dhcp)).toEqual({ CTRL_IP_LEARNING: 'dhcp', DHCPSERVER: '10.9.0.1' });
    // Static hosts only: dnsmasq still serves DHCP.
    const hostsOnly = network(
      "<ip address='10.9.0.1' prefix='24'><dhcp><host mac='52:54:00:00:00:01' ip='10.9.0.5'/></dhcp></ip>",
    );
    expect(nicFilterParameters(hostsOnly)).toEqual({ CTRL_IP_LEARNING: 'dhcp', DHCPSERVER: '10.9.0.1' });
  });

  it("keeps libvirt's default learning where nothing serves IPv4 DHCP", () => {
    expect(nicFilterParameters(network("<ip address='10.9.0.1' prefix='24'/>"))).toBeUndefined();
    expect(nicFilterParameters(network(''))).toBeUndefined();
    expect(
      nicFilterParameters(network("<ip family='ipv6' address='fd00::1' prefix='64'><dhcp/></ip>")),
    ).toBeUndefined();
  });
});
