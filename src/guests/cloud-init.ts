/**
 * The files of a NoCloud seed (cloud-init's `cidata` volume), pure: `meta-data` (instance id = machine id,
 * so a clone, which has a new id, provisions again), `user-data` (`#cloud-config`: host name, the user with
 * sudo, SSH keys and a SHA-512 crypt hash of the password, then the caller's own cloud-config keys) and
 * `network-config` (v2: DHCP on the NIC with the machine's MAC). Every document is serialised from data
 * by the `yaml` library, never concatenated from user text.
 *
 * Merging `userData`: its top-level keys are copied as they are, except the keys vmflow sets itself
 * ({@link RESERVED_USER_DATA_KEYS}), which the API refuses (400) and which this module drops again should
 * one reach it: the user, password and host name of the request always win.
 */
import { stringify } from 'yaml';
import { RESERVED_USER_DATA_KEYS, parseUserData } from './provisioning';

/** Names of the seed files on the `cidata` volume. */
export const NOCLOUD_FILES = {
  metaData: 'meta-data',
  userData: 'user-data',
  networkConfig: 'network-config',
} as const;
/** The volume label cloud-init's NoCloud datasource looks for. */
export const NOCLOUD_LABEL = 'cidata';

/** What a NoCloud seed is built from. The password arrives already hashed. */
export interface CloudInitSeedSpec {
  /** Becomes `instance-id`: a new id means a new instance to cloud-init. */
  machineId: string;
  /** RFC 1123 label. */
  hostname: string;
  /** Optional DNS domain: `fqdn` becomes `<hostname>.<domain>`. */
  domain?: string;
  /** The user to create; absent: the image's default user (only keys and password are applied to it). */
  username?: string;
  /** SHA-512 crypt hash (`$6$…`) of the password; absent: the account's password stays locked. */
  passwordHash?: string;
  /** OpenSSH public keys for the user. */
  sshKeys: string[];
  /** The MAC of the machine's NIC: network-config matches it. */
  mac: string;
  /** The caller's extra cloud-config (YAML mapping text), merged as described above. */
  userData?: string;
}

/** File name → content of a seed volume. */
export type SeedFiles = Map<string, Buffer>;

const yaml = (value: unknown): string => stringify(value, { lineWidth: 0 });

/**
 * The `#cloud-config` document as data: vmflow's keys, then the caller's (minus the reserved ones). Exposed
 * for tests and for the docs' example; {@link buildCloudInitSeed} serialises it.
 */
export function cloudConfig(spec: CloudInitSeedSpec): Record<string, unknown> {
  const extra = spec.userData === undefined ? {} : parseUserDataOrThrow(spec.userData);
  const ours: Record<string, unknown> = {
    hostname: spec.hostname,
    ...(spec.domain ? { fqdn: `${spec.hostname}.${spec.domain}` } : {}),
    preserve_hostname: false,
    ssh_pwauth: spec.passwordHash !== undefined,
  };
  if (spec.username !== undefined) {
    ours.users = [
      {
        name: spec.username,
        gecos: spec.username,
        shell: '/bin/bash',
        groups: ['sudo'],
        sudo: 'ALL=(ALL) NOPASSWD:ALL',
        lock_passwd: spec.passwordHash === undefined,
        ...(spec.passwordHash !== undefined ? { passwd: spec.passwordHash } : {}),
        ...(spec.sshKeys.length > 0 ? { ssh_authorized_keys: spec.sshKeys } : {}),
      },
    ];
  } else {
    // No user asked for: the image's default user gets the keys and the password.
    if (spec.sshKeys.length > 0) ours.ssh_authorized_keys = spec.sshKeys;
    if (spec.passwordHash !== undefined)
      ours.chpasswd = {
        expire: false,
        users: [{ name: 'default', password: spec.passwordHash, type: 'hash' }],
      };
  }
  const merged: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(extra)) if (!RESERVED_USER_DATA_KEYS.includes(k)) merged[k] = v;
  return { ...ours, ...merged };
}

function parseUserDataOrThrow(text: string): Record<string, unknown> {
  const r = parseUserData(text);
  if (!r.ok) throw new SeedSpecError('userData', `userData ${r.message}`);
  return r.value;
}

/** A seed cannot be built from this spec; `field` names the offending input. */
export class SeedSpecError extends Error {
  override readonly name = 'SeedSpecError';
  constructor(
    public readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** Builds the three files of a NoCloud seed. */
export function buildCloudInitSeed(spec: CloudInitSeedSpec): SeedFiles {
  if (spec.passwordHash !== undefined && !/^\$6\$[^\n]+$/.test(spec.passwordHash))
    throw new SeedSpecError('passwordHash', 'passwordHash must be a SHA-512 crypt hash ($6$…)');
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(spec.mac))
    throw new SeedSpecError('mac', 'mac must be a MAC address');
  const metaData = { 'instance-id': spec.machineId, 'local-hostname': spec.hostname };
  const networkConfig = {
    version: 2,
    ethernets: {
      eth0: { match: { macaddress: spec.mac.toLowerCase() }, 'set-name': 'eth0', dhcp4: true },
    },
  };
  return new Map([
    [NOCLOUD_FILES.metaData, Buffer.from(yaml(metaData))],
    [NOCLOUD_FILES.userData, Buffer.from(`#cloud-config\n${yaml(cloudConfig(spec))}`)],
    [NOCLOUD_FILES.networkConfig, Buffer.from(yaml(networkConfig))],
  ]);
}
