import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

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
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
}
