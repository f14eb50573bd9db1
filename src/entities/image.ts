import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';

/** The OS family of an image (decides the first-boot provisioning a machine from it may use). */
export const IMAGE_OS_FAMILIES = ['linux', 'windows'] as const;
export type ImageOsFamily = (typeof IMAGE_OS_FAMILIES)[number];
/** The disk format of an image's volume (checked against the content with `qemu-img info`). */
export const IMAGE_FORMATS = ['qcow2', 'raw'] as const;
export type ImageFormat = (typeof IMAGE_FORMATS)[number];
export const IMAGE_FIRMWARES = ['bios', 'uefi'] as const;
export type ImageFirmware = (typeof IMAGE_FIRMWARES)[number];
/** How a machine made from the image is provisioned on first boot. */
export const IMAGE_PROVISIONINGS = ['cloud-init', 'windows-unattend', 'none'] as const;
export type ImageProvisioning = (typeof IMAGE_PROVISIONINGS)[number];
/** Where the volume came from: uploaded into a volume vmflow made, or an existing volume registered. */
export const IMAGE_ORIGINS = ['upload', 'register'] as const;
export type ImageOrigin = (typeof IMAGE_ORIGINS)[number];

/**
 * Life of an image row. `pending`: created, waiting for its content (`PUT /api/images/:id/content`);
 * `importing`: an import or registration workflow runs; `ready`: usable by templates and machines;
 * `failed`: the last import failed (`lastError`; no volume behind it; a new upload may be tried);
 * `deleting`: the delete workflow runs.
 */
export const IMAGE_STATUSES = ['pending', 'importing', 'ready', 'failed', 'deleting'] as const;
export type ImageStatus = (typeof IMAGE_STATUSES)[number];

/** MariaDB returns BIGINT as a string: a JS number holds every size up to 8 PiB exactly. */
function bigintTo(v: number | null): number | null {
  return v;
}
function bigintFrom(v: string | null): number | null {
  return v == null ? null : Number(v);
}
const bigintNumber = { to: bigintTo, from: bigintFrom };

/**
 * An OS disk image: a volume in a host's storage pool that machines are made from (a linked overlay or a
 * full copy). The user's `name` never reaches libvirt: an uploaded image's volume is
 * `libvirtNames.imageVolume(id)`; a registered one keeps the name it had (and is never deleted by vmflow).
 */
@Entity('image')
@Index('IDX_image_created', ['createdAt', 'id'])
export class Image {
  @PrimaryColumn('char', { length: 36 }) id!: string;
  @Index('IDX_image_name', { unique: true }) @Column('varchar', { length: 100 }) name!: string;
  @Column('varchar', { length: 500, default: '' }) description!: string;
  @Column('varchar', { length: 10 }) osFamily!: ImageOsFamily;
  @Column('varchar', { length: 8 }) format!: ImageFormat;
  /** The size the guest sees (bytes); null until imported. */
  @Column('bigint', { nullable: true, transformer: bigintNumber }) virtualSizeBytes!: number | null;
  /** The size of the image file (bytes): the upload's length, or the registered volume's allocation. */
  @Column('bigint', { nullable: true, transformer: bigintNumber }) sizeBytes!: number | null;
  /** sha256 of the image file, lowercase hex (given at creation for uploads; verified on import). */
  @Column('char', { length: 64, nullable: true }) sha256!: string | null;
  @Column('varchar', { length: 8 }) firmware!: ImageFirmware;
  @Column('varchar', { length: 20 }) provisioning!: ImageProvisioning;
  @Column('varchar', { length: 10, default: 'upload' }) origin!: ImageOrigin;
  /** The host whose pool holds the volume. */
  @Column('varchar', { length: 63 }) hostName!: string;
  @Column('varchar', { length: 64 }) pool!: string;
  @Column('varchar', { length: 255 }) volumeName!: string;
  /** The volume's path on the host (null until imported). */
  @Column('varchar', { length: 1024, nullable: true }) path!: string | null;
  @Index('IDX_image_status') @Column('varchar', { length: 12 }) status!: ImageStatus;
  @Column('text', { nullable: true }) lastError!: string | null;
  /** Departments that may use it; null: every department. */
  @Column('json', { nullable: true }) departmentIds!: string[] | null;
  @Column('char', { length: 36, nullable: true }) currentOperationId!: string | null;
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
  @UpdateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)', onUpdate: 'CURRENT_TIMESTAMP(3)' })
  updatedAt!: Date;
}
