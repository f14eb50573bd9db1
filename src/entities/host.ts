import { Column, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';

/** Host features that decide what vmflow may apply there. */
export interface HostCapabilities {
  /** libvirt `<bandwidth>` (QoS) works: the kernel has the qdiscs libvirt uses (htb, sfq). */
  qos: boolean;
  /** Why not, in plain words, when `qos` is false. */
  qosReason?: string;
}

/**
 * A hypervisor host. Its worker registers it on start (upsert by name) with the capacity libvirt reports;
 * its hypervisor activities run on `taskQueue` (host-<name>).
 */
@Entity('host')
export class Host {
  @PrimaryColumn('char', { length: 36 }) id!: string;
  @Index({ unique: true }) @Column('varchar', { length: 63 }) name!: string;
  @Column('varchar', { length: 255 }) libvirtUri!: string;
  @Column('varchar', { length: 100 }) taskQueue!: string;
  @Column('int') cpus!: number;
  @Column('bigint', {
    transformer: { to: (v: number) => v, from: (v: string | null) => (v == null ? v : Number(v)) },
  })
  memoryMiB!: number;
  @Column('varchar', { length: 64 }) storagePool!: string;
  @Column('varchar', { length: 64 }) defaultNetwork!: string;
  /** What the host's kernel and libvirt can do, probed by its worker on start (null: not probed yet). */
  @Column('json', { nullable: true }) capabilities!: HostCapabilities | null;
  @UpdateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)', onUpdate: 'CURRENT_TIMESTAMP(3)' })
  lastSeenAt!: Date;
}
