/**
 * Fixtures of the libvirt binding's integration tests: names under the `vmflow-test-bind-` prefix
 * (unique per run, so concurrent runs on one libvirtd never collide), XML of small TCG domains, an
 * isolated network and a dir pool, a deadline-bounded wait, and best-effort cleanup.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';
import {
  type Connection,
  type Domain,
  type Network,
  type StoragePool,
  isLibvirtError,
} from '../../../src/libvirt/connection';

/** `execFile` returning a Promise of `{ stdout, stderr }`. */
export const execFileAsync = promisify(execFile);

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/**
 * Full garbage collection, then the deferred native finalizers (queued behind the GC) let run, three
 * times. The binding's handle counter drops whenever a finalizer runs, so a leak test that compares
 * counts must collect before each reading: otherwise earlier tests' garbage, finalised in between,
 * makes the count fall by itself.
 */
export async function collectGarbage(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The libvirt URI under test. */
export const LIBVIRT_URI = process.env.LIBVIRT_URI ?? 'qemu:///system';
/** The network namespace libvirtd runs in. */
export const NETNS = process.env.VMFLOW_NETNS ?? 'vmflow';
/** Every object these tests create starts with this. */
export const PREFIX = 'vmflow-test-bind-';

/** A unique name under the prefix: `vmflow-test-bind-<what>-<run id>`. */
export function uniqueName(what: string): string {
  return `${PREFIX}${what}-${randomBytes(3).toString('hex')}`;
}

/** Waits until `check` returns a truthy value, polling every few ms, failing after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Runs `fn` and ignores libvirt errors (cleanup of what may already be gone). */
export async function quietly(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    if (!isLibvirtError(e)) throw e;
  }
}

/**
 * The domain type for test domains: `qemu` (TCG) unless VMFLOW_TEST_DOMAIN_TYPE says `kvm`. Not
 * taken from the capabilities: here they advertise kvm although /dev/kvm is root-only (0600), so
 * QEMU (running as libvirt-qemu) fails with "Could not access KVM kernel module".
 */
export function domainType(): 'kvm' | 'qemu' {
  return process.env.VMFLOW_TEST_DOMAIN_TYPE === 'kvm' ? 'kvm' : 'qemu';
}

/** A MAC address in QEMU's locally administered range. */
export function randomMac(): string {
  const b = randomBytes(3);
  return `52:54:00:${[...b].map((x) => x.toString(16).padStart(2, '0')).join(':')}`;
}

/** What {@link domainXml} puts in a test domain. */
/** What {@link domainXml} puts in a test domain. */
export interface DomainSpec {
  name: string;
  type: 'kvm' | 'qemu';
  memoryMiB?: number;
  maxMemoryMiB?: number;
  vcpus?: number;
  maxVcpus?: number;
  disk?: string;
  interfaces?: Array<{ network: string; mac?: string; filter?: string }>;
}

/** XML of a small domain with no OS (SeaBIOS idles), optional qcow2 disk and network interfaces. */
export function domainXml(s: DomainSpec): string {
  const mem = (s.memoryMiB ?? 64) * 1024;
  const maxMem = (s.maxMemoryMiB ?? s.memoryMiB ?? 64) * 1024;
  const maxVcpus = s.maxVcpus ?? s.vcpus ?? 1;
  const disk = s.disk
    ? `<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='${s.disk}'/>` +
      `<target dev='vda' bus='virtio'/></disk>`
    : '';
  const nics = (s.interfaces ?? [])
    .map(
      (i) =>
        `<interface type='network'><source network='${i.network}'/>${i.mac ? `<mac address='${i.mac}'/>` : ''}` +
        `<model type='virtio'/>${i.filter ? `<filterref filter='${i.filter}'/>` : ''}</interface>`,
    )
    .join('');
  return `<domain type='${s.type}'>
  <name>${s.name}</name>
  <memory unit='KiB'>${maxMem}</memory>
  <currentMemory unit='KiB'>${mem}</currentMemory>
  <vcpu placement='static' current='${s.vcpus ?? 1}'>${maxVcpus}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <on_reboot>restart</on_reboot>
  <devices>${disk}${nics}<memballoon model='virtio'/></devices>
</domain>`;
}

/** XML of an isolated network (no `<forward>`) with DHCP on 10.251.<subnet>.0/24. */
export function isolatedNetworkXml(name: string, subnet: number): string {
  return `<network>
  <name>${name}</name>
  <ip address='10.251.${subnet}.1' netmask='255.255.255.0'>
    <dhcp><range start='10.251.${subnet}.100' end='10.251.${subnet}.200'/></dhcp>
  </ip>
</network>`;
}

/** XML of a dir pool under /var/lib/vmflow. */
export function dirPoolXml(name: string, dir: string): string {
  return `<pool type='dir'><name>${name}</name><target><path>${dir}</path></target></pool>`;
}

/** XML of a qcow2 volume, optionally backed by `backing` (a linked clone). */
export function qcow2VolumeXml(name: string, capacityBytes: number, backing?: string): string {
  const backingXml = backing
    ? `<backingStore><path>${backing}</path><format type='qcow2'/></backingStore>`
    : '';
  return `<volume><name>${name}</name><capacity unit='bytes'>${capacityBytes}</capacity>
  <target><format type='qcow2'/></target>${backingXml}</volume>`;
}

/** Defines, builds and starts a dir pool of our own. */
export async function createPool(conn: Connection, what = 'pool'): Promise<StoragePool> {
  const name = uniqueName(what);
  const dir = `/var/lib/vmflow/test-bind-pool-${name.slice(PREFIX.length)}`;
  const pool = await conn.definePool(dirPoolXml(name, dir));
  await pool.build();
  await pool.create();
  return pool;
}

/** Deletes every volume, stops, deletes the directory and undefines the pool. */
export async function removePool(pool: StoragePool | undefined): Promise<void> {
  if (!pool) return;
  await quietly(async () => {
    if (await pool.isActive()) {
      await pool.refresh();
      for (const v of await pool.listAllVolumes()) await quietly(() => v.delete());
      await pool.destroy();
    }
  });
  await quietly(() => pool.delete());
  await quietly(() => pool.undefine());
}

/** Defines and starts an isolated network of our own. */
export async function createNetwork(conn: Connection, subnet: number, what = 'net'): Promise<Network> {
  const net = await conn.defineNetwork(isolatedNetworkXml(uniqueName(what), subnet));
  await net.create();
  return net;
}

/** Stops and undefines a network. */
export async function removeNetwork(net: Network | undefined): Promise<void> {
  if (!net) return;
  await quietly(() => net.destroy());
  await quietly(() => net.undefine());
}

/** Stops and undefines a domain. */
export async function removeDomain(dom: Domain | undefined): Promise<void> {
  if (!dom) return;
  await quietly(() => dom.destroy());
  await quietly(() => dom.undefine({ managedSave: true, snapshotsMetadata: true, nvram: true }));
}

/** The host-side tap devices (`vnetN`) of a running domain, in interface order. */
export async function tapDevices(dom: Domain): Promise<string[]> {
  return [...(await dom.getXML()).matchAll(/<target dev='(vnet\d+)'/g)].map((m) => m[1]);
}

/** Runs a command inside libvirtd's network namespace and returns its stdout. */
export async function inNamespace(cmd: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('ip', ['netns', 'exec', NETNS, cmd, ...args]);
  return stdout;
}
