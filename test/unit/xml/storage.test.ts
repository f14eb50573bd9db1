import {
  XmlParseError,
  buildPoolXml,
  buildVolumeXml,
  parsePoolXml,
  parseVolumeXml,
  type PoolSpec,
  type VolumeSpec,
} from '../../../src/libvirt/xml';
import { expectSchemaValid, expectSpecError, virshTestDriver } from './xml-oracle';

const GiB = 1024 ** 3;

const volumes: Array<[string, VolumeSpec]> = [
  ['thin qcow2', { name: 'vmflow-1.qcow2', capacityBytes: 20 * GiB, format: 'qcow2' }],
  ['preallocated raw', { name: 'data.img', capacityBytes: GiB, allocationBytes: GiB, format: 'raw' }],
  ['sparse qcow2 with allocation 0', { name: 'zero', capacityBytes: 1, allocationBytes: 0, format: 'qcow2' }],
  [
    'qcow2 linked clone of a qcow2 template',
    {
      name: 'vmflow-2.qcow2',
      capacityBytes: 10 * GiB,
      format: 'qcow2',
      backingStore: { path: '/var/lib/vmflow/templates/base.qcow2', format: 'qcow2' },
    },
  ],
  [
    'qcow2 over a raw base',
    {
      name: 'vmflow-3.qcow2',
      capacityBytes: 50 * GiB,
      format: 'qcow2',
      backingStore: { path: '/b/raw.img', format: 'raw' },
    },
  ],
];

describe('buildVolumeXml / parseVolumeXml', () => {
  it.each(volumes)('round-trips %s', (_, spec) => {
    expect(parseVolumeXml(buildVolumeXml(spec))).toEqual(spec);
  });

  it.each(volumes)('%s validates against libvirt storagevol.rng', (_, spec) => {
    expectSchemaValid(buildVolumeXml(spec), 'storagevol');
  });

  it.each(volumes)("%s is accepted by libvirt's own parser, and its output parses back", (_, spec) => {
    const dumped = virshTestDriver(
      [`vol-create default-pool {0}`, `vol-dumpxml --pool default-pool ${spec.name}`],
      [buildVolumeXml(spec)],
    );
    const parsed = parseVolumeXml(dumped);
    const { allocationBytes: _a, ...rest } = spec;
    expect(parsed).toMatchObject({
      ...rest,
      path: `/default-pool/${spec.name}`,
      key: `/default-pool/${spec.name}`,
    });
  });

  it('accepts capacities up to 1 PiB (the test driver pool is smaller)', () => {
    expect(
      parseVolumeXml(buildVolumeXml({ name: 'big', capacityBytes: 2 ** 50, format: 'raw' })).capacityBytes,
    ).toBe(2 ** 50);
  });

  it('writes sizes in bytes so nothing is rounded', () => {
    expect(buildVolumeXml({ name: 'v', capacityBytes: 12345, format: 'raw' })).toContain(
      '<capacity unit="bytes">12345</capacity>',
    );
  });

  it('reads sizes in any libvirt unit', () => {
    const xml = `<volume><name>v</name><capacity unit='G'>2</capacity><allocation>512</allocation>
      <target><path>/p/v</path><format type='qcow2'/></target></volume>`;
    expect(parseVolumeXml(xml)).toEqual({
      name: 'v',
      capacityBytes: 2 * GiB,
      allocationBytes: 512,
      path: '/p/v',
      format: 'qcow2',
    });
  });

  const bad: Array<[string, Partial<VolumeSpec>, string]> = [
    ['name with a slash', { name: '../etc/passwd' }, 'name'],
    ['name with markup', { name: 'v<1>' }, 'name'],
    ['capacity 0', { capacityBytes: 0 }, 'capacityBytes'],
    ['negative capacity', { capacityBytes: -1 }, 'capacityBytes'],
    ['fractional capacity', { capacityBytes: 1.5 }, 'capacityBytes'],
    ['capacity beyond 1 PiB', { capacityBytes: 2 ** 50 + 1 }, 'capacityBytes'],
    ['allocation above capacity', { capacityBytes: 10, allocationBytes: 11 }, 'allocationBytes'],
    ['negative allocation', { allocationBytes: -1 }, 'allocationBytes'],
    ['unknown format', { format: 'vmdk' as 'raw' }, 'format'],
    [
      'raw with a backing store',
      { format: 'raw', backingStore: { path: '/b.qcow2', format: 'qcow2' } },
      'backingStore',
    ],
    ['relative backing path', { backingStore: { path: 'b.qcow2', format: 'qcow2' } }, 'backingStore.path'],
    [
      'backing format iso',
      { backingStore: { path: '/b.iso', format: 'iso' as 'raw' } },
      'backingStore.format',
    ],
  ];
  it.each(bad)('rejects %s', (_, change, field) =>
    expectSpecError(
      () => buildVolumeXml({ name: 'v', capacityBytes: GiB, format: 'qcow2', ...change }),
      field,
    ),
  );

  it.each([
    ['malformed', '<volume><name>v</volume>'],
    ['no capacity', '<volume><name>v</name></volume>'],
    ['wrong root', '<pool/>'],
  ])('throws XmlParseError for %s XML', (_, xml) => expect(() => parseVolumeXml(xml)).toThrow(XmlParseError));
});

describe('buildPoolXml / parsePoolXml', () => {
  const pools: Array<[string, PoolSpec]> = [
    [
      'with a UUID',
      {
        name: 'vmflow',
        uuid: '123e4567-e89b-12d3-a456-426614174000',
        type: 'dir',
        path: '/var/lib/vmflow/images',
      },
    ],
    ['without a UUID', { name: 'vmflow-test', type: 'dir', path: '/srv/pool' }],
  ];

  it.each(pools)('round-trips, validates and is accepted by libvirt (%s)', (_, spec) => {
    const xml = buildPoolXml(spec);
    expect(parsePoolXml(xml)).toEqual(spec);
    expectSchemaValid(xml, 'storagepool');
    const dumped = virshTestDriver([`pool-define {0}`, `pool-dumpxml ${spec.name}`], [xml]);
    expect(parsePoolXml(dumped)).toMatchObject({ ...spec, capacityBytes: expect.any(Number) });
  });

  it.each([
    ['name', { name: 'a b' }],
    ['uuid', { uuid: 'u' }],
    ['type', { type: 'logical' as 'dir' }],
    ['path', { path: 'relative' }],
    ['path', { path: '/' }],
    ['path', { path: '/a/../b' }],
  ])('rejects a bad %s', (field, change) =>
    expectSpecError(() => buildPoolXml({ name: 'p', type: 'dir', path: '/p', ...change }), field),
  );

  it('throws XmlParseError for malformed pool XML', () => {
    expect(() => parsePoolXml('<pool type="dir"><name>p</name>')).toThrow(XmlParseError);
    expect(() => parsePoolXml('<pool><name>p</name></pool>')).toThrow(/missing pool type/);
  });
});
