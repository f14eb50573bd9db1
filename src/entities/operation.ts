import { Column, Entity, Index, PrimaryColumn } from 'typeorm';

export type OperationType =
  | 'create'
  | 'clone'
  | 'destroy'
  | 'update_hardware'
  | 'power'
  | 'ping'
  | 'change_network'
  | 'change_department'
  | 'create_network'
  | 'update_network'
  | 'delete_network'
  | 'firewall'
  | 'flush_filters'
  | 'import_image'
  | 'register_image'
  | 'delete_image'
  | 'guest_exec'
  | 'guest_kill'
  | 'guest_service';
/** What an operation works on: its events are `<resource>:<action>` (vms, networks, firewall). */
export type OperationResource = 'vms' | 'networks' | 'firewall' | 'images';
export type OperationStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';
export type StepStatus = 'started' | 'completed' | 'failed' | 'compensating' | 'compensated';

/** One step of an operation, as shown to callers and pushed as `vms:progress`. */
export interface OperationStep {
  name: string;
  status: StepStatus;
  at: string;
  error?: string;
}

/**
 * One run of a workflow on a resource (create, power, …): who asked, its steps and outcome. The
 * workflow writes it through idempotent activities (upserts keyed by the operation id).
 */
@Entity('operation')
export class Operation {
  @PrimaryColumn('char', { length: 36 }) id!: string;
  @Index() @Column('varchar', { length: 100 }) workflowId!: string;
  @Column('varchar', { length: 20 }) type!: OperationType;
  @Index() @Column('char', { length: 36, nullable: true }) machineId!: string | null;
  /** The kind of resource (default vms) and its id, for operations on networks and filters. */
  @Column('varchar', { length: 20, default: 'vms' }) resource!: OperationResource;
  @Index() @Column('char', { length: 36, nullable: true }) resourceId!: string | null;
  @Column('char', { length: 36, nullable: true }) actorId!: string | null;
  @Index({ unique: true }) @Column('varchar', { length: 200, nullable: true }) idempotencyKey!: string | null;
  @Column('varchar', { length: 10 }) status!: OperationStatus;
  @Column('json') steps!: OperationStep[];
  /** Input as given, with secrets removed. */
  @Column('json', { nullable: true }) input!: Record<string, unknown> | null;
  @Column('text', { nullable: true }) error!: string | null;
  /** What the operation gave, for those that give something (a guest command's exit code and output). */
  @Column('json', { nullable: true }) result!: Record<string, unknown> | null;
  @Column('datetime', { precision: 3 }) startedAt!: Date;
  @Column('datetime', { precision: 3, nullable: true }) finishedAt!: Date | null;
}
