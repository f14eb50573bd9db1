import { Column, CreateDateColumn, Entity, PrimaryColumn } from 'typeorm';

/** Where an idempotent request stands: being handled (`pending`) or answered (`done`). */
export type IdempotencyState = 'pending' | 'done';

/**
 * One `Idempotency-Key` a caller sent with a POST, PATCH or DELETE (DESIGN decision 6). The first
 * request inserts the row (the primary key makes two concurrent requests with one key race to a single
 * winner), pins the ids it will create (`ids`) before any side effect, and stores its response; a retry
 * replays that response and starts nothing new. A request that died mid-way leaves a `pending` row whose
 * lease (`lockedUntil`) expires, and the retry that takes it over reuses the same ids.
 */
@Entity('idempotency_record')
export class IdempotencyRecord {
  @PrimaryColumn('char', { length: 36 }) userId!: string;
  @PrimaryColumn('varchar', { length: 100 }) idempotencyKey!: string;
  @Column('varchar', { length: 10 }) method!: string;
  @Column('varchar', { length: 300 }) path!: string;
  /** sha256 of method, path and body: the same key with another request is refused. */
  @Column('char', { length: 64 }) requestHash!: string;
  @Column('varchar', { length: 10 }) state!: IdempotencyState;
  /** Ids generated for this request, fixed before any side effect so a takeover reuses them. */
  @Column('json') ids!: Record<string, string>;
  @Column('int', { nullable: true }) responseStatus!: number | null;
  @Column('json', { nullable: true }) responseBody!: unknown;
  @Column('datetime', { precision: 3 }) lockedUntil!: Date;
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
}
