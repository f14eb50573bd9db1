/** Windows autounattend.xml, parsed back with the XML library; and the seed ISO checked with isoinfo. */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DOMParser, type Element } from '@xmldom/xmldom';
import { buildCloudInitSeed } from '../../../src/guests/cloud-init';
import { sha512Crypt } from '../../../src/guests/crypt';
import { withSeedIso } from '../../../src/guests/iso';
import { buildUnattendXml, computerName, UNATTEND_NS } from '../../../src/guests/unattend';

function parse(xml: string): Element {
  const doc = new DOMParser({
    onError: (level, msg) => {
      throw new Error(`${level}: ${msg}`);
    },
  }).parseFromString(xml, 'text/xml');
  return doc.documentElement!;
}
const all = (root: Element, name: string): Element[] =>
  Array.from(root.getElementsByTagNameNS(UNATTEND_NS, name));
const text = (root: Element, name: string): string[] => all(root, name).map((e) => e.textContent ?? '');
const fromUtf16 = (b64: string) => Buffer.from(b64, 'base64').toString('utf16le');

describe('autounattend.xml', () => {
  const xml = buildUnattendXml({
    hostname: 'build-agent-7-windows',
    username: "Alice & O'Neil",
    password: 'p@ss "word" <x>',
    productKey: 'ABCDE-12345-ABCDE-12345-ABCDE',
    locale: 'de-DE',
  });
  const root = parse(xml);

  it('is an unattend document with the three passes', () => {
    expect(xml.startsWith('<?xml version="1.0" encoding="utf-8"?>\n')).toBe(true);
    expect(root.localName).toBe('unattend');
    expect(root.namespaceURI).toBe(UNATTEND_NS);
    expect(all(root, 'settings').map((s) => s.getAttribute('pass'))).toEqual([
      'windowsPE',
      'specialize',
      'oobeSystem',
    ]);
    for (const c of all(root, 'component')) {
      expect(c.getAttribute('processorArchitecture')).toBe('amd64');
      expect(c.getAttribute('publicKeyToken')).toBe('31bf3856ad364e35');
    }
  });
  it('sets the computer name, product key, locale and skips OOBE', () => {
    expect(text(root, 'ComputerName')).toEqual(['BUILD-AGENT-7-W']);
    expect(text(root, 'Key')).toEqual(['ABCDE-12345-ABCDE-12345-ABCDE']);
    expect(text(root, 'ProductKey').map((t) => t.trim())).toContain('ABCDE-12345-ABCDE-12345-ABCDE');
    expect(new Set(text(root, 'SystemLocale'))).toEqual(new Set(['de-DE']));
    expect(text(root, 'AcceptEula')).toEqual(['true']);
    for (const page of ['HideEULAPage', 'HideOnlineAccountScreens', 'SkipMachineOOBE', 'SkipUserOOBE'])
      expect(text(root, page)).toEqual(['true']);
  });
  it('creates the user as an administrator, with the password obfuscated, never in clear', () => {
    expect(xml).not.toContain('p@ss');
    const account = all(root, 'LocalAccount')[0]!;
    expect(account.getAttributeNS('http://schemas.microsoft.com/WMIConfig/2002/State', 'action')).toBe('add');
    expect(text(account, 'Name')).toEqual(["Alice & O'Neil"]);
    expect(text(account, 'Group')).toEqual(['Administrators']);
    expect(text(account, 'PlainText')).toEqual(['false']);
    expect(fromUtf16(text(account, 'Value')[0]!)).toBe('p@ss "word" <x>Password');
    const admin = all(root, 'AdministratorPassword')[0]!;
    expect(fromUtf16(text(admin, 'Value')[0]!)).toBe('p@ss "word" <x>AdministratorPassword');
  });
  it('for Administrator (or no user) sets only the built-in account', () => {
    const r = parse(buildUnattendXml({ hostname: 'w', username: 'Administrator', password: 'pw' }));
    expect(all(r, 'LocalAccount')).toEqual([]);
    expect(all(r, 'AdministratorPassword')).toHaveLength(1);
    expect(all(r, 'ProductKey')).toEqual([]);
  });
  it.each([
    ['web-1', 'WEB-1'],
    ['a-very-long-host-name', 'A-VERY-LONG-HOS'],
    ['abcdefghijklmn-x', 'ABCDEFGHIJKLMN'],
    ['12345', 'VM-12345'],
  ])('computer name of %j is %j', (h, want) => {
    expect(computerName(h)).toBe(want);
  });
  it('refuses bad input, naming the field', () => {
    expect(() => buildUnattendXml({ hostname: 'w', username: 'a/b' })).toThrow(
      expect.objectContaining({ field: 'username' }),
    );
    expect(() => buildUnattendXml({ hostname: 'w', productKey: 'nope' })).toThrow(
      expect.objectContaining({ field: 'productKey' }),
    );
    expect(() => buildUnattendXml({ hostname: 'w', locale: '"><x' })).toThrow(
      expect.objectContaining({ field: 'locale' }),
    );
  });
});

describe('seed ISO (genisoimage)', () => {
  const isoinfo = (args: string[]) => execFileSync('isoinfo', args).toString();
  const seed = buildCloudInitSeed({
    machineId: 'm-1',
    hostname: 'web-1',
    username: 'alice',
    passwordHash: sha512Crypt('pw'),
    sshKeys: [],
    mac: '52:54:00:00:00:01',
  });

  it('labels the volume cidata and keeps the long lowercase names (Joliet and Rock Ridge)', async () => {
    const tmpRoot = mkdtempSync(join(tmpdir(), 'vmflow-iso-test-'));
    try {
      let seen = '';
      await withSeedIso(
        seed,
        'cidata',
        async (iso) => {
          seen = iso.path;
          expect(statSync(iso.path).mode & 0o777).toBe(0o600);
          expect(statSync(join(iso.path, '..')).mode & 0o777).toBe(0o700);
          expect(iso.size % 2048).toBe(0);
          expect(isoinfo(['-d', '-i', iso.path])).toMatch(/^Volume id: cidata$/m);
          const d = isoinfo(['-d', '-i', iso.path]);
          expect(d).toMatch(/Joliet/);
          expect(d).toMatch(/Rock Ridge/);
          for (const [name, bytes] of seed) {
            expect(isoinfo(['-J', '-i', iso.path, '-x', `/${name}`])).toBe(bytes.toString());
            expect(isoinfo(['-R', '-i', iso.path, '-x', `/${name}`])).toBe(bytes.toString());
          }
        },
        { tmpRoot },
      );
      expect(existsSync(seen)).toBe(false);
      expect(readdirSync(tmpRoot)).toEqual([]);
    } finally {
      rmSync(tmpRoot, { recursive: true, force: true });
    }
  });
  it('removes everything when the callback throws, and refuses unsafe names and labels', async () => {
    const tmpRoot = mkdtempSync(join(tmpdir(), 'vmflow-iso-test-'));
    try {
      await expect(
        withSeedIso(seed, 'cidata', () => Promise.reject(new Error('boom')), { tmpRoot }),
      ).rejects.toThrow('boom');
      expect(readdirSync(tmpRoot)).toEqual([]);
      await expect(
        withSeedIso(new Map([['../x', Buffer.from('')]]), 'cidata', async () => 1),
      ).rejects.toThrow(/plain file name/);
      await expect(withSeedIso(seed, 'bad label', async () => 1)).rejects.toThrow(/volume label/);
    } finally {
      rmSync(tmpRoot, { recursive: true, force: true });
    }
  });
});
