import { Column, CreateDateColumn, Entity, Index, PrimaryColumn, UpdateDateColumn } from 'typeorm';
import { type Bandwidth, type DhcpHostSpec, type NetworkMode } from '../libvirt/xml';

/** Life of a network row: written by the network workflows only. */
export type NetworkStatus = 'creating' | 'active' | 'updating' | 'deleting' | 'failed';

/**
 * A virtual network on one host. The DB is the truth; the network workflows keep libvirt equal to it.
 * `internalName` (vmflow-net-<id>) and `bridgeName` are what libvirt sees; the user's `name` never
 * reaches libvirt.
 */
@Entity('network')
export class Network {
  @PrimaryColumn('char', { length: 36 }) id!: string;
  @Index({ unique: true }) @Column('varchar', { length: 64 }) name!: string;
  @Column('varchar', { length: 500, nullable: true }) description!: string | null;
  /** libvirt network name (deterministic: vmflow-net-<id>). */
  @Index({ unique: true }) @Column('varchar', { length: 64 }) internalName!: string;
  /** Kernel bridge name, ≤ 15 characters, unique across vmflow. */
  @Index({ unique: true }) @Column('varchar', { length: 15 }) bridgeName!: string;
  @Column('char', { length: 36 }) hostId!: string;
  @Column('varchar', { length: 10 }) mode!: NetworkMode;
  /** Subnet in CIDR form with its network address (`10.20.0.0/24`); null in bridge mode. */
  @Column('varchar', { length: 43, nullable: true }) cidr!: string | null;
  @Column('varchar', { length: 39, nullable: true }) gateway!: string | null;
  @Column('varchar', { length: 39, nullable: true }) dhcpStart!: string | null;
  @Column('varchar', { length: 39, nullable: true }) dhcpEnd!: string | null;
  /** Static DHCP leases. */
  @Column('json', { nullable: true }) staticHosts!: DhcpHostSpec[] | null;
  /** Uplink device for nat/route. */
  @Column('varchar', { length: 15, nullable: true }) forwardDev!: string | null;
  /** Owning department (null: shared, usable by every department). */
  @Index() @Column('char', { length: 36, nullable: true }) departmentId!: string | null;
  @Column('int', { nullable: true }) vlanId!: number | null;
  /** Requested QoS (kbytes/s, kbytes); applied only where the kernel supports it (`qosApplied`). */
  @Column('json', { nullable: true }) bandwidth!: Bandwidth | null;
  @Column('boolean', { default: false }) qosApplied!: boolean;
  @Index() @Column('varchar', { length: 12 }) status!: NetworkStatus;
  @Column('text', { nullable: true }) lastError!: string | null;
  @Column('char', { length: 36, nullable: true }) currentOperationId!: string | null;
  @CreateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)' }) createdAt!: Date;
  @UpdateDateColumn({ precision: 3, default: () => 'CURRENT_TIMESTAMP(3)', onUpdate: 'CURRENT_TIMESTAMP(3)' })
  updatedAt!: Date;
}
