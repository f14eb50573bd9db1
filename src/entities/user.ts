import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';

export type UserRole = 'ADMIN' | 'USER';

/** A person or program that uses vmflow. ADMIN may do everything; USER works on its own VMs. */
@Entity('user')
export class User {
  @PrimaryColumn('char', { length: 36 }) id!: string;
  @Index({ unique: true }) @Column('varchar', { length: 254 }) email!: string;
  @Column('varchar', { length: 100 }) passwordHash!: string;
  @Column('varchar', { length: 10, default: 'USER' }) role!: UserRole;
  @Column('varchar', { length: 100, default: '' }) firstName!: string;
  @Column('varchar', { length: 100, default: '' }) lastName!: string;
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
  @UpdateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)', onUpdate: 'CURRENT_TIMESTAMP(3)' })
  updatedAt!: Date;
}
