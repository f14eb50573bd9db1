import { Column, CreateDateColumn, Entity, Index, PrimaryColumn } from 'typeorm';
import { type OperationType } from './operation';

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
  @Index() @Column('char', { length: 36 }) machineId!: string;
  @Column('char', { length: 36, nullable: true }) actorId!: string | null;
  /** Owner and department of the machine the operation works on (for a clone: of the new machine). */
  @Column('char', { length: 36 }) ownerId!: string;
  @Column('char', { length: 36 }) departmentId!: string;
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
}
