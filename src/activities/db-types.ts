/** The types the database activities share: their deps, and what they hand to workflows. */
import { type DataSource } from 'typeorm';
import { type GuestAgentState, type PendingHardware } from '../entities/machine';
import { type MachineStatus } from '../entities/machine-status';
import { type Provisioning } from '../guests/provisioning';
import { type FilterSpec } from '../libvirt/xml';

/** Dependencies of the database activities. */
export interface DbActivityDeps {
  dataSource: DataSource;
}

/** A machine as workflows see it (no secrets). */
export interface MachineView {
  id: string;
  name: string;
  internalName: string;
  status: MachineStatus;
  ownerId: string;
  departmentId: string;
  templateId: string;
  hostName: string;
  storagePool: string;
  cpu: number;
  memoryMiB: number;
  storageGiB: number;
  os: string;
  macAddress: string | null;
  networkName: string | null;
  diskPath: string | null;
  filterName: string;
  departmentFilterName: string;
  linkedClone: boolean;
  sourceMachineId: string | null;
  libvirtUuid: string | null;
  currentOperationId: string | null;
  pendingHardware: PendingHardware | null;
  /** The image its disk is made from (absent in runs recorded before images). */
  imageId?: string | null;
  /** The guest's IP addresses as last seen (guest agent, else DHCP lease). */
  ipAddresses: string[];
  /** Whether the guest's QEMU guest agent is connected. */
  guestAgent: GuestAgentState;
  /** libvirt names of the custom filters its VM filter includes (absent in runs recorded before the firewall). */
  filterIncludes?: string[];
}

/** Everything createMachine needs, resolved and validated. */
export interface CreatePlan {
  cpu: number;
  memoryMiB: number;
  storageGiB: number;
  os: string;
  internalName: string;
  filterName: string;
  departmentFilterName: string;
  networkName: string;
  host: { name: string; storagePool: string; cpus: number; memoryMiB: number };
  /**
   * The filters the VM filter needs on the host, compiled from the database in dependency order (the
   * custom filters, then the department's). Absent in runs recorded before the firewall was compiled.
   */
  departmentFilterSpecs?: FilterSpec[];
  /** The VM's own filter, compiled (a clone's copies its source's rules, includes and services). */
  vmFilterSpec?: FilterSpec;
  /** The OS image the disk is made from (absent: an empty disk). */
  image?: PlannedImage;
}

/** The image a machine's disk is made from, as createMachine needs it. */
export interface PlannedImage {
  id: string;
  /** The image volume's path on the host. */
  path: string;
  format: 'qcow2' | 'raw';
  firmware: 'bios' | 'uefi';
  provisioning: 'cloud-init' | 'windows-unattend' | 'none';
  /** `linked`: a qcow2 overlay on the image; `full`: a copy. */
  diskMode: 'linked' | 'full';
  /** What the first-boot seed provisions (in clear; the secrets stay sealed); absent: no seed. */
  seed?: Provisioning;
}

/** Everything changeMachineDepartment needs, resolved and validated. */
export interface DepartmentChangePlan {
  machine: MachineView;
  /** True when the machine is already in the department: nothing to do. */
  noop: boolean;
  /** The target department's filter name. */
  departmentFilterName: string;
  /** The target department's filter and the custom filters it includes, in dependency order. */
  departmentFilterSpecs: FilterSpec[];
  /** The VM filter, compiled against the target department (its own rules and settings kept). */
  vmFilterSpec: FilterSpec;
  /** What may be unused on the host after the move: the old department's filter (pruned with what it alone includes). */
  pruneCandidates: string[];
}
