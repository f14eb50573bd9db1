/**
 * The first-boot seed of a machine: a small ISO volume in the host's pool that the domain carries as a
 * read-only CD-ROM — a NoCloud `cidata` seed for cloud-init images, an `autounattend.xml` for Windows.
 *
 * The guest password reaches vmflow's processes sealed (src/secrets.ts) and is opened only here, on the
 * host, to be hashed (cloud-init) or obfuscated (Windows) into the seed. It is never in this activity's
 * result, a heartbeat, a log line or an error message: errors name fields, never values.
 */
import { type StoragePool, type StorageVolume } from '../libvirt/connection';
import { isLibvirtError, LibvirtErrorCode } from '../libvirt/errors';
import { type LibvirtProvider } from '../libvirt/provider';
import { buildVolumeXml } from '../libvirt/xml';
import { buildCloudInitSeed, NOCLOUD_LABEL, SeedSpecError, type SeedFiles } from '../guests/cloud-init';
import { sha512Crypt } from '../guests/crypt';
import { withSeedIso } from '../guests/iso';
import { type GuestSecrets, type Provisioning, type ProvisioningKind } from '../guests/provisioning';
import { buildUnattendXml, UNATTEND_FILE, UNATTEND_LABEL } from '../guests/unattend';
import { macFromId, type SecretBox, type SealedSecret } from '../secrets';
import { FailureType, type SealedSecretRef } from '../workflows/shared';
import { permanent } from './failures';
import { activePool, findVolume } from './pools';
import { withHeartbeat } from './retry';

/** Dependencies of the seed activities. */
export interface SeedActivityDeps {
  libvirt: LibvirtProvider;
  secrets: SecretBox;
}

/** The seed volume of a machine: derived from its id, so every attempt finds what an earlier one made. */
export function seedVolumeName(machineId: string): string {
  return `vmflow-seed-${machineId}.iso`;
}

/** Input of {@link createSeedActivities}' `writeSeed`. Safe in workflow history: secrets only sealed. */
export interface WriteSeedInput {
  /** Storage pool of the machine's disk. */
  pool: string;
  machineId: string;
  /** The image's provisioning kind. */
  kind: ProvisioningKind;
  /** What may travel in clear (src/guests/provisioning.ts). */
  provisioning: Provisioning;
  /** The sealed `{ password?, productKey?, userData? }` of the create request. */
  guestSecrets?: SealedSecretRef;
  /** MAC of the machine's NIC; default: the one derived from the machine id (as defineDomain does). */
  mac?: string;
  /** DNS domain for the guest's FQDN (cloud-init), if any. */
  domain?: string;
}

/** What `writeSeed` returns: where the seed is, for the domain's CD-ROM. */
export interface SeedVolume {
  /** Volume name in the pool. */
  volume: string;
  /** Its path on the host (the CD-ROM's source, format raw). */
  path: string;
  /** Its size in bytes. */
  sizeBytes: number;
}

const validation = (field: string, message: string) => permanent(FailureType.Validation, message, { field });

/**
 * Writes `isoPath` (`length` bytes) into the volume through libvirt's upload stream (the worker needs no
 * access to the pool's files).
 */
export async function writeVolumeFromFile(
  vol: StorageVolume,
  isoPath: string,
  length: number,
): Promise<void> {
  await vol.uploadFile(isoPath, { offset: 0, length });
}

/**
 * Seed activities, on the host's task queue. `writeSeed` is retry-safe (same machine → same volume,
 * rewritten whole); `deleteSeed` is its undo and the destroy step (delete if present, by the name derived
 * from the machine id).
 */
export function createSeedActivities({ libvirt, secrets }: SeedActivityDeps) {
  const pool = (name: string) => activePool(libvirt, name);

  async function deleteIfPresent(p: StoragePool, name: string): Promise<void> {
    const vol = await findVolume(p, name);
    if (!vol) return;
    try {
      await vol.delete();
    } catch (e) {
      if (!isLibvirtError(e, LibvirtErrorCode.NO_STORAGE_VOL)) throw e;
    }
  }

  /** Opens the sealed part; a seal that does not open is permanent (another key, or tampered). */
  function openSecrets(sealed: SealedSecretRef | undefined): GuestSecrets {
    if (!sealed) return {};
    try {
      return secrets.open<GuestSecrets>(sealed as SealedSecret);
    } catch {
      throw validation('guestSecrets', 'the sealed guest secrets do not open with this worker’s SECRETS_KEY');
    }
  }

  /** The seed's files and volume label. The only place the password is in clear. */
  function seedContent(input: WriteSeedInput): { files: SeedFiles; label: string } {
    const s = openSecrets(input.guestSecrets);
    const p = input.provisioning;
    try {
      if (input.kind === 'cloud-init') {
        const files = buildCloudInitSeed({
          machineId: input.machineId,
          hostname: p.hostname,
          ...(input.domain ? { domain: input.domain } : {}),
          ...(p.username !== undefined ? { username: p.username } : {}),
          ...(s.password !== undefined ? { passwordHash: sha512Crypt(s.password) } : {}),
          sshKeys: p.sshKeys,
          mac: input.mac ?? macFromId(input.machineId),
          ...(s.userData !== undefined ? { userData: s.userData } : {}),
        });
        return { files, label: NOCLOUD_LABEL };
      }
      const xml = buildUnattendXml({
        hostname: p.hostname,
        ...(p.username !== undefined ? { username: p.username } : {}),
        ...(s.password !== undefined ? { password: s.password } : {}),
        ...(s.productKey !== undefined ? { productKey: s.productKey } : {}),
      });
      return { files: new Map([[UNATTEND_FILE, Buffer.from(xml, 'utf8')]]), label: UNATTEND_LABEL };
    } catch (e) {
      // Messages of SeedSpecError name the field; a YAML parser's message may quote the user data, so
      // only the field goes out.
      if (e instanceof SeedSpecError) throw validation(e.field, `the seed's ${e.field} is invalid`);
      throw e;
    }
  }

  return {
    /**
     * Builds the machine's seed (NoCloud or Windows unattend) and writes it into its seed volume, created
     * (raw, the ISO's exact size) or rewritten. A failure after the volume was made removes it again; the
     * workflow's undo (`deleteSeed`, registered before this step) covers a worker that died meanwhile.
     */
    async writeSeed(input: WriteSeedInput): Promise<SeedVolume> {
      if (input.kind !== 'cloud-init' && input.kind !== 'windows-unattend')
        throw validation('kind', `no seed for provisioning kind ${JSON.stringify(input.kind)}`);
      const { files, label } = seedContent(input);
      const name = seedVolumeName(input.machineId);
      const p = await pool(input.pool);
      return withHeartbeat(
        () =>
          withSeedIso(files, label, async (iso) => {
            let vol = await findVolume(p, name);
            if (vol && (await vol.getInfo()).capacity !== iso.size) {
              await deleteIfPresent(p, name); // an earlier attempt's seed of another size
              vol = null;
            }
            vol ??= await p.createVolume(buildVolumeXml({ name, capacityBytes: iso.size, format: 'raw' }));
            try {
              await writeVolumeFromFile(vol, iso.path, iso.size);
            } catch (e) {
              await deleteIfPresent(p, name).catch(() => undefined); // the undo retries it if this fails
              throw e;
            }
            return { volume: name, path: await vol.getPath(), sizeBytes: iso.size };
          }),
        { step: 'write seed' },
      );
    },

    /** Removes the machine's seed volume if it exists (undo of `writeSeed`, and part of destroy). */
    async deleteSeed(input: { pool: string; machineId: string }): Promise<void> {
      await deleteIfPresent(await pool(input.pool), seedVolumeName(input.machineId));
    },
  };
}

export type SeedActivities = ReturnType<typeof createSeedActivities>;
