import { XMLSerializer } from '@xmldom/xmldom';
import { type Connection, type Domain } from '../libvirt/connection';
import { isLibvirtError, LibvirtErrorCode } from '../libvirt/errors';
import { type LibvirtProvider } from '../libvirt/provider';
import {
  assertLibvirtName,
  buildDomainXml,
  addFilterParameters,
  type FilterParameters,
  parseDomainXml,
  parseNetworkXml,
  type ParsedNetwork,
  parseXmlRoot,
  seedCdromDisk,
  validateFilterParameters,
} from '../libvirt/xml';
import { attr, child, children } from '../libvirt/xml/dom';
import { macFromId, type SecretBox } from '../secrets';
import { FailureType } from '../workflows/shared';
import { permanent } from './failures';
import { nullIfMissing } from './missing';
import { pollUntil } from './retry';

/** Dependencies of the domain activities. */
export interface LibvirtActivityDeps {
  libvirt: LibvirtProvider;
  secrets: SecretBox;
  /** Force a virtualization type instead of probing the host (VIRT_TYPE). */
  virtType?: 'kvm' | 'qemu';
}

/** What createMachine/cloneMachine ask the host to define. */
export interface DomainPlan {
  machineId: string;
  operationId: string;
  internalName: string;
  /** The user's machine name: reaches libvirt only as the escaped <title>. */
  title: string;
  cpu: number;
  memoryMiB: number;
  diskPath: string;
  networkName: string;
  filterName: string;
  /** The first-boot seed (a NoCloud or unattend ISO volume), attached read-only as a CD-ROM. */
  seedPath?: string;
  /** The image's firmware (default BIOS). */
  firmware?: 'bios' | 'uefi';
}

/** Hardware as libvirt has it: persistent config and, when running, live values. */
export interface DomainHardware {
  active: boolean;
  state: string;
  config: { cpu: number; maxCpu: number; memoryMiB: number; maxMemoryMiB: number };
  live: { cpu: number; memoryMiB: number } | null;
}

/** A hardware change of a machine's domain: the values asked for (absent: unchanged). */
export interface HardwareChange {
  internalName: string;
  machineId: string;
  cpu?: number;
  memoryMiB?: number;
}

/** Result of applying a hardware change. */
export interface HardwareApplied {
  /** What is in effect now in the running guest (null when off). */
  live: { cpu?: number; memoryMiB?: number };
  /** What only applies at the next boot. */
  pending: { cpu?: number; memoryMiB?: number };
}

const notFound = (e: unknown) => isLibvirtError(e, LibvirtErrorCode.NO_DOMAIN);

/** The largest vCPU count a machine can be hot-plugged to on a host. */
export function maxVcpusFor(hostCpus: number, cpu: number): number {
  return Math.max(cpu, Math.min(hostCpus, 64));
}
/** The largest memory a machine can be ballooned up to: twice its size, within the host's memory. */
export function maxMemoryFor(hostMemoryMiB: number, memoryMiB: number): number {
  return Math.max(memoryMiB, Math.min(hostMemoryMiB, memoryMiB * 2));
}

/**
 * Domain activities (define, undefine, power, hardware). Run on the host's task queue. Each one looks
 * before it acts, so running it twice gives the same result, and each refuses to touch a domain whose
 * vmflow metadata names another machine.
 */
/**
 * Whether the domain capabilities say QEMU's default x86-64 CPU model (`qemu64`, what a domain without a
 * `<cpu>` element gets) is usable: `<model usable='yes' …>qemu64</model>`.
 */
export function defaultCpuUsable(domainCapabilitiesXml: string): boolean {
  return /<model usable='yes'[^>]*>qemu64<\/model>/.test(domainCapabilitiesXml);
}

export function createLibvirtActivities({ libvirt, secrets, virtType }: LibvirtActivityDeps) {
  let probedType: Promise<'kvm' | 'qemu'> | null = null;

  /** The domain of a machine, checked to be ours; null when it does not exist. */
  async function ours(name: string, machineId: string): Promise<Domain | null> {
    return lookupOwnDomain(await libvirt.get(), name, machineId);
  }

  async function mustHave(name: string, machineId: string): Promise<Domain> {
    const dom = await ours(name, machineId);
    if (!dom) throw permanent(FailureType.NotFound, `domain ${name} does not exist on this host`);
    return dom;
  }

  /**
   * kvm where the host can really run it, else qemu (TCG). libvirt lists kvm whenever /dev/kvm exists,
   * even where QEMU may not open it or cannot run a real OS on it, so probe once: the CPU model our domains
   * get (QEMU's default, qemu64) must be usable under kvm (a nested KVM that lacks SSE3 says it is not,
   * and does not boot Linux), and a tiny paused kvm domain must start.
   */
  async function domainType(): Promise<'kvm' | 'qemu'> {
    if (virtType) return virtType;
    probedType ??= (async () => {
      const conn = await libvirt.get();
      const caps = await conn.getCapabilities();
      if (!/<arch name='x86_64'>[\s\S]*?<domain type='kvm'/.test(caps)) return 'qemu';
      const kvmCaps = await conn.getDomainCapabilities('kvm').catch(() => '');
      if (!defaultCpuUsable(kvmCaps)) return 'qemu';
      const name = `vmflow-kvm-probe-${process.pid}`;
      let dom: Domain | null = null;
      try {
        dom = await conn.defineDomain(
          buildDomainXml({ name, type: 'kvm', memoryMiB: 16, vcpus: 1, disks: [], interfaces: [] }),
        );
        await dom.start({ paused: true });
        return 'kvm';
      } catch {
        return 'qemu';
      } finally {
        if (dom) {
          await dom.destroy().catch(() => undefined);
          await dom.undefine().catch(() => undefined);
        }
      }
    })();
    return probedType;
  }

  return {
    /** Defines the machine's domain if it is not defined yet. Returns its libvirt UUID and MAC. */
    async defineDomain(plan: DomainPlan): Promise<{ uuid: string; mac: string }> {
      const conn = await libvirt.get();
      let dom = await ours(plan.internalName, plan.machineId);
      const mac = macFromId(plan.machineId);
      if (!dom) {
        const node = await conn.getNodeInfo();
        const hostMemMiB = Math.floor(node.memoryKiB / 1024);
        const xml = buildDomainXml({
          name: plan.internalName,
          // The libvirt UUID is the machine id: two attempts racing (a retry while the first still runs)
          // define the very same domain instead of conflicting.
          uuid: plan.machineId,
          title: plan.title,
          type: await domainType(),
          memoryMiB: plan.memoryMiB,
          maxMemoryMiB: maxMemoryFor(hostMemMiB, plan.memoryMiB),
          vcpus: plan.cpu,
          maxVcpus: maxVcpusFor(node.cpus, plan.cpu),
          disks: [
            { path: plan.diskPath, format: 'qcow2', target: 'vda', bus: 'virtio', boot: 1 },
            ...(plan.seedPath ? [seedCdromDisk(plan.seedPath)] : []),
          ],
          ...(plan.firmware === 'uefi' ? { firmware: 'efi' as const } : {}),
          // The machine id in SMBIOS: what a guest agent reads to say which machine it runs in.
          smbiosSerial: plan.machineId,
          interfaces: [
            {
              type: 'network',
              source: plan.networkName,
              mac,
              model: 'virtio',
              filterref: {
                filter: plan.filterName,
                parameters: await nicFilterParametersOn(conn, plan.networkName),
              },
            },
          ],
          graphics: { type: 'vnc', listen: '127.0.0.1', password: secrets.consolePassword(plan.machineId) },
          guestAgent: true,
          vmflowAgent: true,
          metadata: { machineId: plan.machineId, operationId: plan.operationId },
        });
        dom = await conn.defineDomain(xml);
      }
      const uuid = await dom.getUUID();
      return { uuid, mac };
    },

    /** Removes the machine's domain: forced off if running, then undefined with its NVRAM and managed save. */
    async undefineDomain(input: { internalName: string; machineId: string }): Promise<void> {
      const dom = await ours(input.internalName, input.machineId);
      if (dom) {
        if (await dom.isActive()) {
          try {
            await dom.destroy();
          } catch (e) {
            if (!isLibvirtError(e, LibvirtErrorCode.OPERATION_INVALID)) throw e; // stopped meanwhile
          }
        }
        try {
          await dom.undefine({ nvram: true, managedSave: true, snapshotsMetadata: true });
        } catch (e) {
          if (!notFound(e)) throw e;
        }
      }
    },

    /** The domain's state ('absent' when it is not defined). */
    async getDomainState(input: { internalName: string; machineId: string }): Promise<string> {
      const dom = await ours(input.internalName, input.machineId);
      if (!dom) return 'absent';
      return (await dom.getState()).state;
    },

    /** Starts the domain (no-op when running; resumes when paused). */
    async startDomain(input: { internalName: string; machineId: string }): Promise<void> {
      const dom = await mustHave(input.internalName, input.machineId);
      const { state } = await dom.getState();
      if (state === 'running') return;
      if (state === 'paused') await dom.resume();
      else await dom.start();
    },

    /**
     * Asks the guest to shut down (ACPI) and waits, heartbeating, up to the deadline. Returns whether it
     * stopped; it does not force anything (the workflow decides).
     */
    async shutdownDomain(input: {
      internalName: string;
      machineId: string;
      timeoutSec: number;
    }): Promise<'done' | 'timeout'> {
      const dom = await mustHave(input.internalName, input.machineId);
      const stopped = async () => {
        const { state } = await dom.getState();
        return state === 'shutoff' || state === 'crashed' ? true : undefined;
      };
      if (await stopped()) return 'done';
      try {
        await dom.shutdown();
      } catch (e) {
        if (!isLibvirtError(e, LibvirtErrorCode.OPERATION_INVALID)) throw e;
      }
      const done = await pollUntil(stopped, { deadlineMs: input.timeoutSec * 1000, intervalMs: 250 });
      return done ? 'done' : 'timeout';
    },

    /** Forces the domain off (no-op when already off). */
    async forceOffDomain(input: { internalName: string; machineId: string }): Promise<void> {
      const dom = await ours(input.internalName, input.machineId);
      if (!dom || !(await dom.isActive())) return;
      try {
        await dom.destroy();
      } catch (e) {
        if (!isLibvirtError(e, LibvirtErrorCode.OPERATION_INVALID)) throw e;
      }
    },

    /** Reboots (ACPI) a running domain. */
    async rebootDomain(input: { internalName: string; machineId: string }): Promise<void> {
      await (await mustHave(input.internalName, input.machineId)).reboot();
    },

    /** Resets (hard) a running domain. */
    async resetDomain(input: { internalName: string; machineId: string }): Promise<void> {
      await (await mustHave(input.internalName, input.machineId)).reset();
    },

    /** Pauses a running domain (no-op when paused). */
    async suspendDomain(input: { internalName: string; machineId: string }): Promise<void> {
      const dom = await mustHave(input.internalName, input.machineId);
      if ((await dom.getState()).state === 'paused') return;
      await dom.suspend();
    },

    /** Resumes a paused domain (no-op when running). */
    async resumeDomain(input: { internalName: string; machineId: string }): Promise<void> {
      const dom = await mustHave(input.internalName, input.machineId);
      if ((await dom.getState()).state === 'running') return;
      await dom.resume();
    },

    /** Reads the domain's hardware: persistent config and live values. */
    async getDomainHardware(input: { internalName: string; machineId: string }): Promise<DomainHardware> {
      const dom = await mustHave(input.internalName, input.machineId);
      const [cfg, state] = await Promise.all([
        dom.getXML({ inactive: true }).then(parseDomainXml),
        dom.getState(),
      ]);
      const active = state.state === 'running' || state.state === 'paused' || state.state === 'blocked';
      let live: DomainHardware['live'] = null;
      if (active) {
        const cur = parseDomainXml(await dom.getXML());
        live = { cpu: cur.vcpus, memoryMiB: cur.memoryMiB };
      }
      return {
        active,
        state: state.state,
        config: {
          cpu: cfg.vcpus,
          maxCpu: cfg.maxVcpus,
          memoryMiB: cfg.memoryMiB,
          maxMemoryMiB: cfg.maxMemoryMiB,
        },
        live,
      };
    },

    /**
     * Writes vCPUs and memory to the persistent config (raising a maximum where the value exceeds it).
     * Always reversible by {@link restoreDomainHardware}. Idempotent.
     */
    async configureDomainHardware(input: HardwareChange): Promise<void> {
      const dom = await mustHave(input.internalName, input.machineId);
      const cfg = parseDomainXml(await dom.getXML({ inactive: true }));
      if (input.cpu !== undefined) {
        if (input.cpu > cfg.maxVcpus) await dom.setVcpus(input.cpu, { config: true, maximum: true });
        await dom.setVcpus(input.cpu, { config: true });
      }
      if (input.memoryMiB !== undefined) {
        const kib = input.memoryMiB * 1024;
        if (input.memoryMiB > cfg.maxMemoryMiB) await dom.setMemory(kib, { config: true, maximum: true });
        await dom.setMemory(kib, { config: true });
      }
    },

    /**
     * Applies to a running guest what libvirt can apply live: memory up to the running maximum (balloon),
     * vCPUs **up** to the running maximum (hot-plug). Removing vCPUs needs the guest's cooperation, so a
     * decrease waits for the next boot, like anything beyond a maximum. Returns what is live and what is
     * pending. No-op when the domain is off.
     */
    async applyLiveHardware(input: HardwareChange): Promise<HardwareApplied> {
      const dom = await mustHave(input.internalName, input.machineId);
      const result: HardwareApplied = { live: {}, pending: {} };
      if (!(await dom.isActive())) return result;
      const live = parseDomainXml(await dom.getXML());
      if (input.memoryMiB !== undefined) {
        if (input.memoryMiB <= live.maxMemoryMiB) {
          if (input.memoryMiB !== live.memoryMiB) await dom.setMemory(input.memoryMiB * 1024, { live: true });
          result.live.memoryMiB = input.memoryMiB;
        } else {
          result.pending.memoryMiB = input.memoryMiB;
        }
      }
      if (input.cpu !== undefined) {
        if (input.cpu === live.vcpus || (input.cpu > live.vcpus && input.cpu <= live.maxVcpus)) {
          if (input.cpu !== live.vcpus) await dom.setVcpus(input.cpu, { live: true });
          result.live.cpu = input.cpu;
        } else {
          result.pending.cpu = input.cpu;
        }
      }
      return result;
    },

    /**
     * Puts vCPUs and memory back as `prev` recorded them: the persistent config exactly (maximum and
     * current; a maximum is raised before and lowered after the current value), and the live memory.
     * A live vCPU that was hot-plugged cannot be removed without the guest: that is reported, not forced.
     */
    async restoreDomainHardware(input: {
      internalName: string;
      machineId: string;
      prev: DomainHardware;
    }): Promise<{ vcpusStillPlugged: number }> {
      const dom = await mustHave(input.internalName, input.machineId);
      const now = parseDomainXml(await dom.getXML({ inactive: true }));
      const { config, live } = input.prev;
      if (config.maxCpu >= now.vcpus) {
        if (config.maxCpu !== now.maxVcpus)
          await dom.setVcpus(config.maxCpu, { config: true, maximum: true });
        if (config.cpu !== now.vcpus) await dom.setVcpus(config.cpu, { config: true });
      } else {
        await dom.setVcpus(config.cpu, { config: true });
        await dom.setVcpus(config.maxCpu, { config: true, maximum: true });
      }
      const kib = (mib: number) => mib * 1024;
      if (config.maxMemoryMiB >= now.memoryMiB) {
        if (config.maxMemoryMiB !== now.maxMemoryMiB)
          await dom.setMemory(kib(config.maxMemoryMiB), { config: true, maximum: true });
        if (config.memoryMiB !== now.memoryMiB) await dom.setMemory(kib(config.memoryMiB), { config: true });
      } else {
        await dom.setMemory(kib(config.memoryMiB), { config: true });
        await dom.setMemory(kib(config.maxMemoryMiB), { config: true, maximum: true });
      }
      let vcpusStillPlugged = 0;
      if (live && (await dom.isActive())) {
        const cur = parseDomainXml(await dom.getXML());
        if (cur.memoryMiB !== live.memoryMiB) await dom.setMemory(kib(live.memoryMiB), { live: true });
        if (cur.vcpus > live.cpu) {
          try {
            await dom.setVcpus(live.cpu, { live: true });
          } catch (e) {
            if (!isLibvirtError(e)) throw e;
            vcpusStillPlugged = cur.vcpus - live.cpu; // the guest did not release them; gone at next boot
          }
        }
      }
      return { vcpusStillPlugged };
    },
  };
}

export type LibvirtActivities = ReturnType<typeof createLibvirtActivities>;

// ---------------------------------------------------------------------------------------------
// Moving a NIC to another network (changeMachineNetwork; served by the network activities)
// ---------------------------------------------------------------------------------------------

/**
 * The domain of a machine, checked to be ours through its vmflow metadata; null when it does not exist.
 * Throws (Refused, non-retryable) for a domain of that name that belongs to another machine.
 */
export async function lookupOwnDomain(
  conn: Connection,
  name: string,
  machineId: string,
): Promise<Domain | null> {
  const dom = await nullIfMissing(LibvirtErrorCode.NO_DOMAIN, () => conn.lookupDomainByName(name));
  if (!dom) return null;
  const parsed = parseDomainXml(await dom.getXML({ inactive: true }));
  if (parsed.metadata.machineId !== machineId) {
    throw permanent(
      FailureType.Refused,
      `domain ${name} belongs to another machine (${parsed.metadata.machineId ?? 'none'})`,
    );
  }
  return dom;
}

/**
 * The `<interface>` of `domainXml` with this MAC (else its first NIC), pointed at libvirt network
 * `network`, as device XML for `virDomainUpdateDeviceFlags`. Everything else the NIC has is kept as it
 * is (MAC, model, `filterref` and its parameters, bandwidth, boot order, PCI address); only what libvirt
 * fills in at run time (`<target dev='vnetN'>`, `<alias>`, the port id and bridge of the old source) is
 * dropped. Null when the domain has no NIC. `source` is the network (or bridge) it is on now.
 */
export function retargetInterfaceXml(
  domainXml: string,
  mac: string | null,
  network: string,
  /** The new network's {@link nicFilterParameters}: they replace the filterref's IP-learning parameters. */
  learning?: FilterParameters,
): { xml: string; source: string | null; mac: string | null } | null {
  assertLibvirtName(network, 'network');
  const devices = child(parseXmlRoot(domainXml, 'domain'), 'devices');
  const nics = devices ? children(devices, 'interface') : [];
  const nic =
    (mac
      ? nics.find((n) => attr(child(n, 'mac'), 'address')?.toLowerCase() === mac.toLowerCase())
      : undefined) ?? (mac ? undefined : nics[0]);
  if (!nic) return null;
  const type = attr(nic, 'type');
  const old = child(nic, 'source');
  const source =
    (type === 'network' ? attr(old, 'network') : type === 'bridge' ? attr(old, 'bridge') : undefined) ?? null;
  for (const el of [...children(nic, 'source'), ...children(nic, 'target'), ...children(nic, 'alias')])
    nic.removeChild(el);
  nic.setAttribute('type', 'network');
  const doc = nic.ownerDocument!;
  const src = doc.createElement('source');
  src.setAttribute('network', network);
  nic.insertBefore(src, child(nic, 'mac')?.nextSibling ?? nic.firstChild);
  const filterref = child(nic, 'filterref');
  if (filterref) {
    for (const p of children(filterref, 'parameter'))
      if (IP_LEARNING_PARAMETERS.includes(attr(p, 'name') ?? '')) filterref.removeChild(p);
    addFilterParameters(filterref, validateFilterParameters(learning ?? {}, 'filterref.parameters'));
  }
  return {
    xml: new XMLSerializer().serializeToString(nic, { requireWellFormed: true }),
    source,
    mac: attr(child(nic, 'mac'), 'address') ?? null,
  };
}

/** The filterref parameters that {@link nicFilterParameters} sets (and a move to another network replaces). */
const IP_LEARNING_PARAMETERS = ['CTRL_IP_LEARNING', 'DHCPSERVER'];

/**
 * The parameters of a machine NIC's filterref on `network`, from the network's libvirt definition. Where its
 * IPv4 block serves DHCP, libvirt learns the guest's address by snooping DHCP, and only from that network's
 * own server (`CTRL_IP_LEARNING=dhcp`, `DHCPSERVER`): until it has seen a lease the NIC passes DHCP and nothing
 * else, and the leases it saw survive a libvirtd restart (its lease file). Elsewhere libvirt's default (`any`:
 * the first address the guest sends from).
 *
 * Why not `any` everywhere: an interface whose address libvirt does not know (learning pending, after a
 * libvirtd restart or a re-created binding) is instantiated only when the guest's next packet is seen, and a
 * filter pushed meanwhile is applied only then, so that packet passes under the rules from before the change
 * (docs/networks-and-firewall.md, "IP learning").
 */
export function nicFilterParameters(network: ParsedNetwork): FilterParameters | undefined {
  const v4 = network.ips.find((ip) => !ip.address.includes(':') && ip.dhcp !== undefined);
  return v4 ? { CTRL_IP_LEARNING: 'dhcp', DHCPSERVER: v4.address } : undefined;
}

/** {@link nicFilterParameters} of the network named `name` on this host (none when it is not defined). */
export async function nicFilterParametersOn(
  conn: Connection,
  name: string,
): Promise<FilterParameters | undefined> {
  const xml = await nullIfMissing(LibvirtErrorCode.NO_NETWORK, async () =>
    (await conn.lookupNetworkByName(name)).getXML(),
  );
  return xml === null ? undefined : nicFilterParameters(parseNetworkXml(xml));
}

/** Where a machine's NIC is after {@link moveDomainInterface}. */
export interface InterfaceMove {
  /** The network the persistent definition named before (null: no NIC found). */
  previous: string | null;
  /** The running guest is on the new network now (false when the domain is off). */
  live: boolean;
  /**
   * libvirt could not switch the running NIC (some NIC types cannot change their source live): the
   * persistent definition is moved, the running guest stays on `previous` until its next boot.
   */
  pendingUntilBoot: boolean;
}

/** libvirt's answers that mean "this change cannot be made to a running device". */
const LIVE_UNSUPPORTED = [
  LibvirtErrorCode.OPERATION_UNSUPPORTED,
  LibvirtErrorCode.CONFIG_UNSUPPORTED,
  LibvirtErrorCode.NO_SUPPORT,
];

/**
 * Points the machine's NIC (by MAC) at `network`, in the persistent definition and, when the domain
 * runs, live: libvirt 9 moves a running `network` NIC to another network in place (a new port on the
 * new bridge; the tap, its MAC, its nwfilter binding stay). Where libvirt refuses a live change, only
 * the definition changes and the result says so. Idempotent: a NIC already on `network` is left alone.
 */
export async function moveDomainInterface(
  dom: Domain,
  input: { mac: string | null; network: string; learning?: FilterParameters },
): Promise<InterfaceMove> {
  const config = retargetInterfaceXml(
    await dom.getXML({ inactive: true }),
    input.mac,
    input.network,
    input.learning,
  );
  if (!config) {
    throw permanent(
      FailureType.NotFound,
      input.mac ? `the domain has no interface with MAC ${input.mac}` : 'the domain has no interface',
    );
  }
  if (config.source !== input.network) await dom.updateDevice(config.xml, { config: true });
  const result: InterfaceMove = { previous: config.source, live: false, pendingUntilBoot: false };
  if (!(await dom.isActive())) return result;
  const live = retargetInterfaceXml(await dom.getXML(), config.mac, input.network, input.learning);
  if (!live) return { ...result, pendingUntilBoot: true };
  if (live.source === input.network) return { ...result, live: true };
  try {
    await dom.updateDevice(live.xml, { live: true });
    return { ...result, live: true };
  } catch (e) {
    if (isLibvirtError(e, LibvirtErrorCode.OPERATION_INVALID) && !(await dom.isActive())) return result; // stopped meanwhile
    if (!LIVE_UNSUPPORTED.some((code) => isLibvirtError(e, code))) throw e;
    return { ...result, pendingUntilBoot: true };
  }
}
