/**
 * User text (titles, descriptions, metadata values, DHCP host names, filter comments) must never
 * become markup: for each hostile string the XML parses, validates, the text comes back
 * byte-for-byte, and the document has exactly the elements a harmless value would give.
 */
import { DOMParser } from '@xmldom/xmldom';
import {
  buildDomainXml,
  buildNWFilterXml,
  buildNetworkXml,
  buildPoolXml,
  buildVolumeXml,
  buildVmflowMetadataXml,
  parseDomainXml,
  parseNWFilterXml,
  type DomainSpec,
  type NetworkSpec,
} from '../../../src/libvirt/xml';
import { expectSchemaValid, expectSpecError, virshTestDriver } from './xml-oracle';

/** Single-line hostile strings. */
const hostileLines = [
  `<>&'"`,
  ']]>',
  '<!--',
  '-->',
  '<!-- x -->',
  '<!DOCTYPE domain [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>&xxe;',
  '</title><name>evil</name><title>',
  '"/><devices><disk type="block"><source dev="/dev/sda"/></disk></devices><x a="',
  "' onload='x",
  '&amp; &lt; &#x41; &#65; &nbsp;',
  '<![CDATA[ <b> ]]>',
  '<?xml version="1.0"?><?pi x?>',
  '  leading and trailing spaces  ',
  'ünïcödé — 日本語 — 😀 — \u200b zero-width',
  '$(rm -rf /) `id` ; | && $IP',
];
/** Multi-line hostile strings (descriptions and metadata values allow \n and \t). */
const hostileBlocks = [
  ...hostileLines,
  'line 1\nline 2\n\n\tindented\n',
  '\n<![CDATA[\n]]>\n<!--\n-->\n',
  '\n',
];

const baseDomain: DomainSpec = {
  name: 'vmflow-esc',
  type: 'qemu',
  memoryMiB: 64,
  vcpus: 1,
  disks: [],
  interfaces: [],
};

/** Element names of a document in order: a hostile value must not add or remove any. */
function elementNames(xml: string): string[] {
  const doc = new DOMParser().parseFromString(xml, 'text/xml');
  const names: string[] = [];
  const walk = (node: { childNodes: ArrayLike<unknown> }): void => {
    for (const n of Array.from(node.childNodes) as Array<{
      nodeType: number;
      nodeName: string;
      childNodes: ArrayLike<unknown>;
    }>) {
      if (n.nodeType === 1) {
        names.push(n.nodeName);
        walk(n);
      }
      expect([1, 3]).toContain(n.nodeType); // elements and text only: no comments, CDATA or PIs
    }
  };
  walk(doc);
  return names;
}

describe('domain text fields', () => {
  const harmless = elementNames(
    buildDomainXml({
      ...baseDomain,
      title: 'x',
      description: 'x',
      metadata: { machineId: 'x', operationId: 'x' },
    }),
  );

  it.each(hostileLines.map((s) => [s] as const))('title %j round-trips and injects nothing', (title) => {
    const xml = buildDomainXml({
      ...baseDomain,
      title,
      description: 'x',
      metadata: { machineId: 'x', operationId: 'x' },
    });
    expect(parseDomainXml(xml).title).toBe(title);
    expect(elementNames(xml)).toEqual(harmless);
    expectSchemaValid(xml, 'domain');
  });

  it.each(hostileBlocks.map((s) => [s] as const))(
    'description and metadata %j round-trip and inject nothing',
    (text) => {
      const xml = buildDomainXml({
        ...baseDomain,
        title: 'x',
        description: text,
        metadata: { machineId: text, operationId: 'x' },
      });
      const parsed = parseDomainXml(xml);
      expect(parsed.description).toBe(text);
      expect(parsed.metadata).toEqual({ machineId: text, operationId: 'x' });
      expect(elementNames(xml)).toEqual(harmless);
      expectSchemaValid(xml, 'domain');
    },
  );

  it("survive libvirt's own parser and formatter byte-for-byte", () => {
    const title = hostileLines.slice(0, 11).join(' ').slice(0, 255); // ASCII only: no pair split
    const description = hostileBlocks.join('\n');
    const metadata = { machineId: hostileLines[6], operationId: description };
    const xml = buildDomainXml({ ...baseDomain, type: 'qemu', title, description, metadata }).replace(
      '<domain type="qemu"',
      '<domain type="test"',
    );
    const dumped = virshTestDriver(['define {0}', `dumpxml --inactive ${baseDomain.name}`], [xml]);
    const back = parseDomainXml(dumped);
    expect(back.title).toBe(title);
    expect(back.description).toBe(description);
    expect(back.metadata).toEqual(metadata);
  });

  it('standalone metadata element escapes values too', () => {
    const xml = buildVmflowMetadataXml({ operationId: hostileLines[5] });
    expect(elementNames(xml)).toEqual(['vmflow:machine', 'vmflow:operationId']);
  });
});

describe('filter comments', () => {
  it.each(hostileLines.map((s) => [s] as const))('%j round-trips and injects nothing', (comment) => {
    const spec = {
      name: 'esc',
      rules: [{ action: 'accept', direction: 'in', protocol: 'tcp', dstPortStart: 22, comment } as const],
    };
    const xml = buildNWFilterXml(spec);
    expect(parseNWFilterXml(xml).rules[0].comment).toBe(comment);
    expect(elementNames(xml)).toEqual(['filter', 'rule', 'tcp']);
    expectSchemaValid(xml, 'nwfilter');
  });
});

describe('DHCP host names are host names, not free text', () => {
  // dnsmasq reads libvirt's host file line by line, comma-separated: free text would inject options.
  const net = (name: string): NetworkSpec => ({
    name: 'vmflow-esc',
    mode: 'nat',
    ip: {
      address: '10.9.0.1',
      prefix: 24,
      dhcp: { start: '10.9.0.10', end: '10.9.0.20', hosts: [{ name, ip: '10.9.0.5' }] },
    },
  });
  it.each([...hostileLines, 'web,set:evil', 'web\ndhcp-script=/tmp/x'].map((s) => [s] as const))(
    '%j is rejected',
    (name) => expectSpecError(() => buildNetworkXml(net(name)), 'ip.dhcp.hosts[0].name'),
  );
  it('a proper host name goes through', () => {
    expectSchemaValid(buildNetworkXml(net('web-01.lab')), 'network');
  });
});

describe('names are never free text', () => {
  const bad = [`<>&'"`, ']]>', '<!--', '<!DOCTYPE x>', 'a b', 'a/b', 'a\nb', '', '../x'];
  it.each(bad.map((s) => [s] as const))('%j is rejected everywhere a name goes', (name) => {
    expectSpecError(() => buildDomainXml({ ...baseDomain, name }), 'name');
    expectSpecError(() => buildNetworkXml({ name, mode: 'isolated' }), 'name');
    expectSpecError(() => buildNWFilterXml({ name }), 'name');
    expectSpecError(() => buildVolumeXml({ name, capacityBytes: 1, format: 'raw' }), 'name');
    expectSpecError(() => buildPoolXml({ name, type: 'dir', path: '/p' }), 'name');
    expectSpecError(
      () => buildDomainXml({ ...baseDomain, interfaces: [{ type: 'network', source: name }] }),
      'interfaces[0].source',
    );
    expectSpecError(() => buildDomainXml({ ...baseDomain, metadata: { [name]: 'v' } }), `metadata.${name}`);
  });
});
