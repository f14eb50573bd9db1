import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';

/** Department firewall presets: established/related traffic is always accepted. */
export const FIREWALL_POLICIES = ['ALLOW_ALL', 'BLOCK_ALL', 'ALLOW_OUTBOUND', 'ALLOW_INTERNET'] as const;
export type FirewallPolicy = (typeof FIREWALL_POLICIES)[number];

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
  /** The department's firewall preset (src/firewall/presets.ts); its own rules and services add to it. */
  @Column('varchar', { length: 20, default: 'ALLOW_ALL' }) firewallPolicy!: FirewallPolicy;
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
