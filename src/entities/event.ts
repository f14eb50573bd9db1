import { Column, CreateDateColumn, Entity, Index, PrimaryGeneratedColumn } from 'typeorm';

/**
 * A durable event (DESIGN decision 7): written by activities, relayed by the API to Socket.IO rooms as
 * `<resource>:<action>`. `dedupeKey` makes the write idempotent when an activity is retried.
 */
@Entity('event')
export class Event {
  @PrimaryGeneratedColumn('increment', { type: 'bigint' }) id!: string;
  @Column('varchar', { length: 40 }) resource!: string;
  @Column('varchar', { length: 40 }) action!: string;
  @Index() @Column('varchar', { length: 64, nullable: true }) resourceId!: string | null;
  @Column('json') payload!: Record<string, unknown>;
  @Column('char', { length: 36, nullable: true }) actorId!: string | null;
  @Column('varchar', { length: 100, nullable: true }) workflowId!: string | null;
  /** Routing: the owner and department of the resource, for the rooms that may see it. */
  @Column('char', { length: 36, nullable: true }) ownerId!: string | null;
  @Column('char', { length: 36, nullable: true }) departmentId!: string | null;
  @Index({ unique: true }) @Column('varchar', { length: 200, nullable: true }) dedupeKey!: string | null;
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
}
