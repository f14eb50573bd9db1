import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  VMFLOW_METADATA_NS,
  XmlParseError,
  buildDiskDeviceXml,
  buildDomainXml,
  buildInterfaceDeviceXml,
  buildVmflowMetadataXml,
  parseDiskDeviceXml,
  seedCdromDisk,
  parseDomainXml,
  parseInterfaceDeviceXml,
  type DiskSpec,
  type DomainSpec,
  type InterfaceSpec,
  type ParsedDomain,
} from '../../../src/libvirt/xml';
import { expectSchemaValid, expectSpecError, virshTestDriver } from './xml-oracle';

const UUID = '123e4567-e89b-12d3-a456-426614174000';

const minimal: DomainSpec = {
  name: 'vmflow-min',
  type: 'qemu',
  memoryMiB: 64,
  vcpus: 1,
  disks: [],
  interfaces: [],
};

const full: DomainSpec = {
  name: 'vmflow-123e4567-e89b-12d3-a456-426614174000',
  uuid: UUID,
  title: 'Alice <dev> & "friends"',
  description: 'Line one\nLine two with <b>markup</b> & ]]> and <!-- a comment -->\n\tindented',
  type: 'kvm',
  arch: 'x86_64',
  machine: 'q35',
  memoryMiB: 2048,
  maxMemoryMiB: 4096,
  vcpus: 2,
  maxVcpus: 8,
  disks: [
    { path: '/var/lib/vmflow/images/vmflow-1.qcow2', format: 'qcow2', target: 'vda', bus: 'virtio', boot: 2 },
    { path: '/var/lib/vmflow/images/data.raw', format: 'raw', target: 'vdb', bus: 'virtio', readonly: true },
    {
      path: '/var/lib/vmflow/iso/install.iso',
      format: 'raw',
      target: 'sda',
      bus: 'sata',
      device: 'cdrom',
      boot: 1,
    },
  ],
  interfaces: [
    {
      type: 'network',
      source: 'vmflow-net-1',
      mac: '52:54:00:aa:bb:cc',
      model: 'virtio',
      targetDev: 'vmf-tap0',
      filterref: {
        filter: 'vmflow-vm-1',
        parameters: { IP: ['10.0.0.5', '10.0.0.6'], CTRL_IP_LEARNING: 'none' },
      },
      bandwidth: {
        inbound: { average: 1000, peak: 2000, burst: 512, floor: 100 },
        outbound: { average: 800 },
      },
    },
    { type: 'bridge', source: 'br0', mac: '52:54:00:aa:bb:cd', model: 'e1000', boot: 3 },
  ],
  graphics: { type: 'vnc', listen: '127.0.0.1', password: 'p@ss<&>', port: 5901 },
  guestAgent: true,
  vmflowAgent: true,
  metadata: { machineId: 'm-1', operationId: 'op-<&>"\'', note: '' },
  onPoweroff: 'destroy',
  onReboot: 'restart',
  onCrash: 'preserve',
  clock: 'localtime',
};

/** What parseDomainXml must return for a spec built by buildDomainXml (defaults applied). */
function expected(spec: DomainSpec): ParsedDomain {
  const out: ParsedDomain = {
    name: spec.name,
    type: spec.type,
    arch: spec.arch ?? 'x86_64',
    memoryMiB: spec.memoryMiB,
    maxMemoryMiB: spec.maxMemoryMiB ?? spec.memoryMiB,
    vcpus: spec.vcpus,
    maxVcpus: spec.maxVcpus ?? spec.vcpus,
    disks: spec.disks.map((d) => ({
      path: d.path,
      format: d.format,
      target: d.target,
      bus: d.bus,
      device: d.device ?? 'disk',
      readonly: d.readonly === true || d.device === 'cdrom',
      ...(d.boot !== undefined ? { boot: d.boot } : {}),
      ...(d.backingStore ? { backingStore: d.backingStore } : {}),
    })),
    interfaces: spec.interfaces.map((i) => ({ ...i, model: i.model ?? 'virtio' })),
    guestAgent: spec.guestAgent === true,
    vmflowAgent: spec.vmflowAgent === true,
    serialConsole: spec.serialConsole !== false,
    memballoon: spec.memballoon !== false,
    features: { acpi: spec.features?.acpi !== false, apic: spec.features?.apic !== false },
    clock: spec.clock ?? 'utc',
    onPoweroff: spec.onPoweroff ?? 'destroy',
    onReboot: spec.onReboot ?? 'restart',
    onCrash: spec.onCrash ?? 'destroy',
    metadata: spec.metadata ?? {},
  };
  if (spec.uuid) out.uuid = spec.uuid;
  if (spec.title !== undefined) out.title = spec.title;
  if (spec.description !== undefined) out.description = spec.description;
  if (spec.machine) out.machine = spec.machine;
  if (spec.firmware === 'efi') out.firmware = 'efi';
  if (spec.smbiosSerial !== undefined) out.smbiosSerial = spec.smbiosSerial;
  if (spec.graphics) {
    const g = spec.graphics;
    out.graphics = {
      type: g.type,
      listen: g.listen ?? '127.0.0.1',
      autoport: g.port === undefined,
      ...(g.port !== undefined ? { port: g.port } : {}),
      ...(g.password !== undefined ? { password: g.password } : {}),
    };
  }
  return out;
}

/** A machine booted from an image: linked overlay, seed CD-ROM, console, both agents, SMBIOS serial. */
const fromImage: DomainSpec = {
  ...minimal,
  name: 'vmflow-from-image',
  uuid: UUID,
  machine: 'pc',
  disks: [
    {
      path: '/var/lib/vmflow/images/vmflow-1.qcow2',
      format: 'qcow2',
      target: 'vda',
      bus: 'virtio',
      boot: 1,
      backingStore: { path: '/var/lib/vmflow/images/debian-12.qcow2', format: 'qcow2' },
    },
    seedCdromDisk('/var/lib/vmflow/images/vmflow-seed-1.iso', 'pc'),
  ],
  guestAgent: true,
  vmflowAgent: true,
  smbiosSerial: UUID,
};

const variants: Array<[string, DomainSpec]> = [
  ['minimal', minimal],
  ['full', full],
  [
    'scsi cdrom, spice with autoport, features off, no console or balloon',
    {
      ...minimal,
      name: 'vmflow-variant',
      disks: [
        { path: '/images/a.qcow2', format: 'qcow2', target: 'sda', bus: 'scsi' },
        { path: '/images/b.iso', format: 'raw', target: 'sdb', bus: 'scsi', device: 'cdrom' },
        { path: '/images/c.img', format: 'raw', target: 'hda', bus: 'ide' },
      ],
      graphics: { type: 'spice' },
      features: { acpi: false, apic: false },
      serialConsole: false,
      memballoon: false,
    },
  ],
  [
    'vcpus and memory without maxima, bridge NIC without MAC, spice on IPv6 loopback',
    {
      ...minimal,
      name: 'vmflow-v2',
      vcpus: 3,
      memoryMiB: 1536,
      interfaces: [{ type: 'bridge', source: 'br-lan' }],
      graphics: { type: 'spice', listen: '::1', port: 1234, password: 'x' },
      guestAgent: true,
    },
  ],
  [
    'rtl8139 NIC with outbound-only QoS and a filter without parameters',
    {
      ...minimal,
      name: 'vmflow-v3',
      interfaces: [
        {
          type: 'network',
          source: 'default',
          model: 'rtl8139',
          filterref: { filter: 'clean-traffic' },
          bandwidth: { outbound: { average: 1, peak: 1, burst: 1 } },
          boot: 1,
        },
      ],
      vmflowAgent: true,
      onPoweroff: 'restart',
      onReboot: 'restart',
    },
  ],
  ['from an image (bios, pc)', fromImage],
  [
    'from an image (efi, q35)',
    {
      ...fromImage,
      name: 'vmflow-from-image-efi',
      machine: 'q35',
      firmware: 'efi',
      disks: [fromImage.disks[0]!, seedCdromDisk('/var/lib/vmflow/images/vmflow-seed-1.iso', 'q35')],
      smbiosSerial: 'serial <&> "x"',
    },
  ],
];

describe('buildDomainXml / parseDomainXml', () => {
  it.each(variants)('round-trips %s', (_, spec) => {
    expect(parseDomainXml(buildDomainXml(spec))).toEqual(expected(spec));
  });

  it.each(variants)('%s validates against libvirt domain.rng (virt-xml-validate)', (_, spec) => {
    expectSchemaValid(buildDomainXml(spec), 'domain');
  });

  it.each(variants)("%s is accepted by libvirt's own parser, and its output parses back", (_, spec) => {
    // The test driver only accepts type='test'; everything else is libvirt's real domain parser.
    const xml = buildDomainXml(spec).replace(/^<domain type="(kvm|qemu)"/, '<domain type="test"');
    const dumped = virshTestDriver([`define {0}`, `dumpxml --inactive ${spec.name}`], [xml]);
    const want = expected(spec);
    const got = parseDomainXml(dumped);
    expect(got.type).toBe('test');
    // libvirt reports memory in KiB, fills in port -1 and per-NIC details: compare what we set.
    const { graphics, ...rest } = want;
    expect(got).toMatchObject({
      ...rest,
      type: 'test',
      interfaces: want.interfaces.map((i) => expect.objectContaining(i)),
    });
    if (graphics) {
      // The password is only returned with VIR_DOMAIN_XML_SECURE.
      const { password: _password, ...visible } = graphics;
      expect(got.graphics).toMatchObject(visible);
    } else {
      expect(got.graphics).toBeUndefined();
    }
  });

  it('emits the documented structure', () => {
    const xml = buildDomainXml(full);
    expect(xml).toContain('<memory unit="MiB">4096</memory>');
    expect(xml).toContain('<currentMemory unit="MiB">2048</currentMemory>');
    expect(xml).toContain('<vcpu placement="static" current="2">8</vcpu>');
    expect(xml).toContain('<type arch="x86_64" machine="q35">hvm</type>');
    expect(xml).toMatch(/<features>\s*<acpi\/>\s*<apic\/>\s*<\/features>/);
    expect(xml).toContain('<target type="virtio" name="org.qemu.guest_agent.0"/>');
    expect(xml).toContain('<target type="virtio" name="org.vmflow.agent.0"/>');
    expect(xml).toContain(`<vmflow:machine xmlns:vmflow="${VMFLOW_METADATA_NS}">`);
    expect(xml).toContain('<listen type="address" address="127.0.0.1"/>');
    expect(xml).toMatch(/<memballoon model="virtio">\s*<stats period="10"\/>\s*<\/memballoon>/);
    expect(xml).toMatch(/<serial type="pty">\s*<target port="0"\/>/);
    expect(xml).not.toContain('<?xml');
  });

  it('emits the first-boot pieces: backing store, seed CD-ROM, SMBIOS serial, firmware', () => {
    const xml = buildDomainXml(fromImage);
    expect(xml).toMatch(
      /<backingStore type="file">\s*<format type="qcow2"\/>\s*<source file="\/var\/lib\/vmflow\/images\/debian-12.qcow2"\/>/,
    );
    expect(xml).toMatch(
      /<disk type="file" device="cdrom">[\s\S]*<target dev="hdc" bus="ide"\/>\s*<readonly\/>/,
    );
    expect(xml).toMatch(/<sysinfo type="smbios">\s*<system>\s*<entry name="serial">123e4567-/);
    expect(xml).toContain('<smbios mode="sysinfo"/>');
    expect(xml).not.toContain('firmware=');
    expect(xml).toContain('<target type="virtio" name="org.qemu.guest_agent.0"/>');
    expect(xml).toContain('<target type="virtio" name="org.vmflow.agent.0"/>');
    expect(xml).toMatch(/<console type="pty">/);
    expect(buildDomainXml({ ...fromImage, firmware: 'efi' })).toContain('<os firmware="efi">');
    expect(buildDomainXml({ ...fromImage, firmware: 'bios' })).not.toContain('firmware=');
    expect(seedCdromDisk('/s.iso', 'pc-q35-7.2')).toMatchObject({ bus: 'sata', target: 'sdz' });
    expect(seedCdromDisk('/s.iso')).toMatchObject({ bus: 'ide', target: 'hdc' });
  });

  it('refuses a backing store on a raw disk or a CD-ROM, onto itself, and a bad firmware', () => {
    const disk = fromImage.disks[0]!;
    const withDisk = (d: DiskSpec) => () => buildDomainXml({ ...minimal, disks: [d] });
    expectSpecError(withDisk({ ...disk, format: 'raw' }), 'disks[0].backingStore', /qcow2/);
    expectSpecError(
      withDisk({ ...disk, backingStore: { path: disk.path, format: 'qcow2' } }),
      'disks[0].backingStore.path',
    );
    expectSpecError(
      withDisk({ ...disk, backingStore: { path: 'rel.qcow2', format: 'qcow2' } }),
      'disks[0].backingStore.path',
    );
    expectSpecError(
      withDisk({ ...disk, backingStore: { path: '/b', format: 'vmdk' as 'raw' } }),
      'disks[0].backingStore.format',
    );
    expectSpecError(() => buildDomainXml({ ...minimal, firmware: 'uefi' as 'efi' }), 'firmware');
    expectSpecError(
      () => buildDomainXml({ ...minimal, firmware: 'efi', features: { acpi: false } }),
      'features.acpi',
      /UEFI/,
    );
    expectSpecError(() => buildDomainXml({ ...minimal, smbiosSerial: 'a\nb' }), 'smbiosSerial');
  });

  it('defaults graphics to loopback and autoport', () => {
    const parsed = parseDomainXml(buildDomainXml({ ...minimal, graphics: { type: 'vnc' } }));
    expect(parsed.graphics).toEqual({ type: 'vnc', listen: '127.0.0.1', autoport: true });
  });

  it('adds a virtio-scsi controller only when a disk is on scsi', () => {
    expect(buildDomainXml(variants[2][1])).toContain(
      '<controller type="scsi" index="0" model="virtio-scsi"/>',
    );
    expect(buildDomainXml(full)).not.toContain('<controller');
  });

  it('accepts upper-case MACs and UUIDs and writes them lower-case', () => {
    const xml = buildDomainXml({
      ...minimal,
      uuid: UUID.toUpperCase(),
      interfaces: [{ type: 'network', source: 'default', mac: '52:54:00:AA:BB:CC' }],
    });
    const parsed = parseDomainXml(xml);
    expect(parsed.uuid).toBe(UUID);
    expect(parsed.interfaces[0].mac).toBe('52:54:00:aa:bb:cc');
  });
});

describe('buildDomainXml rejects invalid specs before any XML is made', () => {
  const disk: DiskSpec = { path: '/images/a.qcow2', format: 'qcow2', target: 'vda', bus: 'virtio' };
  const nic: InterfaceSpec = { type: 'network', source: 'default' };
  const cases: Array<[string, Partial<DomainSpec> | ((s: DomainSpec) => DomainSpec), string, RegExp?]> = [
    ['name with markup', { name: 'vm<x>' }, 'name'],
    ['name with a quote', { name: "vm'x" }, 'name'],
    ['name starting with a dash', { name: '-vm' }, 'name'],
    ['name of 65 characters', { name: 'v'.repeat(65) }, 'name'],
    ['bad UUID', { uuid: 'not-a-uuid' }, 'uuid'],
    ['title with a newline', { title: 'a\nb' }, 'title', /single line/],
    ['title with a control character', { title: 'a\u0001b' }, 'title', /control/],
    ['title longer than 255', { title: 't'.repeat(256) }, 'title', /255/],
    ['empty title', { title: '' }, 'title', /empty/],
    ['description with \\r', { description: 'a\r\nb' }, 'description', /carriage/],
    ['description with NUL', { description: 'a\u0000b' }, 'description', /U\+0000/],
    ['unknown hypervisor type', { type: 'xen' as DomainSpec['type'] }, 'type'],
    ['unknown arch', { arch: 'aarch64' as 'x86_64' }, 'arch'],
    ['machine with spaces', { machine: 'pc q35' }, 'machine'],
    ['memory 0', { memoryMiB: 0 }, 'memoryMiB'],
    ['negative memory', { memoryMiB: -64 }, 'memoryMiB'],
    ['fractional memory', { memoryMiB: 64.5 }, 'memoryMiB'],
    ['memory as a string', { memoryMiB: '64' as unknown as number }, 'memoryMiB'],
    ['max memory below memory', { memoryMiB: 128, maxMemoryMiB: 64 }, 'maxMemoryMiB', /at least memoryMiB/],
    ['vcpus 0', { vcpus: 0 }, 'vcpus'],
    ['vcpus above maxVcpus', { vcpus: 4, maxVcpus: 2 }, 'vcpus', /maxVcpus/],
    ['fractional vcpus', { vcpus: 1.5 }, 'vcpus'],
    ['relative disk path', { disks: [{ ...disk, path: 'images/a.qcow2' }] }, 'disks[0].path'],
    ['disk path with ..', { disks: [{ ...disk, path: '/images/../etc/shadow' }] }, 'disks[0].path'],
    ['disk format vmdk', { disks: [{ ...disk, format: 'vmdk' as 'raw' }] }, 'disks[0].format'],
    ['virtio disk named sda', { disks: [{ ...disk, target: 'sda' }] }, 'disks[0].target', /vda/],
    ['ide disk hde', { disks: [{ ...disk, bus: 'ide', target: 'hde' }] }, 'disks[0].target'],
    ['cdrom on virtio', { disks: [{ ...disk, device: 'cdrom' }] }, 'disks[0].bus', /cdrom/],
    [
      'read-only sata disk',
      { disks: [{ ...disk, bus: 'sata', target: 'sda', readonly: true }] },
      'disks[0].readonly',
    ],
    ['duplicate disk target', { disks: [disk, { ...disk }] }, 'disks[1].target', /disks\[0\]/],
    ['boot order 0', { disks: [{ ...disk, boot: 0 }] }, 'disks[0].boot'],
    [
      'duplicate boot order',
      { disks: [{ ...disk, boot: 1 }], interfaces: [{ ...nic, boot: 1 }] },
      'interfaces[0].boot',
      /disks\[0\]/,
    ],
    ['bad MAC', { interfaces: [{ ...nic, mac: '52:54:00:zz:00:01' }] }, 'interfaces[0].mac'],
    ['multicast MAC', { interfaces: [{ ...nic, mac: '01:00:5e:00:00:01' }] }, 'interfaces[0].mac', /unicast/],
    [
      'duplicate MAC',
      {
        interfaces: [
          { ...nic, mac: '52:54:00:00:00:01' },
          { ...nic, mac: '52:54:00:00:00:01' },
        ],
      },
      'interfaces[1].mac',
    ],
    [
      'interface type direct',
      { interfaces: [{ ...nic, type: 'direct' as 'network' }] },
      'interfaces[0].type',
    ],
    ['network name with a slash', { interfaces: [{ ...nic, source: 'a/b' }] }, 'interfaces[0].source'],
    [
      'bridge name of 16 chars',
      { interfaces: [{ type: 'bridge', source: 'b'.repeat(16) }] },
      'interfaces[0].source',
      /15/,
    ],
    ['NIC model ne2k', { interfaces: [{ ...nic, model: 'ne2k_pci' as 'virtio' }] }, 'interfaces[0].model'],
    [
      'reserved tap prefix',
      { interfaces: [{ ...nic, targetDev: 'vnet7' }] },
      'interfaces[0].targetDev',
      /reserves/,
    ],
    [
      'filter name with +',
      { interfaces: [{ ...nic, filterref: { filter: 'a+b' } }] },
      'interfaces[0].filterref.filter',
    ],
    [
      'filter parameter value with a space',
      { interfaces: [{ ...nic, filterref: { filter: 'f', parameters: { IP: '10.0.0.1 x' } } }] },
      'interfaces[0].filterref.parameters.IP',
    ],
    [
      'filter parameter with no values',
      { interfaces: [{ ...nic, filterref: { filter: 'f', parameters: { IP: [] } } }] },
      'interfaces[0].filterref.parameters.IP',
    ],
    [
      'bandwidth floor on a bridge NIC',
      { interfaces: [{ type: 'bridge', source: 'br0', bandwidth: { inbound: { average: 10, floor: 5 } } }] },
      'interfaces[0].bandwidth.inbound.floor',
      /type network/,
    ],
    [
      'bandwidth peak below average',
      { interfaces: [{ ...nic, bandwidth: { inbound: { average: 10, peak: 5 } } }] },
      'interfaces[0].bandwidth.inbound.peak',
    ],
    [
      'bandwidth average 0',
      { interfaces: [{ ...nic, bandwidth: { outbound: { average: 0 } } }] },
      'interfaces[0].bandwidth.outbound.average',
    ],
    [
      'bandwidth above the schema limit',
      { interfaces: [{ ...nic, bandwidth: { outbound: { average: 2 ** 32 } } }] },
      'interfaces[0].bandwidth.outbound.average',
    ],
    ['empty bandwidth', { interfaces: [{ ...nic, bandwidth: {} }] }, 'interfaces[0].bandwidth'],
    ['graphics on 0.0.0.0', { graphics: { type: 'vnc', listen: '0.0.0.0' } }, 'graphics.listen', /wildcard/],
    ['graphics on ::', { graphics: { type: 'spice', listen: '::' } }, 'graphics.listen', /wildcard/],
    ['graphics on a host name', { graphics: { type: 'vnc', listen: 'localhost' } }, 'graphics.listen'],
    ['VNC port below 5900', { graphics: { type: 'vnc', port: 5899 } }, 'graphics.port'],
    ['VNC port 65536', { graphics: { type: 'vnc', port: 65536 } }, 'graphics.port'],
    ['VNC password longer than 8', { graphics: { type: 'vnc', password: '123456789' } }, 'graphics.password'],
    ['metadata key with a colon', { metadata: { 'a:b': 'x' } }, 'metadata.a:b'],
    ['metadata value with \\r', { metadata: { k: 'a\rb' } }, 'metadata.k'],
    ['onPoweroff preserve (QEMU refuses)', { onPoweroff: 'preserve' }, 'onPoweroff', /QEMU/],
    ['onReboot preserve (QEMU refuses)', { onReboot: 'preserve' }, 'onReboot'],
    ['poweroff restart with reboot destroy', { onPoweroff: 'restart', onReboot: 'destroy' }, 'onReboot'],
    ['clock offset variable', { clock: 'variable' as 'utc' }, 'clock'],
    ['unknown feature', { features: { hpet: true } as unknown as DomainSpec['features'] }, 'features.hpet'],
    ['guestAgent as a string', { guestAgent: 'yes' as unknown as boolean }, 'guestAgent'],
    ['disks missing', (s) => ({ ...s, disks: undefined as unknown as DiskSpec[] }), 'disks'],
  ];

  // Rows padded to the same length: jest would otherwise pass its `done` callback as `pattern`.
  it.each(cases.map(([n, c, f, p]) => [n, c, f, p ?? null] as const))('%s', (_, change, field, pattern) => {
    const spec = typeof change === 'function' ? change({ ...minimal }) : { ...minimal, ...change };
    expectSpecError(() => buildDomainXml(spec), field, pattern ?? undefined);
  });
});

describe('single-device XML', () => {
  const devices: Array<[string, DiskSpec | InterfaceSpec]> = [
    ['qcow2 disk', { path: '/images/new.qcow2', format: 'qcow2', target: 'vdc', bus: 'virtio', boot: 4 }],
    ['cdrom', { path: '/iso/x.iso', format: 'raw', target: 'sdb', bus: 'sata', device: 'cdrom' }],
    [
      'interface',
      {
        type: 'network',
        source: 'vmflow-net',
        mac: '52:54:00:01:02:03',
        filterref: { filter: 'vmflow-vm-x', parameters: { IP: '10.0.0.2' } },
        bandwidth: { inbound: { average: 100 } },
      },
    ],
  ];

  const build = (d: DiskSpec | InterfaceSpec): string =>
    'path' in d ? buildDiskDeviceXml(d) : buildInterfaceDeviceXml(d);

  it.each(devices)('%s validates inside a domain and parses back', (_, device) => {
    const xml = build(device);
    expect(xml).toMatch(/^<(disk|interface) /);
    const host = buildDomainXml(minimal).replace('<devices>', `<devices>\n${xml}`);
    expectSchemaValid(host, 'domain');
    if ('path' in device) {
      expect(parseDiskDeviceXml(xml)).toEqual({
        ...expected({ ...minimal, disks: [device] }).disks[0],
      });
    } else {
      expect(parseInterfaceDeviceXml(xml)).toEqual({ ...device, model: 'virtio' });
    }
  });

  it('names fields without a prefix', () => {
    expectSpecError(
      () => buildDiskDeviceXml({ path: 'x', format: 'raw', target: 'vda', bus: 'virtio' }),
      'path',
    );
    expectSpecError(() => buildInterfaceDeviceXml({ type: 'network', source: 'n', mac: 'nope' }), 'mac');
  });
});

describe('vmflow metadata', () => {
  it('builds the bare metadata element for virDomainSetMetadata', () => {
    const xml = buildVmflowMetadataXml({ machineId: 'm-1', operationId: '<op & 1>' });
    expect(xml).toBe(
      `<vmflow:machine xmlns:vmflow="${VMFLOW_METADATA_NS}">\n` +
        '  <vmflow:machineId>m-1</vmflow:machineId>\n' +
        '  <vmflow:operationId>&lt;op &amp; 1&gt;</vmflow:operationId>\n' +
        '</vmflow:machine>\n',
    );
    expectSpecError(() => buildVmflowMetadataXml({ '1bad': 'x' }), 'metadata.1bad');
  });

  it('reads metadata whatever prefix libvirt uses, ignoring other namespaces', () => {
    const xml = `<domain type='kvm'><name>x</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu>
      <metadata>
        <other:stuff xmlns:other="urn:x"><other:machineId>nope</other:machineId></other:stuff>
        <m:machine xmlns:m="${VMFLOW_METADATA_NS}"><m:machineId>abc</m:machineId><m:__proto__>p</m:__proto__></m:machine>
      </metadata></domain>`;
    const md = parseDomainXml(xml).metadata;
    expect(md.machineId).toBe('abc');
    expect(Object.getPrototypeOf(md)).toBe(Object.prototype);
    expect(Object.prototype.hasOwnProperty.call(md, '__proto__')).toBe(true);
  });
});

describe('parseDomainXml on libvirt output', () => {
  const libvirtXml = `<domain type='kvm' id='7'>
  <name>vmflow-live</name>
  <uuid>${UUID}</uuid>
  <memory unit='KiB'>4194304</memory>
  <currentMemory unit='KiB'>1048576</currentMemory>
  <vcpu placement='static' current='2'>4</vcpu>
  <os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/images/a.qcow2' index='1'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
      <alias name='virtio-disk0'/>
      <address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:12:34:56'/>
      <source network='default' portid='a' bridge='virbr0'/>
      <target dev='vnet3'/>
      <model type='virtio'/>
      <filterref filter='clean-traffic'>
        <parameter name='IP' value='10.0.0.9'/>
      </filterref>
      <alias name='net0'/>
    </interface>
    <interface type='user'><mac address='52:54:00:12:34:57'/><model type='e1000'/></interface>
    <graphics type='vnc' port='5903' autoport='yes' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
  </devices>
</domain>`;

  it('converts units, reads live values and ignores what vmflow does not model', () => {
    const d = parseDomainXml(libvirtXml);
    expect(d).toMatchObject({
      name: 'vmflow-live',
      id: 7,
      memoryMiB: 1024,
      maxMemoryMiB: 4096,
      vcpus: 2,
      maxVcpus: 4,
      machine: 'pc-i440fx-7.2',
      graphics: { type: 'vnc', port: 5903, autoport: true, listen: '127.0.0.1' },
      metadata: {},
      features: { acpi: false, apic: false },
    });
    expect(d.disks).toEqual([
      {
        path: '/images/a.qcow2',
        format: 'qcow2',
        target: 'vda',
        bus: 'virtio',
        device: 'disk',
        readonly: false,
      },
      { path: '', format: 'raw', target: 'sda', bus: 'sata', device: 'cdrom', readonly: true },
    ]);
    expect(d.interfaces).toEqual([
      {
        type: 'network',
        source: 'default',
        mac: '52:54:00:12:34:56',
        targetDev: 'vnet3',
        model: 'virtio',
        filterref: { filter: 'clean-traffic', parameters: { IP: '10.0.0.9' } },
      },
      { type: 'user', source: '', mac: '52:54:00:12:34:57', model: 'e1000' },
    ]);
  });

  it("reads what libvirt's QEMU driver stored for a vmflow-built domain", () => {
    // Captured from `virsh -c qemu:///embed define` + `dumpxml` of a buildDomainXml() output.
    const xml = readFileSync(join(__dirname, 'fixtures', 'qemu-driver-domain.xml'), 'utf8');
    expect(parseDomainXml(xml)).toEqual({
      name: 'e1',
      uuid: '123e4567-e89b-12d3-a456-426614174001',
      title: 'A <b>',
      description: 'x\ny',
      type: 'qemu',
      arch: 'x86_64',
      machine: 'pc-i440fx-7.2',
      memoryMiB: 128,
      maxMemoryMiB: 256,
      vcpus: 1,
      maxVcpus: 4,
      disks: [
        {
          path: '/tmp/a.qcow2',
          format: 'qcow2',
          target: 'vda',
          bus: 'virtio',
          device: 'disk',
          readonly: false,
          boot: 2,
        },
        { path: '/tmp/b.raw', format: 'raw', target: 'vdb', bus: 'virtio', device: 'disk', readonly: true },
        {
          path: '/tmp/c.iso',
          format: 'raw',
          target: 'sda',
          bus: 'sata',
          device: 'cdrom',
          readonly: true,
          boot: 1,
        },
      ],
      interfaces: [
        {
          type: 'bridge',
          source: 'br0',
          mac: '52:54:00:aa:bb:cd',
          targetDev: 'vmf-tap0',
          model: 'e1000',
          filterref: { filter: 'clean-traffic', parameters: { IP: ['10.0.0.5', '10.0.0.6'] } },
          bandwidth: { inbound: { average: 1000, peak: 2000, burst: 512 }, outbound: { average: 800 } },
          boot: 3,
        },
      ],
      graphics: { type: 'vnc', listen: '127.0.0.1', port: 5901, autoport: false },
      guestAgent: true,
      vmflowAgent: true,
      serialConsole: true,
      memballoon: true,
      features: { acpi: true, apic: true },
      clock: 'localtime',
      onPoweroff: 'destroy',
      onReboot: 'restart',
      onCrash: 'preserve',
      metadata: { machineId: 'm' },
    });
  });

  it('reads memory given in other units', () => {
    const gib = libvirtXml.replace("<memory unit='KiB'>4194304</memory>", "<memory unit='G'>4</memory>");
    expect(parseDomainXml(gib.replace(/<currentMemory[^>]*>[^<]*<\/currentMemory>/, '')).memoryMiB).toBe(
      4096,
    );
  });

  it.each([
    ['not XML', 'this is not xml', /malformed <domain> XML/],
    ['unclosed element', '<domain type="kvm"><name>x</name>', /malformed <domain> XML/],
    ['mismatched tags', '<domain><name>x</nom></domain>', /malformed <domain> XML/],
    ['another root', '<network><name>x</name></network>', /expected a <domain> document, got <network>/],
    ['a DOCTYPE', '<!DOCTYPE domain [<!ENTITY x "y">]><domain><name>&x;</name></domain>', /DOCTYPE/],
    ['an undefined entity', '<domain><name>&boom;</name></domain>', /malformed <domain> XML/],
    ['no memory', '<domain type="kvm"><name>x</name><vcpu>1</vcpu></domain>', /missing domain <memory>/],
    [
      'a non-numeric vcpu',
      '<domain type="kvm"><name>x</name><memory>1</memory><vcpu>two</vcpu></domain>',
      /not an integer/,
    ],
    [
      'an unknown unit',
      '<domain type="kvm"><name>x</name><memory unit="parsecs">1</memory><vcpu>1</vcpu></domain>',
      /unknown unit/,
    ],
  ])('throws XmlParseError for %s', (_, xml, message) => {
    expect(() => parseDomainXml(xml)).toThrow(XmlParseError);
    expect(() => parseDomainXml(xml)).toThrow(message);
  });

  it('throws XmlParseError for a non-string', () => {
    expect(() => parseDomainXml(undefined as unknown as string)).toThrow(XmlParseError);
  });
});
