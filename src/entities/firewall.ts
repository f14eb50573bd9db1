import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { type FilterRule } from '../libvirt/xml';

/** What a filter belongs to. */
export type FilterKind = 'department' | 'vm' | 'custom';

/**
 * A network filter as vmflow keeps it. Every department and every machine has one (kind `department` /
 * `vm`, created with them, libvirt names vmflow-dept-<id> / vmflow-vm-<id>); `custom` filters are
 * reusable rule sets (vmflow-fw-<id>) that department and VM filters may include. The libvirt content
 * of every filter is compiled from these rows (src/firewall/compile.ts): the DB is the truth.
 */
@Entity('firewall_filter')
export class FirewallFilter {
  @PrimaryColumn('char', { length: 36 }) id!: string;
  @Column('varchar', { length: 10 }) kind!: FilterKind;
  @Column('varchar', { length: 100 }) name!: string;
  @Column('varchar', { length: 500, nullable: true }) description!: string | null;
  /** libvirt nwfilter name (deterministic, never user text). */
  @Index({ unique: true }) @Column('varchar', { length: 64 }) internalName!: string;
  /** The department of a `department` filter, or the department a `custom` filter is scoped to (null: global). */
  @Index() @Column('char', { length: 36, nullable: true }) departmentId!: string | null;
  /** The machine of a `vm` filter. */
  @Index({ unique: true }) @Column('char', { length: 36, nullable: true }) machineId!: string | null;
  /** Ids of `custom` filters this one includes, in order. */
  @Column('json') includes!: string[];
  /** Bumped on every change of the filter or its rules. */
  @Column('int', { default: 1 }) version!: number;
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
  @UpdateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)', onUpdate: 'CURRENT_TIMESTAMP(3)' })
  updatedAt!: Date;
}

/** A user-written rule of a filter (preset and service rules are derived, never stored). */
@Entity('firewall_rule')
@Index(['filterId', 'createdAt'])
export class FirewallRule {
  @PrimaryColumn('char', { length: 36 }) id!: string;
  @Column('char', { length: 36 }) filterId!: string;
  /** The rule, exactly as validated by `checkFilterRule` (priority included). */
  @Column('json') spec!: FilterRule;
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
  @UpdateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)', onUpdate: 'CURRENT_TIMESTAMP(3)' })
  updatedAt!: Date;
}

/** USE: the VM may reach the service elsewhere (outbound). PROVIDE: the VM serves it (inbound). */
export type ServiceAction = 'USE' | 'PROVIDE';
export type ServiceScope = 'vm' | 'department';

/**
 * One service toggle, for a VM or for a department (the default of its VMs). The effective setting of
 * a VM is its own row, else its department's, else off.
 */
@Entity('service_setting')
export class ServiceSetting {
  @PrimaryColumn('varchar', { length: 10 }) scope!: ServiceScope;
  @PrimaryColumn('char', { length: 36 }) scopeId!: string;
  @PrimaryColumn('varchar', { length: 40 }) serviceId!: string;
  @PrimaryColumn('varchar', { length: 10 }) action!: ServiceAction;
  @Column('boolean') enabled!: boolean;
  @UpdateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)', onUpdate: 'CURRENT_TIMESTAMP(3)' })
  updatedAt!: Date;
}
