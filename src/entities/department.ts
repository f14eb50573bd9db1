import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/**
 * A group of users and VMs sharing a security policy. Its libvirt nwfilter (`filterName`) is referenced
 * by the filter of each of its VMs, so the department policy always applies.
 */
@Entity('department')
export class Department {
  @PrimaryColumn('char', { length: 36 }) id!: string;
  @Index({ unique: true }) @Column('varchar', { length: 100 }) name!: string;
  /** libvirt name of the department's nwfilter (deterministic: vmflow-dept-<id>). */
  @Column('varchar', { length: 64 }) filterName!: string;
  /** libvirt network its VMs attach to; null = the host's default vmflow network. */
  @Column('varchar', { length: 64, nullable: true }) networkName!: string | null;
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
}

export type DepartmentRole = 'MEMBER' | 'MANAGER';

/** Membership of a user in a department. MANAGER sees and runs every VM of the department. */
@Entity('department_member')
export class DepartmentMember {
  @PrimaryColumn('char', { length: 36 }) departmentId!: string;
  @PrimaryColumn('char', { length: 36 }) userId!: string;
  @Column('varchar', { length: 10, default: 'MEMBER' }) role!: DepartmentRole;
}
