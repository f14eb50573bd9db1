/**
 * The oracles themselves: they must be present (a missing tool fails, never skips) and must reject
 * broken documents of every kind, or the "validates" tests elsewhere would prove nothing.
 */
import {
  XmlParseError,
  buildDomainXml,
  buildNWFilterBindingXml,
  buildNWFilterXml,
  buildNetworkXml,
  buildPoolXml,
  buildVolumeXml,
  parseXmlRoot,
} from '../../../src/libvirt/xml';
import { schemaValidate, virshTestDriver, type SchemaKind } from './xml-oracle';

const docs: Array<[SchemaKind, string, string, string]> = [
  [
    'domain',
    buildDomainXml({ name: 'd', type: 'qemu', memoryMiB: 64, vcpus: 1, disks: [], interfaces: [] }),
    '<vcpu placement="static">1</vcpu>',
    '<vcpu placement="static">one</vcpu>',
  ],
  [
    'network',
    buildNetworkXml({ name: 'n', mode: 'isolated' }),
    '<network>',
    '<network><forward mode="sideways"/>',
  ],
  ['nwfilter', buildNWFilterXml({ name: 'f' }), 'chain="root"', 'chain="nonsense"'],
  [
    'nwfilterbinding',
    buildNWFilterBindingXml({
      portDev: 'vnet0',
      mac: '52:54:00:00:00:01',
      ownerName: 'd',
      ownerUUID: '123e4567-e89b-12d3-a456-426614174000',
      filter: 'f',
    }),
    'address="52:54:00:00:00:01"',
    'address="01:00:00:00:00:01"',
  ],
  [
    'storagevol',
    buildVolumeXml({ name: 'v', capacityBytes: 1, format: 'raw' }),
    '>1</capacity>',
    '>-1</capacity>',
  ],
  ['storagepool', buildPoolXml({ name: 'p', type: 'dir', path: '/p' }), '<path>/p</path>', '<path>p</path>'],
];

describe('virt-xml-validate oracle', () => {
  it.each(docs)('accepts a generated %s and rejects a broken one', (kind, xml, good, broken) => {
    expect(xml).toContain(good);
    expect(schemaValidate(xml, kind)).toEqual({ status: 0, output: expect.stringContaining('validates') });
    const res = schemaValidate(xml.replace(good, broken), kind);
    expect(res.status).not.toBe(0);
    expect(res.output).toMatch(/fails to validate/);
  });

  it('fails with an explanation, not a skip, when the tool is missing', () => {
    const path = process.env.PATH;
    process.env.PATH = '/nonexistent';
    try {
      expect(() => schemaValidate('<domain/>', 'domain')).toThrow(
        /virt-xml-validate is not installed.*apt-get install/,
      );
      expect(() => virshTestDriver(['list'])).toThrow(/virsh is not installed/);
    } finally {
      process.env.PATH = path;
    }
  });
});

describe("libvirt's test driver oracle", () => {
  it('reports libvirt errors', () => {
    expect(() =>
      virshTestDriver(
        ['net-define {0}'],
        ['<network><name>x</name><ip address="fd00::1" prefix="64"/></network>'],
      ),
    ).toThrow(/no family specified for non-IPv4 address/);
  });
});

describe('parseXmlRoot', () => {
  it('accepts an XML declaration and comments, and returns the root', () => {
    const root = parseXmlRoot('<?xml version="1.0" encoding="UTF-8"?>\n<!-- c --><pool type="dir"/>', 'pool');
    expect(root.getAttribute('type')).toBe('dir');
  });

  it('refuses DOCTYPEs but not the word DOCTYPE in text', () => {
    expect(() => parseXmlRoot('<!DOCTYPE pool><pool/>', 'pool')).toThrow(XmlParseError);
    expect(() => parseXmlRoot('<?xml version="1.0"?>\n<!doctype pool SYSTEM "x"><pool/>', 'pool')).toThrow(
      /DOCTYPE/,
    );
    expect(parseXmlRoot('<pool><name>&lt;!DOCTYPE x&gt;</name></pool>', 'pool').textContent).toBe(
      '<!DOCTYPE x>',
    );
  });

  it.each([
    ['empty input', ''],
    ['text only', 'hello'],
    ['two roots', '<pool/><pool/>'],
    ['a bad attribute', '<pool type=dir/>'],
    ['a duplicate attribute', '<pool a="1" a="2"/>'],
    ['an unbound prefix', '<x:pool/>'],
  ])('refuses %s with XmlParseError', (_, xml) => {
    expect(() => parseXmlRoot(xml, 'pool')).toThrow(XmlParseError);
  });
});
