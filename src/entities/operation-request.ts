import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';
import { type OperationResource, type OperationType } from './operation';

/**
 * A machine operation as the API accepted it, written before the workflow starts. The workflow writes
 * the `operation` row itself moments later; until then (and after the machine row is gone) this row says
 * who may see the operation and which rooms its events belong to: the machine's owner and department.
 */
@Entity('operation_request')
export class OperationRequest {
  @PrimaryColumn('char', { length: 36 }) id!: string;
  @Column('varchar', { length: 100 }) workflowId!: string;
  @Column('varchar', { length: 20 }) type!: OperationType;
  @Index() @Column('char', { length: 36, nullable: true }) machineId!: string | null;
  @Column('varchar', { length: 20, default: 'vms' }) resource!: OperationResource;
  /** The network or filter scope an operation works on (null for machine operations: see machineId). */
  @Column('char', { length: 36, nullable: true }) resourceId!: string | null;
  @Column('char', { length: 36, nullable: true }) actorId!: string | null;
  /**
   * Owner and department of the machine the operation works on (for a clone: of the new machine); for
   * network and firewall operations the department concerned (null: shared/global, admins only).
   */
  @Column('char', { length: 36, nullable: true }) ownerId!: string | null;
  @Column('char', { length: 36, nullable: true }) departmentId!: string | null;
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
}
