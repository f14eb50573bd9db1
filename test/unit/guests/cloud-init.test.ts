/** NoCloud seed content, parsed back with the YAML library; and SHA-512 crypt against its specification and openssl. */
import { execFileSync } from 'node:child_process';
import { parse } from 'yaml';
import { buildCloudInitSeed, type CloudInitSeedSpec } from '../../../src/guests/cloud-init';
import { sha512Crypt } from '../../../src/guests/crypt';

const ED25519 =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmjUfuPi7ClUicdZr6w6EHzr/AImLmzei009gDdNX2/ alice@laptop';
const spec: CloudInitSeedSpec = {
  machineId: '0b7b1c36-4a0c-4f7e-9a55-6a4d3c1f0e11',
  hostname: 'web-1',
  username: 'alice',
  passwordHash: sha512Crypt('hunter2-correct', 'fixedsalt'),
  sshKeys: [ED25519],
  mac: '52:54:00:AB:cd:01',
};

function files(s: CloudInitSeedSpec): Record<string, string> {
  return Object.fromEntries([...buildCloudInitSeed(s)].map(([k, v]) => [k, v.toString('utf8')]));
}

describe('sha512Crypt', () => {
  it('matches the specification vectors', () => {
    expect(sha512Crypt('Hello world!', 'saltstring')).toBe(
      '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1',
    );
    expect(sha512Crypt('Hello world!', 'saltstringsaltstring', 10000)).toBe(
      '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.',
    );
  });
  it.each(['x', 'ünï cødé 🚀', 'a'.repeat(200), 'with $ and \\ and "quotes"'])(
    'agrees with openssl passwd -6 for %j',
    (pw) => {
      const want = execFileSync('openssl', ['passwd', '-6', '-salt', 'Ab0./xyz', '-stdin'], { input: pw })
        .toString()
        .trim();
      expect(sha512Crypt(pw, 'Ab0./xyz')).toBe(want);
    },
  );
  it('uses a fresh 16-character salt each time', () => {
    const [a, b] = [sha512Crypt('pw'), sha512Crypt('pw')];
    expect(a).toMatch(/^\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
    expect(a).not.toBe(b);
  });
});

describe('NoCloud seed', () => {
  it('has meta-data with the machine id as instance id, and the host name', () => {
    const f = files(spec);
    expect(Object.keys(f).sort()).toEqual(['meta-data', 'network-config', 'user-data']);
    expect(parse(f['meta-data']!)).toEqual({ 'instance-id': spec.machineId, 'local-hostname': 'web-1' });
  });
  it('has network-config v2 with DHCP on the NIC matched by its MAC', () => {
    expect(parse(files(spec)['network-config']!)).toEqual({
      version: 2,
      ethernets: { eth0: { match: { macaddress: '52:54:00:ab:cd:01' }, 'set-name': 'eth0', dhcp4: true } },
    });
  });
  it('has user-data with the user, sudo, keys and the password hash, never the password', () => {
    const text = files(spec)['user-data']!;
    expect(text.startsWith('#cloud-config\n')).toBe(true);
    expect(text).not.toContain('hunter2');
    expect(parse(text)).toEqual({
      hostname: 'web-1',
      preserve_hostname: false,
      ssh_pwauth: true,
      users: [
        {
          name: 'alice',
          gecos: 'alice',
          shell: '/bin/bash',
          groups: ['sudo'],
          sudo: 'ALL=(ALL) NOPASSWD:ALL',
          lock_passwd: false,
          passwd: spec.passwordHash,
          ssh_authorized_keys: [ED25519],
        },
      ],
    });
  });
  it('without a password: the account is locked and password logins are off', () => {
    const doc = parse(files({ ...spec, passwordHash: undefined })['user-data']!) as Record<string, unknown>;
    expect(doc.ssh_pwauth).toBe(false);
    expect((doc.users as Array<Record<string, unknown>>)[0]).toMatchObject({ lock_passwd: true });
    expect((doc.users as Array<Record<string, unknown>>)[0]).not.toHaveProperty('passwd');
  });
  it("without a user: the image's default user gets the keys and the hashed password", () => {
    const doc = parse(files({ ...spec, username: undefined, domain: 'lab.example' })['user-data']!) as Record<
      string,
      unknown
    >;
    expect(doc).not.toHaveProperty('users');
    expect(doc.fqdn).toBe('web-1.lab.example');
    expect(doc.ssh_authorized_keys).toEqual([ED25519]);
    expect(doc.chpasswd).toEqual({
      expire: false,
      users: [{ name: 'default', password: spec.passwordHash, type: 'hash' }],
    });
  });
  it("merges the caller's user data, whose reserved keys never override ours", () => {
    const userData =
      '#cloud-config\npackages: [htop]\nruncmd:\n  - [sh, -c, "echo \'hi: there\' > /tmp/x"]\nwrite_files:\n  - path: /etc/motd\n    content: "users: [evil]\\n"\n';
    const doc = parse(files({ ...spec, userData })['user-data']!) as Record<string, unknown>;
    expect(doc.packages).toEqual(['htop']);
    expect(doc.runcmd).toEqual([['sh', '-c', "echo 'hi: there' > /tmp/x"]]);
    expect(doc.write_files).toEqual([{ path: '/etc/motd', content: 'users: [evil]\n' }]);
    expect((doc.users as Array<{ name: string }>).map((u) => u.name)).toEqual(['alice']);
    // A reserved key that slipped past the API is refused here too.
    expect(() => buildCloudInitSeed({ ...spec, userData: 'users: [{name: evil}]' })).toThrow(
      expect.objectContaining({ name: 'SeedSpecError', field: 'userData' }),
    );
  });
  it('keeps YAML-significant user text as data', () => {
    const doc = parse(files({ ...spec, hostname: 'yes' })['meta-data']!) as Record<string, unknown>;
    expect(doc['local-hostname']).toBe('yes'); // not the boolean true
  });
  it('refuses a password that is not a hash, and a bad MAC', () => {
    expect(() => buildCloudInitSeed({ ...spec, passwordHash: 'hunter2' })).toThrow(
      expect.objectContaining({ field: 'passwordHash' }),
    );
    expect(() => buildCloudInitSeed({ ...spec, mac: 'nope' })).toThrow(
      expect.objectContaining({ field: 'mac' }),
    );
  });
});
