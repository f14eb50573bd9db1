/**
 * libvirt domain XML: {@link buildDomainXml} / {@link parseDomainXml}, plus single-device XML for
 * attach/detach/update ({@link buildDiskDeviceXml}, {@link buildInterfaceDeviceXml}).
 *
 * Builders validate the whole spec first and throw {@link XmlSpecError} naming the field; titles,
 * descriptions and metadata values are user text and only ever reach the document as text nodes.
 */
import { type Element } from '@xmldom/xmldom';
import {
  addBandwidth,
  addFilterRef,
  parseBandwidth,
  parseFilterRef,
  validateBandwidth,
  validateFilterRef,
  type Bandwidth,
  type FilterRef,
  type Known,
} from './common';
import {
  addElement,
  addElementNS,
  assignDefined,
  attr,
  child,
  childText,
  children,
  createRoot,
  descend,
  intAttr,
  parseIntStrict,
  parseRoot,
  required,
  scaledBytes,
  serialize,
  setAttrs,
  textOf,
} from './dom';
import { XmlParseError } from './errors';
import {
  assertAbsolutePath,
  assertArray,
  assertBoolean,
  assertInteger,
  assertInterfaceName,
  assertIp,
  assertLibvirtName,
  assertMac,
  assertOneOf,
  assertPositiveInteger,
  assertRecord,
  assertString,
  assertText,
  assertUuid,
  describeValue,
  fail,
} from './validate';

// ---------------------------------------------------------------------------------------------
// Types
// ---------------------------------------------------------------------------------------------

/** Hypervisor type: `kvm` where the host has /dev/kvm, `qemu` (TCG) otherwise. */
export type DomainVirtType = 'kvm' | 'qemu';
/** Disk image formats vmflow uses. */
export type DiskFormat = 'qcow2' | 'raw';
/** Disk buses. `virtio` for performance; `sata`/`ide` for guests without virtio drivers. */
export type DiskBus = 'virtio' | 'sata' | 'ide' | 'scsi';
/** What the guest sees: a disk or a CD-ROM drive. */
export type DiskDevice = 'disk' | 'cdrom';
/** NIC models. */
export type NicModel = 'virtio' | 'e1000' | 'rtl8139';
/** What libvirt does when the guest powers off, reboots or crashes. */
export type LifecycleAction = 'destroy' | 'restart' | 'preserve';
/** Remote display protocol. */
export type GraphicsType = 'vnc' | 'spice';
/** Guest firmware. */
export type DomainFirmware = 'bios' | 'efi';

/** A file-backed disk or CD-ROM of a domain. */
export interface DiskSpec {
  /** Absolute path of the image on the hypervisor (a storage volume's path). */
  path: string;
  /** Image format (libvirt's `<driver type>`). */
  format: DiskFormat;
  /** Guest device name; its prefix must match the bus: `vdX` (virtio), `sdX` (sata/scsi), `hda`–`hdd` (ide). */
  target: string;
  /** Bus the disk hangs off. CD-ROMs cannot be on virtio. */
  bus: DiskBus;
  /** `disk` (default) or `cdrom`. */
  device?: DiskDevice;
  /** Read-only disk (CD-ROMs always are). Not supported by QEMU for ide/sata hard disks. */
  readonly?: boolean;
  /** Boot order, 1 first; unique across all disks and interfaces. */
  boot?: number;
  /**
   * The base image of a qcow2 overlay (a linked disk on an OS image). Optional even then: libvirt reads
   * the chain from the qcow2 header; giving it pins the base's format (no probing) in the definition.
   */
  backingStore?: { path: string; format: DiskFormat };
}

/** A network interface of a domain. */
export interface InterfaceSpec {
  /** `network`: a libvirt network by name; `bridge`: an existing host bridge by name. */
  type: 'network' | 'bridge';
  /** The libvirt network name or the host bridge name. */
  source: string;
  /** Guest MAC (unicast). Omitted: libvirt generates one (52:54:00:…). */
  mac?: string;
  /** NIC model; defaults to `virtio` (libvirt's own default on x86 would be a slow emulated NIC). */
  model?: NicModel;
  /** Host-side tap name; omitted: libvirt picks `vnetN`. */
  targetDev?: string;
  /** nwfilter applied to this NIC (libvirt creates the binding when the domain starts). */
  filterref?: FilterRef;
  /** QoS for this NIC; `inbound.floor` only for type `network`. */
  bandwidth?: Bandwidth;
  /** PXE boot order, unique across all disks and interfaces. */
  boot?: number;
}

/** Remote display. */
export interface GraphicsSpec {
  /** VNC or SPICE. */
  type: GraphicsType;
  /**
   * Address to listen on; default `127.0.0.1`. Wildcards (`0.0.0.0`, `::`) are refused: a console
   * must not be exposed on every host interface (VNC passwords are 8 characters at most); reach it
   * through a proxy on loopback, or give an explicit address of a management interface.
   */
  listen?: string;
  /** Console password (VNC: 1–8 characters, the protocol ignores the rest). */
  password?: string;
  /** Fixed port (VNC ≥ 5900). Omitted: libvirt assigns one (autoport). */
  port?: number;
}

/** CPU feature switches. Both on by default: ACPI is what makes graceful shutdown work. */
export interface DomainFeatures {
  /** ACPI (power button → guest shutdown). Default true. */
  acpi?: boolean;
  /** APIC. Default true. */
  apic?: boolean;
}

/** Everything vmflow needs to define a domain. */
export interface DomainSpec {
  /** libvirt name: 1–64 of `[A-Za-z0-9_.+-]`, no leading `-`/`.` (vmflow generates `vmflow-<id>`). */
  name: string;
  /** libvirt UUID; omitted: libvirt generates one. */
  uuid?: string;
  /** User text, single line, ≤ 255 characters. */
  title?: string;
  /** User text, may span lines (`\n`), ≤ 65536 characters. */
  description?: string;
  /** `kvm` or `qemu` (TCG): choose from host capabilities, never hard-code. */
  type: DomainVirtType;
  /** Guest architecture. */
  arch?: 'x86_64';
  /** Machine type, e.g. `pc` or `q35`. */
  machine?: string;
  /**
   * Firmware: `bios` (SeaBIOS, the default) or `efi` (`<os firmware='efi'>`: libvirt picks an OVMF build
   * from the firmware descriptors when the domain starts; Debian's `ovmf` package provides them).
   */
  firmware?: DomainFirmware;
  /**
   * SMBIOS system serial number (`<sysinfo type='smbios'>`, `<smbios mode='sysinfo'/>`): vmflow puts the
   * machine id there, where an in-guest agent reads it (`/sys/class/dmi/id/product_serial`). The SMBIOS
   * system UUID is the domain's `uuid`, which QEMU sets by itself.
   */
  smbiosSerial?: string;
  /** Current memory, MiB. */
  memoryMiB: number;
  /** Maximum memory (balloon ceiling), MiB; ≥ memoryMiB. Default memoryMiB. */
  maxMemoryMiB?: number;
  /** vCPUs online at start. */
  vcpus: number;
  /** vCPU ceiling for hot-plug; ≥ vcpus. Default vcpus. */
  maxVcpus?: number;
  /** Disks in the order the guest sees them. */
  disks: DiskSpec[];
  /** NICs. */
  interfaces: InterfaceSpec[];
  /** Remote display; omitted: none. */
  graphics?: GraphicsSpec;
  /** QEMU guest agent channel (`org.qemu.guest_agent.0`). */
  guestAgent?: boolean;
  /** vmflow's in-guest agent channel (`org.vmflow.agent.0`). */
  vmflowAgent?: boolean;
  /** vmflow bookkeeping (machineId, operationId…) stored in the domain's `<metadata>`. */
  metadata?: Record<string, string>;
  /** On guest power-off. Default `destroy`. `preserve` is refused (QEMU driver rule). */
  onPoweroff?: LifecycleAction;
  /** On guest reboot. Default `restart`. `preserve` is refused (QEMU driver rule). */
  onReboot?: LifecycleAction;
  /** On guest crash. Default `destroy`. */
  onCrash?: LifecycleAction;
  /** Guest clock: `utc` (default, Linux) or `localtime` (Windows). */
  clock?: 'utc' | 'localtime';
  /** ACPI/APIC switches. */
  features?: DomainFeatures;
  /** Serial console on a pty (`virsh console`). Default true. */
  serialConsole?: boolean;
  /** virtio memory balloon. Default true (needed to change memory of a running guest). */
  memballoon?: boolean;
}

/** A disk as read back from libvirt. */
export interface ParsedDisk {
  /** Source file (or block device) path; `''` for an empty CD-ROM. */
  path: string;
  /** Image format. */
  format: Known<DiskFormat>;
  /** Guest device name. */
  target: string;
  /** Bus. */
  bus: Known<DiskBus>;
  /** `disk`, `cdrom`, … */
  device: Known<DiskDevice>;
  /** Whether the disk is read-only. */
  readonly: boolean;
  /** Boot order, when set. */
  boot?: number;
  /** The first backing image, when the definition (or live XML) names one. */
  backingStore?: { path: string; format?: Known<DiskFormat> };
}

/** A NIC as read back from libvirt. */
export interface ParsedInterface {
  /** Interface type (`network`, `bridge`, or another libvirt type). */
  type: Known<InterfaceSpec['type']>;
  /** Network or bridge name (`''` for other types). */
  source: string;
  /** Guest MAC. */
  mac?: string;
  /** Host tap name (live XML). */
  targetDev?: string;
  /** NIC model. */
  model?: Known<NicModel>;
  /** nwfilter reference. */
  filterref?: FilterRef;
  /** QoS. */
  bandwidth?: Bandwidth;
  /** Boot order. */
  boot?: number;
}

/** Graphics as read back from libvirt (the password itself is only returned with secure flags). */
export interface ParsedGraphics {
  /** `vnc`, `spice`, … */
  type: Known<GraphicsType>;
  /** Listen address. */
  listen?: string;
  /** Port, when fixed or assigned (live XML). */
  port?: number;
  /** Whether libvirt picks the port. */
  autoport: boolean;
  /** Whether a password is set (only visible when libvirt returns secure XML). */
  password?: string;
}

/** A domain as read back from libvirt (`virDomainGetXMLDesc`), normalised to MiB and counts. */
export interface ParsedDomain {
  /** libvirt name. */
  name: string;
  /** UUID. */
  uuid?: string;
  /** Running domain id (live XML only). */
  id?: number;
  /** Title text, exactly as stored. */
  title?: string;
  /** Description text, exactly as stored. */
  description?: string;
  /** Hypervisor type. */
  type: Known<DomainVirtType>;
  /** Guest architecture. */
  arch?: string;
  /** Machine type (libvirt expands `pc` to e.g. `pc-i440fx-7.2`). */
  machine?: string;
  /** `<os firmware>`, when set. */
  firmware?: Known<DomainFirmware>;
  /** SMBIOS system serial, when the domain has `<sysinfo type='smbios'>` with one. */
  smbiosSerial?: string;
  /** Current memory, MiB. */
  memoryMiB: number;
  /** Maximum memory, MiB. */
  maxMemoryMiB: number;
  /** vCPUs online. */
  vcpus: number;
  /** vCPU ceiling. */
  maxVcpus: number;
  /** Disks. */
  disks: ParsedDisk[];
  /** NICs. */
  interfaces: ParsedInterface[];
  /** Graphics, if any. */
  graphics?: ParsedGraphics;
  /** Whether the QEMU guest agent channel is present. */
  guestAgent: boolean;
  /** Whether vmflow's agent channel is present. */
  vmflowAgent: boolean;
  /** Whether a serial console is present. */
  serialConsole: boolean;
  /** Whether a virtio balloon is present. */
  memballoon: boolean;
  /** Features. */
  features: Required<DomainFeatures>;
  /** Clock offset. */
  clock?: string;
  /** Lifecycle actions. */
  onPoweroff?: string;
  /** Lifecycle actions. */
  onReboot?: string;
  /** Lifecycle actions. */
  onCrash?: string;
  /** vmflow metadata (empty when none). */
  metadata: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------------------------

/** XML namespace of vmflow's domain metadata element. */
export const VMFLOW_METADATA_NS = 'https://vmflow.dev/xmlns/machine/1';
/** Prefix used for {@link VMFLOW_METADATA_NS}. */
export const VMFLOW_METADATA_PREFIX = 'vmflow';
/** Local name of vmflow's metadata element (`<vmflow:machine>`). */
export const VMFLOW_METADATA_ELEMENT = 'machine';
/** virtio-serial channel name of the QEMU guest agent. */
export const GUEST_AGENT_CHANNEL = 'org.qemu.guest_agent.0';
/** virtio-serial channel name of vmflow's in-guest agent. */
export const VMFLOW_AGENT_CHANNEL = 'org.vmflow.agent.0';
/** How often a guest's balloon driver reports its memory to the host (seconds). */
export const MEMBALLOON_STATS_PERIOD_S = 10;

/** Largest memory accepted, MiB (16 TiB). */
export const MAX_MEMORY_MIB = 16 * 1024 * 1024;
/** Largest vCPU count accepted (QEMU's ceiling for q35). */
export const MAX_VCPUS = 4096;
/** Limits of user text. */
export const TITLE_MAX_LENGTH = 255;
/** Limits of user text. */
export const DESCRIPTION_MAX_LENGTH = 65536;
/** Limits of metadata: keys and values. */
export const METADATA_MAX_KEYS = 64;
/** Limits of metadata: value length. */
export const METADATA_VALUE_MAX_LENGTH = 4096;

const DISK_TARGET: Record<DiskBus, { re: RegExp; example: string }> = {
  virtio: { re: /^vd[a-z]{1,2}$/, example: 'vda' },
  sata: { re: /^sd[a-z]{1,2}$/, example: 'sda' },
  scsi: { re: /^sd[a-z]{1,2}$/, example: 'sda' },
  ide: { re: /^hd[a-d]$/, example: 'hda' },
};

/** Tap-name prefixes libvirt reserves for names it generates (it discards such names on define). */
const RESERVED_TAP_PREFIXES = ['vnet', 'vif', 'macvtap', 'macvlan'];
const METADATA_KEY = /^[A-Za-z_][A-Za-z0-9_-]{0,63}$/;
const MACHINE_TYPE = /^[A-Za-z0-9_.-]{1,64}$/;

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

function prefixed(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}

/** Validates one disk; `f` prefixes field names (`disks[0]`, or `''` for a lone device). */
function validateDisk(value: unknown, f: string): DiskSpec {
  const disk = assertRecord(value, f || 'disk');
  assertAbsolutePath(disk.path, prefixed(f, 'path'));
  assertOneOf(disk.format, ['qcow2', 'raw'] as const, prefixed(f, 'format'));
  const bus = assertOneOf(disk.bus, ['virtio', 'sata', 'ide', 'scsi'] as const, prefixed(f, 'bus'));
  const target = assertString(disk.target, prefixed(f, 'target'));
  const rule = DISK_TARGET[bus];
  if (!rule.re.test(target)) {
    fail(
      prefixed(f, 'target'),
      `must be a ${bus} device name like '${rule.example}', got ${describeValue(target)}`,
    );
  }
  const device =
    disk.device === undefined
      ? 'disk'
      : assertOneOf(disk.device, ['disk', 'cdrom'] as const, prefixed(f, 'device'));
  if (device === 'cdrom' && bus === 'virtio') {
    fail(prefixed(f, 'bus'), "a cdrom cannot be on the virtio bus; use 'sata', 'scsi' or 'ide'");
  }
  if (disk.readonly !== undefined) {
    const ro = assertBoolean(disk.readonly, prefixed(f, 'readonly'));
    if (ro && device === 'disk' && (bus === 'ide' || bus === 'sata')) {
      fail(prefixed(f, 'readonly'), `QEMU does not support read-only ${bus} hard disks; use virtio or scsi`);
    }
  }
  if (disk.boot !== undefined) assertInteger(disk.boot, prefixed(f, 'boot'), { min: 1, max: 1000 });
  if (disk.backingStore !== undefined) {
    const b = assertRecord(disk.backingStore, prefixed(f, 'backingStore'));
    if (disk.format !== 'qcow2')
      fail(prefixed(f, 'backingStore'), 'only a qcow2 disk can have a backing image');
    if (device === 'cdrom') fail(prefixed(f, 'backingStore'), 'a cdrom has no backing image');
    const base = assertAbsolutePath(b.path, prefixed(f, 'backingStore.path'));
    if (base === disk.path) fail(prefixed(f, 'backingStore.path'), 'must not be the disk itself');
    assertOneOf(b.format, ['qcow2', 'raw'] as const, prefixed(f, 'backingStore.format'));
  }
  return disk as unknown as DiskSpec;
}

/** Validates one NIC; `f` prefixes field names. */
function validateInterface(value: unknown, f: string): InterfaceSpec {
  const iface = assertRecord(value, f || 'interface');
  const type = assertOneOf(iface.type, ['network', 'bridge'] as const, prefixed(f, 'type'));
  if (type === 'network') assertLibvirtName(iface.source, prefixed(f, 'source'));
  else assertInterfaceName(iface.source, prefixed(f, 'source'));
  if (iface.mac !== undefined) assertMac(iface.mac, prefixed(f, 'mac'));
  if (iface.model !== undefined)
    assertOneOf(iface.model, ['virtio', 'e1000', 'rtl8139'] as const, prefixed(f, 'model'));
  if (iface.targetDev !== undefined) {
    const dev = assertInterfaceName(iface.targetDev, prefixed(f, 'targetDev'));
    const reserved = RESERVED_TAP_PREFIXES.find((p) => dev.startsWith(p));
    if (reserved) {
      fail(
        prefixed(f, 'targetDev'),
        `must not start with '${reserved}': libvirt reserves that prefix for generated names`,
      );
    }
  }
  if (iface.filterref !== undefined) validateFilterRef(iface.filterref, prefixed(f, 'filterref'));
  if (iface.bandwidth !== undefined)
    validateBandwidth(iface.bandwidth, prefixed(f, 'bandwidth'), type === 'network');
  if (iface.boot !== undefined) assertInteger(iface.boot, prefixed(f, 'boot'), { min: 1, max: 1000 });
  return iface as unknown as InterfaceSpec;
}

function validateGraphics(value: unknown, f: string): GraphicsSpec {
  const g = assertRecord(value, f);
  const type = assertOneOf(g.type, ['vnc', 'spice'] as const, `${f}.type`);
  if (g.listen !== undefined) {
    const ip = assertIp(g.listen, `${f}.listen`);
    if (ip.value === 0n) {
      fail(
        `${f}.listen`,
        'must not be a wildcard address (0.0.0.0 or ::): the console would be reachable on every host interface; use 127.0.0.1 or one explicit address',
      );
    }
  }
  if (g.password !== undefined) {
    assertText(g.password, `${f}.password`, { maxLength: type === 'vnc' ? 8 : 64 });
  }
  if (g.port !== undefined) {
    assertInteger(g.port, `${f}.port`, { min: type === 'vnc' ? 5900 : 1, max: 65535 });
  }
  return g as unknown as GraphicsSpec;
}

/** Validates vmflow metadata: keys are XML-name-safe identifiers, values user text (may be empty). */
function validateMetadata(value: unknown, f: string): Record<string, string> {
  const md = assertRecord(value, f);
  const keys = Object.keys(md);
  if (keys.length > METADATA_MAX_KEYS)
    fail(f, `must have at most ${METADATA_MAX_KEYS} keys, got ${keys.length}`);
  for (const key of keys) {
    if (!METADATA_KEY.test(key)) {
      fail(`${f}.${key}`, 'key must be 1-64 characters from A-Z a-z 0-9 _ - starting with a letter or _');
    }
    const v = md[key];
    if (v !== '') assertText(v, `${f}.${key}`, { maxLength: METADATA_VALUE_MAX_LENGTH, multiLine: true });
  }
  return md as Record<string, string>;
}

/**
 * Validates a whole {@link DomainSpec}, throwing {@link XmlSpecError} on the first problem. Exposed so
 * the API can validate a request without building XML.
 */
export function validateDomainSpec(value: unknown): DomainSpec {
  const spec = assertRecord(value, 'spec');
  assertLibvirtName(spec.name, 'name');
  if (spec.uuid !== undefined) assertUuid(spec.uuid, 'uuid');
  if (spec.title !== undefined) assertText(spec.title, 'title', { maxLength: TITLE_MAX_LENGTH });
  if (spec.description !== undefined) {
    assertText(spec.description, 'description', { maxLength: DESCRIPTION_MAX_LENGTH, multiLine: true });
  }
  assertOneOf(spec.type, ['kvm', 'qemu'] as const, 'type');
  if (spec.arch !== undefined) assertOneOf(spec.arch, ['x86_64'] as const, 'arch');
  if (spec.machine !== undefined) {
    const m = assertString(spec.machine, 'machine');
    if (!MACHINE_TYPE.test(m))
      fail('machine', `must be a machine type like 'pc' or 'q35', got ${describeValue(m)}`);
  }
  if (spec.firmware !== undefined) assertOneOf(spec.firmware, ['bios', 'efi'] as const, 'firmware');
  if (spec.smbiosSerial !== undefined) assertText(spec.smbiosSerial, 'smbiosSerial', { maxLength: 64 });

  const memory = assertPositiveInteger(spec.memoryMiB, 'memoryMiB', MAX_MEMORY_MIB);
  if (spec.maxMemoryMiB !== undefined) {
    const max = assertPositiveInteger(spec.maxMemoryMiB, 'maxMemoryMiB', MAX_MEMORY_MIB);
    if (max < memory) fail('maxMemoryMiB', `must be at least memoryMiB (${memory}), got ${max}`);
  }
  const vcpus = assertPositiveInteger(spec.vcpus, 'vcpus', MAX_VCPUS);
  if (spec.maxVcpus !== undefined) {
    const max = assertPositiveInteger(spec.maxVcpus, 'maxVcpus', MAX_VCPUS);
    if (vcpus > max) fail('vcpus', `must not exceed maxVcpus (${max}), got ${vcpus}`);
  }

  const boots = new Map<number, string>();
  const claimBoot = (boot: number | undefined, field: string): void => {
    if (boot === undefined) return;
    const other = boots.get(boot);
    if (other) fail(field, `boot order ${boot} is already used by ${other}`);
    boots.set(boot, field.replace(/\.boot$/, ''));
  };

  const disks = assertArray(spec.disks, 'disks');
  const targets = new Map<string, number>();
  disks.forEach((d, i) => {
    const disk = validateDisk(d, `disks[${i}]`);
    const prev = targets.get(disk.target);
    if (prev !== undefined) fail(`disks[${i}].target`, `'${disk.target}' is already used by disks[${prev}]`);
    targets.set(disk.target, i);
    claimBoot(disk.boot, `disks[${i}].boot`);
  });

  const ifaces = assertArray(spec.interfaces, 'interfaces');
  const macs = new Map<string, number>();
  const taps = new Map<string, number>();
  ifaces.forEach((n, i) => {
    const iface = validateInterface(n, `interfaces[${i}]`);
    if (iface.mac !== undefined) {
      const key = iface.mac.toLowerCase();
      const prev = macs.get(key);
      if (prev !== undefined)
        fail(`interfaces[${i}].mac`, `${iface.mac} is already used by interfaces[${prev}]`);
      macs.set(key, i);
    }
    if (iface.targetDev !== undefined) {
      const prev = taps.get(iface.targetDev);
      if (prev !== undefined)
        fail(`interfaces[${i}].targetDev`, `'${iface.targetDev}' is already used by interfaces[${prev}]`);
      taps.set(iface.targetDev, i);
    }
    claimBoot(iface.boot, `interfaces[${i}].boot`);
  });

  if (spec.graphics !== undefined) validateGraphics(spec.graphics, 'graphics');
  for (const key of ['guestAgent', 'vmflowAgent', 'serialConsole', 'memballoon'] as const) {
    if (spec[key] !== undefined) assertBoolean(spec[key], key);
  }
  if (spec.metadata !== undefined) validateMetadata(spec.metadata, 'metadata');

  const actions = ['destroy', 'restart', 'preserve'] as const;
  const onPoweroff =
    spec.onPoweroff === undefined ? 'destroy' : assertOneOf(spec.onPoweroff, actions, 'onPoweroff');
  const onReboot = spec.onReboot === undefined ? 'restart' : assertOneOf(spec.onReboot, actions, 'onReboot');
  if (spec.onCrash !== undefined) assertOneOf(spec.onCrash, actions, 'onCrash');
  if (onPoweroff === 'preserve')
    fail('onPoweroff', "'preserve' is not supported by libvirt's QEMU driver here (only on crash)");
  if (onReboot === 'preserve')
    fail('onReboot', "'preserve' is not supported by libvirt's QEMU driver here (only on crash)");
  if (onPoweroff === 'restart' && onReboot === 'destroy') {
    fail('onReboot', "libvirt's QEMU driver refuses onReboot 'destroy' together with onPoweroff 'restart'");
  }
  if (spec.clock !== undefined) assertOneOf(spec.clock, ['utc', 'localtime'] as const, 'clock');
  if (spec.firmware === 'efi' && (spec.features as DomainFeatures | undefined)?.acpi === false)
    fail('features.acpi', 'UEFI firmware needs ACPI on x86 (libvirt refuses efi without it)');
  if (spec.features !== undefined) {
    const feats = assertRecord(spec.features, 'features');
    for (const key of Object.keys(feats)) {
      if (key !== 'acpi' && key !== 'apic')
        fail(`features.${key}`, 'is not a supported feature (acpi, apic)');
      assertBoolean(feats[key], `features.${key}`);
    }
  }
  return spec as unknown as DomainSpec;
}

// ---------------------------------------------------------------------------------------------
// Building
// ---------------------------------------------------------------------------------------------

/** Fills an empty `<disk>` element from a validated spec. */
function fillDisk(el: Element, disk: DiskSpec): void {
  const device = disk.device ?? 'disk';
  setAttrs(el, { type: 'file', device });
  addElement(el, 'driver', { name: 'qemu', type: disk.format });
  addElement(el, 'source', { file: disk.path });
  if (disk.backingStore) {
    const b = addElement(el, 'backingStore', { type: 'file' });
    addElement(b, 'format', { type: disk.backingStore.format });
    addElement(b, 'source', { file: disk.backingStore.path });
  }
  addElement(el, 'target', { dev: disk.target, bus: disk.bus });
  if (disk.readonly || device === 'cdrom') addElement(el, 'readonly');
  if (disk.boot !== undefined) addElement(el, 'boot', { order: disk.boot });
}

/** Fills an empty `<interface>` element from a validated spec. */
function fillInterface(el: Element, iface: InterfaceSpec): void {
  el.setAttribute('type', iface.type);
  if (iface.mac !== undefined) addElement(el, 'mac', { address: iface.mac.toLowerCase() });
  addElement(el, 'source', iface.type === 'network' ? { network: iface.source } : { bridge: iface.source });
  if (iface.targetDev !== undefined) addElement(el, 'target', { dev: iface.targetDev });
  addElement(el, 'model', { type: iface.model ?? 'virtio' });
  if (iface.filterref) addFilterRef(el, iface.filterref);
  if (iface.bandwidth) addBandwidth(el, iface.bandwidth);
  if (iface.boot !== undefined) addElement(el, 'boot', { order: iface.boot });
}

function addChannel(parent: Element, name: string): void {
  const el = addElement(parent, 'channel', { type: 'unix' });
  // No source path: libvirt generates one under its per-domain channel directory.
  addElement(el, 'target', { type: 'virtio', name });
}

/**
 * Builds the vmflow `<vmflow:machine>` metadata element on its own, e.g. for
 * `virDomainSetMetadata(type=ELEMENT, key='vmflow', uri=VMFLOW_METADATA_NS)` on a running domain.
 */
export function buildVmflowMetadataXml(metadata: Record<string, string>): string {
  validateMetadata(metadata, 'metadata');
  const root = createRoot(METADATA_QNAME, VMFLOW_METADATA_NS);
  fillMetadata(root, metadata);
  return serialize(root);
}

const METADATA_QNAME = `${VMFLOW_METADATA_PREFIX}:${VMFLOW_METADATA_ELEMENT}`;

/** Adds one `<vmflow:KEY>value</vmflow:KEY>` child per entry. */
function fillMetadata(el: Element, metadata: Record<string, string>): void {
  for (const [key, value] of Object.entries(metadata)) {
    addElementNS(el, VMFLOW_METADATA_NS, `${VMFLOW_METADATA_PREFIX}:${key}`, value);
  }
}

/**
 * Builds libvirt domain XML for `virDomainDefineXML`.
 *
 * Emits memory as `<memory>` (maximum) + `<currentMemory>`, vCPUs as `<vcpu current=…>max</vcpu>`,
 * ACPI/APIC on, a pty serial console, a virtio balloon, per-device boot order, and agent channels
 * on request. Throws {@link XmlSpecError} (naming the field) for any invalid value.
 */
export function buildDomainXml(spec: DomainSpec): string {
  validateDomainSpec(spec);
  const root = createRoot('domain');
  root.setAttribute('type', spec.type);
  addElement(root, 'name', {}, spec.name);
  if (spec.uuid) addElement(root, 'uuid', {}, spec.uuid.toLowerCase());
  if (spec.title !== undefined) addElement(root, 'title', {}, spec.title);
  if (spec.description !== undefined) addElement(root, 'description', {}, spec.description);
  if (spec.metadata && Object.keys(spec.metadata).length > 0) {
    fillMetadata(
      addElementNS(addElement(root, 'metadata'), VMFLOW_METADATA_NS, METADATA_QNAME),
      spec.metadata,
    );
  }

  const maxMemory = spec.maxMemoryMiB ?? spec.memoryMiB;
  addElement(root, 'memory', { unit: 'MiB' }, maxMemory);
  addElement(root, 'currentMemory', { unit: 'MiB' }, spec.memoryMiB);
  const maxVcpus = spec.maxVcpus ?? spec.vcpus;
  addElement(
    root,
    'vcpu',
    { placement: 'static', current: maxVcpus === spec.vcpus ? undefined : spec.vcpus },
    maxVcpus,
  );

  if (spec.smbiosSerial !== undefined) {
    const system = addElement(addElement(root, 'sysinfo', { type: 'smbios' }), 'system');
    addElement(system, 'entry', { name: 'serial' }, spec.smbiosSerial);
  }

  const os = addElement(root, 'os', { firmware: spec.firmware === 'efi' ? 'efi' : undefined });
  addElement(os, 'type', { arch: spec.arch ?? 'x86_64', machine: spec.machine }, 'hvm');
  if (spec.smbiosSerial !== undefined) addElement(os, 'smbios', { mode: 'sysinfo' });

  const features = addElement(root, 'features');
  if (spec.features?.acpi !== false) addElement(features, 'acpi');
  if (spec.features?.apic !== false) addElement(features, 'apic');

  addElement(root, 'clock', { offset: spec.clock ?? 'utc' });
  addElement(root, 'on_poweroff', {}, spec.onPoweroff ?? 'destroy');
  addElement(root, 'on_reboot', {}, spec.onReboot ?? 'restart');
  addElement(root, 'on_crash', {}, spec.onCrash ?? 'destroy');

  const devices = addElement(root, 'devices');
  for (const disk of spec.disks) fillDisk(addElement(devices, 'disk'), disk);
  if (spec.disks.some((d) => d.bus === 'scsi')) {
    addElement(devices, 'controller', { type: 'scsi', index: 0, model: 'virtio-scsi' });
  }
  for (const iface of spec.interfaces) fillInterface(addElement(devices, 'interface'), iface);
  if (spec.serialConsole !== false) {
    addElement(addElement(devices, 'serial', { type: 'pty' }), 'target', { port: 0 });
    addElement(addElement(devices, 'console', { type: 'pty' }), 'target', { type: 'serial', port: 0 });
  }
  if (spec.guestAgent) addChannel(devices, GUEST_AGENT_CHANNEL);
  if (spec.vmflowAgent) addChannel(devices, VMFLOW_AGENT_CHANNEL);
  if (spec.graphics) {
    const g = spec.graphics;
    const el = addElement(devices, 'graphics', {
      type: g.type,
      port: g.port,
      autoport: g.port === undefined ? 'yes' : 'no',
      passwd: g.password,
    });
    addElement(el, 'listen', { type: 'address', address: g.listen ?? '127.0.0.1' });
  }
  if (spec.memballoon !== false) {
    // The balloon's statistics period makes the guest report its memory (libvirt's `balloon.available`,
    // `balloon.usable`: the metrics' guest-reported memory, docs/metrics.md).
    const balloon = addElement(devices, 'memballoon', { model: 'virtio' });
    addElement(balloon, 'stats', { period: MEMBALLOON_STATS_PERIOD_S });
  }
  return serialize(root);
}

/** Builds `<disk>` XML for `virDomainAttachDeviceFlags` / detach / update. Fields are named without prefix. */
export function buildDiskDeviceXml(disk: DiskSpec): string {
  validateDisk(disk, '');
  const root = createRoot('disk');
  fillDisk(root, disk);
  return serialize(root);
}

/** Builds `<interface>` XML for `virDomainAttachDeviceFlags` / detach / update. */
export function buildInterfaceDeviceXml(iface: InterfaceSpec): string {
  validateInterface(iface, '');
  const root = createRoot('interface');
  fillInterface(root, iface);
  return serialize(root);
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

const MIB = 1024 * 1024;

function parseDisk(el: Element): ParsedDisk {
  const source = child(el, 'source');
  const target = child(el, 'target');
  const disk: ParsedDisk = {
    path: attr(source, 'file') ?? attr(source, 'dev') ?? attr(source, 'name') ?? '',
    format: attr(child(el, 'driver'), 'type') ?? 'raw',
    target: required(attr(target, 'dev'), 'disk target dev'),
    bus: attr(target, 'bus') ?? '',
    device: attr(el, 'device') ?? 'disk',
    readonly: child(el, 'readonly') !== undefined,
  };
  const boot = intAttr(child(el, 'boot'), 'order', 'disk boot order');
  if (boot !== undefined) disk.boot = boot;
  const backing = child(el, 'backingStore');
  const backingPath = attr(descend(backing, 'source'), 'file');
  if (backing && backingPath !== undefined) {
    const format = attr(child(backing, 'format'), 'type');
    disk.backingStore = format === undefined ? { path: backingPath } : { path: backingPath, format };
  }
  return disk;
}

function parseInterface(el: Element): ParsedInterface {
  const type = required(attr(el, 'type'), 'interface type');
  const source = child(el, 'source');
  const iface: ParsedInterface = {
    type,
    source:
      (type === 'network'
        ? attr(source, 'network')
        : type === 'bridge'
          ? attr(source, 'bridge')
          : undefined) ?? '',
  };
  const mac = attr(child(el, 'mac'), 'address');
  const targetDev = attr(child(el, 'target'), 'dev');
  const model = attr(child(el, 'model'), 'type');
  const filterref = child(el, 'filterref');
  const bandwidth = parseBandwidth(child(el, 'bandwidth'));
  const boot = intAttr(child(el, 'boot'), 'order', 'interface boot order');
  if (mac !== undefined) iface.mac = mac;
  if (targetDev !== undefined) iface.targetDev = targetDev;
  if (model !== undefined) iface.model = model;
  if (filterref) iface.filterref = parseFilterRef(filterref);
  if (bandwidth) iface.bandwidth = bandwidth;
  if (boot !== undefined) iface.boot = boot;
  return iface;
}

function parseGraphics(el: Element): ParsedGraphics {
  const port = intAttr(el, 'port', 'graphics port');
  const g: ParsedGraphics = {
    type: required(attr(el, 'type'), 'graphics type'),
    autoport: attr(el, 'autoport') === 'yes' || port === undefined || port === -1,
  };
  const listen = attr(child(el, 'listen'), 'address') ?? attr(el, 'listen');
  if (listen !== undefined) g.listen = listen;
  if (port !== undefined && port !== -1) g.port = port;
  const password = attr(el, 'passwd');
  if (password !== undefined) g.password = password;
  return g;
}

function parseMetadata(root: Element): Record<string, string> {
  const entries: Array<[string, string]> = [];
  const metadata = child(root, 'metadata');
  for (const holder of metadata ? children(metadata) : []) {
    if (holder.namespaceURI !== VMFLOW_METADATA_NS || holder.localName !== VMFLOW_METADATA_ELEMENT) continue;
    for (const item of children(holder)) {
      if (item.namespaceURI === VMFLOW_METADATA_NS && item.localName)
        entries.push([item.localName, item.textContent ?? '']);
    }
  }
  // fromEntries: a key named `__proto__` stays an own property.
  return Object.fromEntries(entries);
}

function mib(bytes: number | undefined): number | undefined {
  return bytes === undefined ? undefined : bytes / MIB;
}

/**
 * Parses domain XML as returned by libvirt (live or inactive) into a {@link ParsedDomain}. Memory is
 * converted to MiB from whatever unit libvirt used (KiB in practice). Devices vmflow does not model
 * (controllers, video, addresses, aliases) are ignored. Throws {@link XmlParseError} on malformed
 * XML or a missing required element.
 */
export function parseDomainXml(xml: string): ParsedDomain {
  const root = parseRoot(xml, 'domain');
  const maxMemoryMiB = required(
    mib(scaledBytes(child(root, 'memory'), 'KiB', 'domain memory')),
    'domain <memory>',
  );
  const memoryMiB =
    mib(scaledBytes(child(root, 'currentMemory'), 'KiB', 'domain currentMemory')) ?? maxMemoryMiB;
  const vcpuEl = child(root, 'vcpu');
  const maxVcpus = required(parseIntStrict(textOf(vcpuEl), 'domain vcpu'), 'domain <vcpu>');
  const vcpus = intAttr(vcpuEl, 'current', 'domain vcpu current') ?? maxVcpus;
  const devices = child(root, 'devices');
  const list = (name: string): Element[] => (devices ? children(devices, name) : []);
  const channels = list('channel').map((c) => attr(child(c, 'target'), 'name'));
  const features = child(root, 'features');

  const domain: ParsedDomain = {
    name: required(childText(root, 'name'), 'domain <name>'),
    type: required(attr(root, 'type'), 'domain type'),
    memoryMiB,
    maxMemoryMiB,
    vcpus,
    maxVcpus,
    disks: list('disk').map(parseDisk),
    interfaces: list('interface').map(parseInterface),
    guestAgent: channels.includes(GUEST_AGENT_CHANNEL),
    vmflowAgent: channels.includes(VMFLOW_AGENT_CHANNEL),
    serialConsole: list('serial').length > 0 || list('console').length > 0,
    memballoon: list('memballoon').some((m) => attr(m, 'model') !== 'none'),
    features: {
      acpi: features !== undefined && child(features, 'acpi') !== undefined,
      apic: features !== undefined && child(features, 'apic') !== undefined,
    },
    metadata: parseMetadata(root),
  };
  const optional: Partial<ParsedDomain> = {
    uuid: childText(root, 'uuid'),
    id: intAttr(root, 'id', 'domain id'),
    title: textOf(child(root, 'title')),
    description: textOf(child(root, 'description')),
    arch: attr(descend(root, 'os', 'type'), 'arch'),
    machine: attr(descend(root, 'os', 'type'), 'machine'),
    firmware: attr(child(root, 'os'), 'firmware'),
    smbiosSerial: smbiosSerialOf(root),
    clock: attr(child(root, 'clock'), 'offset'),
    onPoweroff: childText(root, 'on_poweroff'),
    onReboot: childText(root, 'on_reboot'),
    onCrash: childText(root, 'on_crash'),
  };
  assignDefined(domain, optional);
  if (domain.id === -1) delete domain.id;
  const graphics = list('graphics')[0];
  if (graphics) domain.graphics = parseGraphics(graphics);
  if (!Number.isFinite(domain.memoryMiB)) throw new XmlParseError('domain memory is not a number');
  return domain;
}

/** The SMBIOS system serial of `<sysinfo type='smbios'>`, if any. */
function smbiosSerialOf(root: Element): string | undefined {
  for (const info of children(root, 'sysinfo')) {
    if (attr(info, 'type') !== 'smbios') continue;
    const system = child(info, 'system');
    const entry = system && children(system, 'entry').find((e) => attr(e, 'name') === 'serial');
    if (entry) return textOf(entry);
  }
  return undefined;
}

/** Parses a single `<disk>` element (e.g. from `virsh dumpxml` filtering) into a {@link ParsedDisk}. */
export function parseDiskDeviceXml(xml: string): ParsedDisk {
  return parseDisk(parseRoot(xml, 'disk'));
}

/** Parses a single `<interface>` element into a {@link ParsedInterface}. */
export function parseInterfaceDeviceXml(xml: string): ParsedInterface {
  return parseInterface(parseRoot(xml, 'interface'));
}

/**
 * A first-boot seed ISO as a read-only CD-ROM: IDE (`hdc`) on the `pc` (i440fx) machine type, SATA
 * (`sdz`, clear of data disks) on `q35`, which has no IDE bus.
 */
export function seedCdromDisk(path: string, machine?: string): DiskSpec {
  return machine !== undefined && machine.includes('q35')
    ? { path, format: 'raw', device: 'cdrom', bus: 'sata', target: 'sdz', readonly: true }
    : { path, format: 'raw', device: 'cdrom', bus: 'ide', target: 'hdc', readonly: true };
}
