import {
  XmlSpecError,
  assertAbsolutePath,
  assertHostname,
  assertInteger,
  assertInterfaceName,
  assertLibvirtName,
  assertMac,
  assertNwfilterName,
  assertPort,
  assertText,
  assertUuid,
  assertVlanTag,
  cidrContains,
  cidrOverlaps,
  formatCidr,
  formatIp,
  netmaskToPrefix,
  parseCidr,
  parseIPv4,
  parseIPv6,
  prefixToNetmask,
} from '../../../src/libvirt/xml';
import { expectSpecError } from './xml-oracle';

describe('XmlSpecError', () => {
  it('carries a name, the field and a message naming the field', () => {
    const err = new XmlSpecError('interfaces[0].mac', 'must be a MAC address');
    expect(err).toBeInstanceOf(Error);
    expect(err).toBeInstanceOf(XmlSpecError);
    expect(err.name).toBe('XmlSpecError');
    expect(err.field).toBe('interfaces[0].mac');
    expect(err.reason).toBe('must be a MAC address');
    expect(err.message).toBe('interfaces[0].mac: must be a MAC address');
  });
});

describe('IPv4 and IPv6 parsing', () => {
  it.each([
    ['0.0.0.0', 0n],
    ['10.0.0.1', 0x0a000001n],
    ['255.255.255.255', 0xffffffffn],
  ])('parses %s', (text, value) => expect(parseIPv4(text)).toBe(value));

  it.each([
    '256.0.0.1',
    '1.2.3',
    '1.2.3.4.5',
    '010.0.0.1',
    '1.2.3.-4',
    ' 1.2.3.4',
    '1.2.3.4 ',
    'a.b.c.d',
    '',
  ])('rejects IPv4 %j', (text) => expect(parseIPv4(text)).toBeNull());

  it.each([
    ['::', 0n],
    ['::1', 1n],
    ['fd00::1', (0xfd00n << 112n) | 1n],
    ['2001:db8:0:0:0:0:2:1', (0x20010db8n << 96n) | (2n << 16n) | 1n],
    ['::ffff:192.0.2.1', (0xffffn << 32n) | 0xc0000201n],
    ['1:2:3:4:5:6:7::', 0x0001000200030004000500060007n << 16n],
  ])('parses %s', (text, value) => expect(parseIPv6(text)).toBe(value));

  it.each([
    '1::2::3',
    ':1',
    '1:2:3:4:5:6:7:8:9',
    '12345::',
    'fe80::1%eth0',
    'g::1',
    '1.2.3.4',
    '::1.2.3',
    '',
  ])('rejects IPv6 %j', (text) => expect(parseIPv6(text)).toBeNull());

  it('formats addresses back, compressing the longest zero run', () => {
    expect(formatIp({ family: 4, value: 0xc0a80101n })).toBe('192.168.1.1');
    expect(formatIp({ family: 6, value: parseIPv6('2001:db8:0:0:1:0:0:1') ?? 0n })).toBe('2001:db8::1:0:0:1');
    expect(formatIp({ family: 6, value: 0n })).toBe('::');
  });

  it('converts between prefixes and netmasks', () => {
    expect(prefixToNetmask(24)).toBe('255.255.255.0');
    expect(prefixToNetmask(0)).toBe('0.0.0.0');
    expect(prefixToNetmask(32)).toBe('255.255.255.255');
    expect(netmaskToPrefix('255.255.240.0')).toBe(20);
    expect(netmaskToPrefix('255.0.255.0')).toBeNull();
  });
});

describe('CIDR helpers', () => {
  it('parses blocks with host bits set and computes their range', () => {
    const c = parseCidr('192.168.10.7/24');
    expect(c).toMatchObject({ family: 4, prefix: 24 });
    expect(formatCidr(c)).toBe('192.168.10.0/24');
    expect(formatCidr(parseCidr('fd00:1:2::9/48'))).toBe('fd00:1:2::/48');
  });

  it.each(['10.0.0.0', '10.0.0.0/33', 'fd00::/129', 'x/24', '10.0.0.0/-1', '10.0.0.0/08'])(
    'rejects %j',
    (text) => expectSpecError(() => parseCidr(text, 'subnet'), 'subnet'),
  );

  it('answers containment', () => {
    expect(cidrContains('10.1.0.0/16', '10.1.255.255')).toBe(true);
    expect(cidrContains('10.1.0.0/16', '10.2.0.0')).toBe(false);
    expect(cidrContains('10.1.0.0/16', 'fd00::1')).toBe(false);
    expect(cidrContains('fd00::/64', 'fd00::ffff')).toBe(true);
    expect(cidrContains('0.0.0.0/0', '8.8.8.8')).toBe(true);
    expect(cidrContains('10.0.0.0/8', 'not-an-ip')).toBe(false);
  });

  it('answers overlaps, including nesting and adjacency', () => {
    expect(cidrOverlaps('10.0.0.0/24', '10.0.0.128/25')).toBe(true);
    expect(cidrOverlaps('10.0.0.0/8', '10.200.0.0/16')).toBe(true);
    expect(cidrOverlaps('10.0.0.0/25', '10.0.0.128/25')).toBe(false);
    expect(cidrOverlaps('192.168.1.1/24', '192.168.1.254/24')).toBe(true);
    expect(cidrOverlaps('10.0.0.0/8', 'fd00::/8')).toBe(false);
    expect(cidrOverlaps(parseCidr('fd00::/64'), 'fd00::1/128')).toBe(true);
  });
});

describe('shared validators', () => {
  it.each([0, -1, 1.5, NaN, Infinity, '2', null, undefined, 2 ** 53])('integers: rejects %p', (v) =>
    expectSpecError(() => assertInteger(v, 'n', { min: 1 }), 'n'),
  );

  it('integers: checks ranges', () => {
    expect(assertInteger(5, 'n', { min: 1, max: 5 })).toBe(5);
    expectSpecError(() => assertInteger(6, 'n', { min: 1, max: 5 }), 'n', /between 1 and 5/);
  });

  it.each([0, 65536, -1, 80.5, '80'])('ports: rejects %p', (v) =>
    expectSpecError(() => assertPort(v, 'port'), 'port'),
  );
  it('ports: accepts 1 and 65535', () => {
    expect(assertPort(1, 'p')).toBe(1);
    expect(assertPort(65535, 'p')).toBe(65535);
  });

  it.each([0, 4095, -1, 1.5])('VLAN: rejects %p', (v) =>
    expectSpecError(() => assertVlanTag(v, 'vlanTag'), 'vlanTag'),
  );
  it('VLAN: accepts 1 and 4094', () =>
    expect([assertVlanTag(1, 'v'), assertVlanTag(4094, 'v')]).toEqual([1, 4094]));

  it.each([
    '52:54:00:12:34',
    '52-54-00-12-34-56',
    '52:54:00:12:34:5g',
    '01:00:5e:00:00:01',
    'ff:ff:ff:ff:ff:ff',
    '00:00:00:00:00:00',
    5,
  ])('MAC: rejects %p', (v) => expectSpecError(() => assertMac(v, 'mac'), 'mac'));
  it('MAC: multicast allowed only when asked', () => {
    expect(assertMac('ff:ff:ff:ff:ff:ff', 'mac', { anyKind: true })).toBe('ff:ff:ff:ff:ff:ff');
    expect(assertMac('52:54:00:AB:cd:01', 'mac')).toBe('52:54:00:AB:cd:01');
  });

  it.each([
    '123e4567-e89b-12d3-a456-42661417400',
    '123e4567e89b12d3a456426614174000',
    'zzzzzzzz-e89b-12d3-a456-426614174000',
    '',
  ])('UUID: rejects %j', (v) => expectSpecError(() => assertUuid(v, 'uuid'), 'uuid'));

  it.each(['', '-vm', '.vm', 'a/b', 'a b', 'a<b', 'x'.repeat(65), 'vm\n', 'vm&', "vm'", 'vm"', 'é'])(
    'libvirt names: rejects %j',
    (v) => expectSpecError(() => assertLibvirtName(v, 'name'), 'name'),
  );
  it('libvirt names: accepts vmflow names', () => {
    for (const n of [
      'vmflow-123e4567-e89b-12d3-a456-426614174000',
      'a',
      'A_b.c+d-1',
      '9lives',
      'x'.repeat(64),
    ]) {
      expect(assertLibvirtName(n, 'name')).toBe(n);
    }
  });

  it.each(['9abc', 'a+b', 'a:b', '-a', '', 'a b'])('nwfilter names: rejects %j (NCName rule)', (v) =>
    expectSpecError(() => assertNwfilterName(v, 'filter'), 'filter'),
  );

  it.each(['', 'x'.repeat(16), 'a/b', 'a b', '-br', '.', '..', 'br:0'])('interface names: rejects %j', (v) =>
    expectSpecError(() => assertInterfaceName(v, 'bridgeName'), 'bridgeName'),
  );

  it.each(['1host', 'a_b', 'a..b', 'a,b', 'a\nb', '-a', 'a-', 'x'.repeat(64)])(
    'host names: rejects %j',
    (v) => expectSpecError(() => assertHostname(v, 'name'), 'name'),
  );

  it.each(['relative/path', '/a/../b', '/a/./b', '/a//b', '/a\nb', '/a\u0000b'])('paths: rejects %j', (v) =>
    expectSpecError(() => assertAbsolutePath(v, 'path'), 'path'),
  );

  describe('text', () => {
    const single = { maxLength: 20 };
    it.each([
      ['', /empty/],
      ['line\nbreak', /single line/],
      ['tab\there', /tab/],
      ['cr\rhere', /carriage/],
      ['bell\u0007', /U\+0007/],
      ['del\u007f', /U\+007F/],
      ['c1\u0085', /U\+0085/],
      ['nonchar\uffff', /U\+FFFF/],
      ['lone\ud800', /U\+D800/],
      ['ls\u2028', /single line/],
      ['x'.repeat(21), /at most 20/],
    ])('rejects %j', (v, msg) => expectSpecError(() => assertText(v, 'title', single), 'title', msg));

    it('accepts markup-looking text and astral characters', () => {
      const t = `<a href="x">&amp;</a> ]]> <!-- 😀`;
      expect(assertText(t, 'title', { maxLength: 100 })).toBe(t);
    });

    it('multi-line text keeps newlines and tabs but still refuses \\r', () => {
      expect(assertText('a\n\tb', 'd', { maxLength: 10, multiLine: true })).toBe('a\n\tb');
      expectSpecError(() => assertText('a\r\nb', 'd', { maxLength: 10, multiLine: true }), 'd', /carriage/);
    });
  });
});
