/** Provisioning input: user names, SSH keys, host names, user data, and the split into clear and sealed parts. */
import { zodFieldErrors } from '../../../src/api/errors';
import { CloneBody, CreateMachineBody } from '../../../src/api/schemas';
import {
  checkProvisioningForImage,
  hostnameFromName,
  parseUserData,
  posixUserProblem,
  provisioningFromRequest,
  sshKeyProblem,
  windowsUserProblem,
  USER_DATA_MAX_BYTES,
} from '../../../src/guests/provisioning';

export const ED25519 =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmjUfuPi7ClUicdZr6w6EHzr/AImLmzei009gDdNX2/ alice@laptop';
const ID = '0b7b1c36-4a0c-4f7e-9a55-6a4d3c1f0e11';
const base = { name: 'web 1', templateId: ID, departmentId: '5f0b1c36-4a0c-4f7e-9a55-6a4d3c1f0e22' };

function fieldsOf(body: Record<string, unknown>): string[] {
  const r = CreateMachineBody.safeParse({ ...base, ...body });
  return r.success ? [] : zodFieldErrors(r.error).map((e) => e.field);
}

describe('user names', () => {
  it.each(['alice', '_svc', 'a', 'dev-ops_2', 'a'.repeat(32)])('accepts the POSIX name %j', (n) => {
    expect(posixUserProblem(n)).toBeNull();
  });
  it.each([
    'Alice',
    '1abc',
    '-x',
    'a b',
    'a'.repeat(33),
    '',
    'ä',
    'a:b',
    'root',
    'daemon',
    'bin',
    'nobody',
    'sshd',
  ])('refuses the POSIX name %j', (n) => {
    expect(posixUserProblem(n)).not.toBeNull();
  });
  it.each(['Alice Smith', 'admin.user', 'José', 'Administrator'])('accepts the Windows name %j', (n) => {
    expect(windowsUserProblem(n)).toBeNull();
  });
  it.each(['a/b', 'a@b', 'x'.repeat(21), '...', 'abc.', 'Guest', 'a\tb', ''])(
    'refuses the Windows name %j',
    (n) => {
      expect(windowsUserProblem(n)).not.toBeNull();
    },
  );
  it('the API accepts a name valid for either family and refuses the rest, naming username', () => {
    expect(fieldsOf({ username: 'alice' })).toEqual([]);
    expect(fieldsOf({ username: 'Alice Smith' })).toEqual([]);
    expect(fieldsOf({ username: 'a/b' })).toEqual(['username']);
    // root is neither a usable POSIX name (system account) nor a Windows one? It is a valid Windows name,
    // so the schema lets it through; the image check refuses it for Linux.
    expect(fieldsOf({ username: 'root' })).toEqual([]);
    const p = provisioningFromRequest({ ...base, username: 'root' }, ID).provisioning;
    expect(checkProvisioningForImage(p, { osFamily: 'linux', provisioning: 'cloud-init' })).toEqual([
      { status: 400, field: 'username', message: expect.stringContaining('system account') },
    ]);
    expect(checkProvisioningForImage(p, { osFamily: 'windows', provisioning: 'windows-unattend' })).toEqual(
      [],
    );
  });
});

describe('SSH keys', () => {
  it('accepts an OpenSSH public key, with or without a comment, and trims it', () => {
    expect(sshKeyProblem(ED25519)).toBeNull();
    expect(sshKeyProblem(ED25519.split(' ').slice(0, 2).join(' '))).toBeNull();
    const r = CreateMachineBody.parse({ ...base, sshKeys: [`  ${ED25519}\n`] });
    expect(r.sshKeys).toEqual([ED25519]);
  });
  it.each([
    ['options', `command="rm -rf /" ${ED25519}`],
    ['a type the blob does not hold', ED25519.replace('ssh-ed25519', 'ssh-rsa')],
    ['an unknown type', ED25519.replace('ssh-ed25519', 'ssh-dss')],
    ['bad base64', 'ssh-ed25519 AAAA!!!'],
    ['two lines', `${ED25519}\n${ED25519}`],
    ['a private key', '-----BEGIN OPENSSH PRIVATE KEY-----'],
    ['empty', ''],
  ])('refuses %s', (_what, line) => {
    expect(sshKeyProblem(line)).not.toBeNull();
  });
  it('names the key in the 400 and caps the list', () => {
    expect(fieldsOf({ sshKeys: [ED25519, 'nope'] })).toEqual(['sshKeys.1']);
    expect(fieldsOf({ sshKeys: new Array(17).fill(ED25519) })).toEqual(['sshKeys']);
    expect(fieldsOf({ sshKeys: new Array(16).fill(ED25519) })).toEqual([]);
  });
});

describe('host names', () => {
  it.each([
    ['build agent 7', 'build-agent-7'],
    ['Web_Server.01', 'web-server-01'],
    ['  --Crème Brûlée--  ', 'creme-brulee'],
    ['ÜBER名前42', 'uber-42'],
    ['🚀🚀', 'vm-0b7b1c36'],
    ['---', 'vm-0b7b1c36'],
    ['a'.repeat(62) + '-b', 'a'.repeat(62)],
    ['x'.repeat(100), 'x'.repeat(63)],
  ])('derives %j → %j', (name, want) => {
    const h = hostnameFromName(name, ID);
    expect(h).toBe(want);
    expect(h).toMatch(/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/);
  });
  it('accepts a given label (lowercased) and refuses invalid ones, naming hostname', () => {
    expect(CreateMachineBody.parse({ ...base, hostname: 'Web-01' }).hostname).toBe('web-01');
    for (const bad of ['-web', 'web-', 'a.b', 'a_b', 'x'.repeat(64), ''])
      expect(fieldsOf({ hostname: bad })).toEqual(['hostname']);
    expect(CloneBody.parse({ name: 'c', hostname: 'clone-1' }).hostname).toBe('clone-1');
    const r = CloneBody.safeParse({ name: 'c', hostname: 'no way' });
    expect(r.success ? [] : zodFieldErrors(r.error).map((e) => e.field)).toEqual(['hostname']);
    expect(CloneBody.safeParse({ name: 'c', username: 'x' }).success).toBe(false);
  });
});

describe('user data', () => {
  it('accepts a YAML mapping (with the #cloud-config line)', () => {
    const r = parseUserData('#cloud-config\npackages: [htop]\nruncmd:\n  - [touch, /tmp/x]\n');
    expect(r).toEqual({ ok: true, value: { packages: ['htop'], runcmd: [['touch', '/tmp/x']] } });
  });
  it.each([
    ['not YAML', 'a: [1, 2', /not valid YAML/],
    ['a list', '- a\n- b\n', /mapping/],
    ['a scalar', 'just text', /mapping/],
    ['duplicate keys', 'a: 1\na: 2\n', /YAML/],
    ['a reserved key', 'users: []\npackages: [x]\n', /'users'/],
    ['two reserved keys', 'chpasswd: {}\nhostname: x\n', /'chpasswd', 'hostname'/],
    ['an unknown tag', 'a: !!python/object:os.system x\n', /YAML/],
    [
      'too many aliases',
      `a: &a [x, x, x, x, x, x, x, x, x, x]\nb: [${new Array(200).fill('*a').join(', ')}]\n`,
      /YAML/,
    ],
  ])('refuses %s', (_what, text, message) => {
    const r = parseUserData(text);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.message).toMatch(message);
  });
  it('is size-limited, and the API names the field', () => {
    const big = `a: "${'x'.repeat(USER_DATA_MAX_BYTES)}"\n`;
    expect(parseUserData(big)).toEqual({ ok: false, message: expect.stringContaining('bytes') });
    expect(fieldsOf({ userData: big })).toEqual(['userData']);
    expect(fieldsOf({ userData: '- a' })).toEqual(['userData']);
    expect(fieldsOf({ userData: 'packages: [x]' })).toEqual([]);
  });
});

describe('provisioningFromRequest', () => {
  it('keeps the password, product key and user data out of the clear part', () => {
    const body = CreateMachineBody.parse({
      ...base,
      username: 'alice',
      password: 'hunter2-correct',
      productKey: 'abcde-12345-abcde-12345-abcde',
      userData: 'packages: [htop]',
      sshKeys: [ED25519],
    });
    const { provisioning, secrets, problems } = provisioningFromRequest(body, ID);
    expect(problems).toEqual([]);
    expect(provisioning).toEqual({
      hostname: 'web-1',
      username: 'alice',
      sshKeys: [ED25519],
      hasPassword: true,
      hasProductKey: true,
      hasUserData: true,
    });
    expect(JSON.stringify(provisioning)).not.toMatch(/hunter2|ABCDE|htop/);
    expect(secrets).toEqual({
      password: 'hunter2-correct',
      productKey: 'ABCDE-12345-ABCDE-12345-ABCDE',
      userData: 'packages: [htop]',
    });
  });
  it('still takes guestPassword, refuses two different passwords, and has no secrets when none are given', () => {
    const old = provisioningFromRequest(CreateMachineBody.parse({ ...base, guestPassword: 'pw' }), ID);
    expect(old.secrets).toEqual({ password: 'pw' });
    expect(old.provisioning.hasPassword).toBe(true);
    expect(provisioningFromRequest({ ...base, password: 'pw', guestPassword: 'pw' }, ID).problems).toEqual(
      [],
    );
    expect(provisioningFromRequest({ ...base, password: 'a', guestPassword: 'b' }, ID).problems).toEqual([
      expect.objectContaining({ status: 400, field: 'password' }),
    ]);
    const none = provisioningFromRequest(base, ID);
    expect(none.secrets).toBeNull();
    expect(none.provisioning).toEqual({
      hostname: 'web-1',
      sshKeys: [],
      hasPassword: false,
      hasProductKey: false,
      hasUserData: false,
    });
  });
  it('checks the fields against the image: product key on Linux and user data on Windows are 422', () => {
    const p = provisioningFromRequest(
      {
        ...base,
        productKey: 'ABCDE-12345-ABCDE-12345-ABCDE',
        userData: 'a: 1',
        sshKeys: [ED25519],
        username: 'Alice Smith',
      },
      ID,
    ).provisioning;
    expect(checkProvisioningForImage(p, { osFamily: 'linux', provisioning: 'cloud-init' })).toEqual([
      expect.objectContaining({ status: 400, field: 'username' }),
      expect.objectContaining({ status: 422, field: 'productKey' }),
    ]);
    expect(checkProvisioningForImage(p, { osFamily: 'windows', provisioning: 'windows-unattend' })).toEqual([
      expect.objectContaining({ status: 422, field: 'userData' }),
      expect.objectContaining({ status: 422, field: 'sshKeys' }),
    ]);
    const plain = provisioningFromRequest({ ...base, password: 'x' }, ID).provisioning;
    expect(checkProvisioningForImage(plain, { osFamily: 'linux', provisioning: 'none' })).toEqual([
      expect.objectContaining({ status: 422, field: 'password' }),
    ]);
  });
  it('refuses a malformed product key with 400 naming it', () => {
    expect(fieldsOf({ productKey: 'ABC' })).toEqual(['productKey']);
  });
});
