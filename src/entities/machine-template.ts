import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/** How a machine's disk is made from its template's image: a qcow2 overlay on it, or a full copy. */
export type DiskMode = 'linked' | 'full';

/** A hardware profile VMs are created from: vCPUs, memory (MiB), disk (GiB) and OS. */
@Entity('machine_template')
export class MachineTemplate {
  @PrimaryColumn('char', { length: 36 }) id!: string;
  @Index({ unique: true }) @Column('varchar', { length: 100 }) name!: string;
  @Column('varchar', { length: 500, default: '' }) description!: string;
  @Column('int') cpu!: number;
  @Column('int') memoryMiB!: number;
  @Column('int') storageGiB!: number;
  @Column('varchar', { length: 40 }) os!: string;
  /** The OS image machines start from (src/entities/image.ts); null: an empty disk. */
  @Index('IDX_template_image') @Column('char', { length: 36, nullable: true }) imageId!: string | null;
  /** With an image: `linked` (overlay, nothing copied) or `full` (a copy). */
  @Column('varchar', { length: 8, default: 'linked' }) diskMode!: DiskMode;
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
}
