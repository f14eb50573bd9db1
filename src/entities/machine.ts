import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { type Provisioning } from '../guests/provisioning';
import { type MachineStatus } from './machine-status';

/** Hardware changes accepted by the hypervisor's persistent config but not yet live (applied at next boot). */
export interface PendingHardware {
  cpu?: number;
  memoryMiB?: number;
}

/**
 * A virtual machine. `internalName` is its libvirt domain name (vmflow-<id>): the user's `name` reaches
 * libvirt only as the domain's title, through the XML builder.
 */
/** Whether a guest's QEMU guest agent answers its channel. */
export type GuestAgentState = 'connected' | 'absent';

@Entity('machine')
@Index(['departmentId', 'name'], { unique: true })
@Index(['createdAt', 'id'])
@Index('IDX_machine_owner_created', ['ownerId', 'createdAt', 'id'])
@Index('IDX_machine_department_created', ['departmentId', 'createdAt', 'id'])
export class Machine {
  @PrimaryColumn('char', { length: 36 }) id!: string;
  @Column('varchar', { length: 100 }) name!: string;
  @Index({ unique: true }) @Column('varchar', { length: 64 }) internalName!: string;
  @Column('char', { length: 36, nullable: true }) libvirtUuid!: string | null;
  @Index() @Column('varchar', { length: 12 }) status!: MachineStatus;
  @Column('char', { length: 36 }) ownerId!: string;
  @Column('char', { length: 36 }) departmentId!: string;
  @Column('char', { length: 36 }) templateId!: string;
  @Column('char', { length: 36 }) hostId!: string;
  @Column('int') cpu!: number;
  @Column('int') memoryMiB!: number;
  @Column('int') storageGiB!: number;
  @Column('varchar', { length: 40 }) os!: string;
  @Column('varchar', { length: 17, nullable: true }) macAddress!: string | null;
  @Column('varchar', { length: 64, nullable: true }) networkName!: string | null;
  /** Path of the machine's disk volume in the host's pool. */
  @Column('varchar', { length: 255, nullable: true }) diskPath!: string | null;
  /** libvirt name of the machine's own nwfilter (vmflow-vm-<id>). */
  @Column('varchar', { length: 64 }) filterName!: string;
  /** The machine this one was cloned from; a linked clone's disk is an overlay on the source's disk. */
  @Column('char', { length: 36, nullable: true }) sourceMachineId!: string | null;
  @Column('boolean', { default: false }) linkedClone!: boolean;
  /** The image the machine's disk was made from (null: none); deleting the image is refused meanwhile. */
  @Index('IDX_machine_image') @Column('char', { length: 36, nullable: true }) imageId!: string | null;
  @Column('json', { nullable: true }) pendingHardware!: PendingHardware | null;
  @Column('text', { nullable: true }) lastError!: string | null;
  @Column('char', { length: 36, nullable: true }) currentOperationId!: string | null;
  /** The user's guest password / product key, sealed (src/secrets.ts); never selected by default. */
  @Column('json', { select: false, nullable: true }) guestSecrets!: Record<string, string> | null;
  /** The guest's IP addresses as the host last saw them (guest agent, else DHCP lease); null: never seen. */
  @Column('json', { nullable: true }) ipAddresses!: string[] | null;
  /** First-boot provisioning in clear (no secret: those are in guestSecrets); null: none (no image). */
  @Column('json', { nullable: true }) provisioning!: Provisioning | null;
  /** Whether the QEMU guest agent in the guest is connected (host-sync reads libvirt's channel state). */
  @Column('varchar', { length: 9, default: 'absent' }) guestAgent!: GuestAgentState;
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
  @UpdateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)', onUpdate: 'CURRENT_TIMESTAMP(3)' })
  updatedAt!: Date;
}
