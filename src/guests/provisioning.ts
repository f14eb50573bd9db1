/**
 * First-boot provisioning input, pure: the zod schemas the API validates a create request with, the rules
 * that depend on the image's OS family (checked once the image is known), the default host name derived
 * from the machine name, and {@link provisioningFromRequest}, which splits a request into what may travel
 * in clear (workflow input, operation record) and what must travel sealed (password, product key, user
 * data). The seed activity (src/activities/seed.ts) is the only code that opens the sealed part.
 */
import { parseDocument } from 'yaml';
import { z } from 'zod';

/** The OS families an image declares. */
export type OsFamily = 'linux' | 'windows';

/** How an image provisions itself on first boot. */
export type ProvisioningKind = 'cloud-init' | 'windows-unattend';

/** Longest `userData` accepted, in UTF-8 bytes. */
export const USER_DATA_MAX_BYTES = 32 * 1024;
/** Most SSH keys accepted. */
export const SSH_KEYS_MAX = 16;
/** Longest single SSH public key line (an RSA 16384-bit key with a comment fits). */
export const SSH_KEY_MAX_LENGTH = 8 * 1024;
/** Longest guest password (the existing `guestPassword` limit). */
export const GUEST_PASSWORD_MAX = 128;

// ---- user names ----------------------------------------------------------------------------------------

/** A POSIX user name as useradd accepts it by default (Debian's NAME_REGEX, 32 characters). */
const POSIX_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

/**
 * System accounts a guest already has (Debian base-passwd, systemd, common services): provisioning one of
 * them would change a system account's password and shell, so they are refused.
 */
export const RESERVED_POSIX_USERS: ReadonlySet<string> = new Set([
  'root',
  'daemon',
  'bin',
  'sys',
  'sync',
  'games',
  'man',
  'lp',
  'mail',
  'news',
  'uucp',
  'proxy',
  'www-data',
  'backup',
  'list',
  'irc',
  'gnats',
  'nobody',
  '_apt',
  'messagebus',
  'sshd',
  'systemd-network',
  'systemd-resolve',
  'systemd-timesync',
  'systemd-coredump',
  'polkitd',
  'adm',
  'sudo',
  'staff',
  'users',
  'nogroup',
  'operator',
  'halt',
  'shutdown',
  'ftp',
  'dbus',
  'tss',
]);

/** Characters Windows refuses in a local account name. */
// eslint-disable-next-line no-control-regex -- refusing control characters is the point
const WINDOWS_USER_FORBIDDEN = /["/\\[\]:;|=,+*?<>@\u0000-\u001f\u007f]/;
/** Built-in Windows accounts that cannot be created again (Administrator is handled: it gets the password). */
const RESERVED_WINDOWS_USERS: ReadonlySet<string> = new Set([
  'guest',
  'defaultaccount',
  'wdagutilityaccount',
  'system',
  'local service',
  'network service',
  'everyone',
  'administrators',
  'users',
]);

/** Why `name` is not a usable POSIX user name, or null when it is. */
export function posixUserProblem(name: string): string | null {
  if (!POSIX_USER.test(name))
    return 'must be a POSIX user name: 1-32 of a-z 0-9 _ -, starting with a letter or _';
  if (RESERVED_POSIX_USERS.has(name)) return `'${name}' is a system account`;
  return null;
}

/** Why `name` is not a usable Windows local account name, or null when it is. */
export function windowsUserProblem(name: string): string | null {
  if (name.length < 1 || name.length > 20) return 'must be a Windows user name of 1-20 characters';
  if (WINDOWS_USER_FORBIDDEN.test(name))
    return 'must be a Windows user name: no control characters and none of " / \\ [ ] : ; | = , + * ? < > @';
  if (/^[. ]+$/.test(name) || name.endsWith('.'))
    return 'must not consist of dots and spaces or end with a dot';
  if (RESERVED_WINDOWS_USERS.has(name.toLowerCase())) return `'${name}' is a built-in Windows account`;
  return null;
}

// ---- SSH keys ------------------------------------------------------------------------------------------

const SSH_KEY_TYPES = [
  'ssh-ed25519',
  'ssh-rsa',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'sk-ssh-ed25519@openssh.com',
  'sk-ecdsa-sha2-nistp256@openssh.com',
] as const;
const SSH_KEY_LINE = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?: ([^\p{Cc}\u2028\u2029]*))?$/u;

/**
 * Why `line` is not one OpenSSH public key (`type base64 [comment]`, no options), or null when it is. The
 * base64 blob must decode and name the same key type as the line, so a pasted private key, a
 * fingerprint or an `authorized_keys` line with options (`command=…`) is refused.
 */
export function sshKeyProblem(line: string): string | null {
  const m = SSH_KEY_LINE.exec(line);
  if (!m) return 'must be one OpenSSH public key line: "<type> <base64> [comment]"';
  const [, type, blob] = m as unknown as [string, string, string];
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type))
    return `key type must be one of ${SSH_KEY_TYPES.join(', ')}`;
  const bytes = Buffer.from(blob, 'base64');
  if (bytes.length < 4) return 'the key data is not a public key';
  const len = bytes.readUInt32BE(0);
  if (len !== type.length || bytes.subarray(4, 4 + len).toString('latin1') !== type)
    return `the key data does not hold a ${type} key`;
  return null;
}

// ---- host names ----------------------------------------------------------------------------------------

/** One RFC 1123 label: letters, digits, inner hyphens, 1–63 characters. */
const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/**
 * The default guest host name of a machine: its name lowercased, accents dropped, every run of other
 * characters made one `-`, trimmed of `-` and cut to 63 characters; `vm-<first 8 of the id>` when nothing
 * is left (a name of emoji only). Always a valid RFC 1123 label.
 */
export function hostnameFromName(name: string, machineId: string): string {
  const label = name
    .normalize('NFKD')
    .replace(/\p{M}/gu, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+/, '')
    .slice(0, 63)
    .replace(/-+$/, '');
  return (
    label ||
    `vm-${machineId
      .replace(/[^A-Za-z0-9]/g, '')
      .slice(0, 8)
      .toLowerCase()}`
  );
}

// ---- user data -----------------------------------------------------------------------------------------

/**
 * Top-level cloud-config keys vmflow sets itself from the request's own fields. A `userData` that sets one
 * is refused (400) instead of being silently overridden: the user and password the caller asked for are
 * what the guest gets, and the seed never carries two answers to one question.
 */
export const RESERVED_USER_DATA_KEYS: readonly string[] = [
  'users',
  'user',
  'password',
  'chpasswd',
  'ssh_pwauth',
  'ssh_authorized_keys',
  'hostname',
  'fqdn',
  'preserve_hostname',
  'prefer_fqdn_over_hostname',
  'system_info',
];

/** A parsed `userData` mapping, or the reason it is unusable. */
export function parseUserData(
  text: string,
): { ok: true; value: Record<string, unknown> } | { ok: false; message: string } {
  if (Buffer.byteLength(text, 'utf8') > USER_DATA_MAX_BYTES)
    return { ok: false, message: `must be at most ${USER_DATA_MAX_BYTES} bytes` };
  const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0)
    return { ok: false, message: `is not valid YAML: ${doc.errors[0]!.message.split('\n')[0]}` };
  if (doc.warnings.length > 0)
    return { ok: false, message: `is not plain YAML: ${doc.warnings[0]!.message.split('\n')[0]}` };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    return { ok: false, message: `is not usable YAML: ${(e as Error).message.split('\n')[0]}` };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    return { ok: false, message: 'must be a YAML mapping (cloud-config keys at the top level)' };
  const reserved = Object.keys(value).filter((k) => RESERVED_USER_DATA_KEYS.includes(k));
  if (reserved.length > 0)
    return {
      ok: false,
      message: `must not set ${reserved.map((k) => `'${k}'`).join(', ')}: vmflow sets it from username, password, sshKeys and hostname`,
    };
  return { ok: true, value: value as Record<string, unknown> };
}

// ---- zod schemas (the API's create-machine and clone bodies) ----------------------------------------

/** `username`: valid for Linux (POSIX) or Windows; which one applies is checked against the image. */
export const GuestUsername = z
  .string()
  .min(1)
  .max(32)
  .refine((s) => posixUserProblem(s) === null || windowsUserProblem(s) === null, {
    message:
      'must be a POSIX user name (a-z 0-9 _ -, starting with a letter or _, not a system account) or a Windows user name',
  });

/** `password` / `guestPassword`: sealed before it leaves the API. */
export const GuestPassword = z.string().min(1).max(GUEST_PASSWORD_MAX);

/** `sshKeys`: OpenSSH public key lines. */
export const SshKeys = z
  .array(
    z
      .string()
      .max(SSH_KEY_MAX_LENGTH)
      .superRefine((s, ctx) => {
        const problem = sshKeyProblem(s.trim());
        if (problem) ctx.addIssue({ code: 'custom', message: problem });
      })
      .transform((s) => s.trim()),
  )
  .max(SSH_KEYS_MAX);

/** `hostname`: one RFC 1123 label (lowercased). */
export const GuestHostname = z
  .string()
  .regex(HOST_LABEL, 'must be a host name label (RFC 1123): 1-63 of letters, digits and inner hyphens')
  .transform((s) => s.toLowerCase());

/** `productKey`: a Windows product key, five groups of five. */
export const ProductKey = z
  .string()
  .regex(
    /^[A-Za-z0-9]{5}(-[A-Za-z0-9]{5}){4}$/,
    'must be a Windows product key XXXXX-XXXXX-XXXXX-XXXXX-XXXXX',
  )
  .transform((s) => s.toUpperCase());

/** `userData`: extra cloud-config, a YAML mapping. */
export const UserData = z
  .string()
  .min(1)
  .superRefine((s, ctx) => {
    const r = parseUserData(s);
    if (!r.ok) ctx.addIssue({ code: 'custom', message: r.message });
  });

/** The provisioning fields of a create request, spread into its zod object. */
export const provisioningFields = {
  username: GuestUsername.optional(),
  password: GuestPassword.optional(),
  sshKeys: SshKeys.optional(),
  hostname: GuestHostname.optional(),
  productKey: ProductKey.optional(),
  userData: UserData.optional(),
};

/** The provisioning fields of a create request, as the API parsed them. */
export interface ProvisioningRequest {
  username?: string;
  password?: string;
  /** The original name of `password`; still accepted. */
  guestPassword?: string;
  sshKeys?: string[];
  hostname?: string;
  productKey?: string;
  userData?: string;
}

// ---- what travels --------------------------------------------------------------------------------------

/**
 * What the seed needs that may travel in clear (workflow input, operation record, machine row): no
 * password, no product key, no user data.
 */
export interface Provisioning {
  /** RFC 1123 label: given, or {@link hostnameFromName}. */
  hostname: string;
  /** The user to create (Linux) or the local administrator account (Windows); absent: the image's default. */
  username?: string;
  sshKeys: string[];
  /** Whether a password is in the sealed part. */
  hasPassword: boolean;
  /** Whether a product key is in the sealed part. */
  hasProductKey: boolean;
  /** Whether user data is in the sealed part. */
  hasUserData: boolean;
}

/**
 * The sealed part (src/secrets.ts): the existing `{ password?, productKey? }` shape of `guestSecrets`,
 * plus the user data, which often carries tokens of its own.
 */
export interface GuestSecrets {
  password?: string;
  productKey?: string;
  userData?: string;
}

/** A field problem of a create request, with the HTTP status it maps to. */
export interface ProvisioningProblem {
  status: 400 | 422;
  field: string;
  message: string;
}

/**
 * Splits a validated request into what travels in clear and what must be sealed. `password` and its
 * older name `guestPassword` are the same field: giving both with different values is a 400.
 */
export function provisioningFromRequest(
  body: ProvisioningRequest & { name: string },
  machineId: string,
): { provisioning: Provisioning; secrets: GuestSecrets | null; problems: ProvisioningProblem[] } {
  const problems: ProvisioningProblem[] = [];
  if (body.password !== undefined && body.guestPassword !== undefined && body.password !== body.guestPassword)
    problems.push({ status: 400, field: 'password', message: 'give password or guestPassword, not both' });
  const password = body.password ?? body.guestPassword;
  const secrets: GuestSecrets = {
    ...(password !== undefined ? { password } : {}),
    ...(body.productKey !== undefined ? { productKey: body.productKey } : {}),
    ...(body.userData !== undefined ? { userData: body.userData } : {}),
  };
  return {
    provisioning: {
      hostname: body.hostname ?? hostnameFromName(body.name, machineId),
      ...(body.username !== undefined ? { username: body.username } : {}),
      sshKeys: body.sshKeys ?? [],
      hasPassword: password !== undefined,
      hasProductKey: body.productKey !== undefined,
      hasUserData: body.userData !== undefined,
    },
    secrets: Object.keys(secrets).length > 0 ? secrets : null,
    problems,
  };
}

/**
 * The rules that depend on the image, checked once it is known: the user name for its OS family (400),
 * a product key only for Windows (422), user data and SSH keys only for cloud-init (422), and nothing to
 * provision on an image that provisions nothing (422).
 */
export function checkProvisioningForImage(
  p: Provisioning,
  image: { osFamily: OsFamily; provisioning: ProvisioningKind | 'none' },
): ProvisioningProblem[] {
  const problems: ProvisioningProblem[] = [];
  if (p.username !== undefined) {
    const problem =
      image.osFamily === 'windows' ? windowsUserProblem(p.username) : posixUserProblem(p.username);
    if (problem) problems.push({ status: 400, field: 'username', message: problem });
  }
  if (p.hasProductKey && image.osFamily !== 'windows')
    problems.push({ status: 422, field: 'productKey', message: 'a product key is only for Windows images' });
  if (image.provisioning !== 'cloud-init') {
    if (p.hasUserData)
      problems.push({ status: 422, field: 'userData', message: 'userData is only for cloud-init images' });
    if (p.sshKeys.length > 0)
      problems.push({ status: 422, field: 'sshKeys', message: 'sshKeys are only for cloud-init images' });
  }
  if (image.provisioning === 'none' && (p.username !== undefined || p.hasPassword))
    problems.push({
      status: 422,
      field: p.username !== undefined ? 'username' : 'password',
      message: 'this image provisions nothing on first boot',
    });
  return problems;
}
