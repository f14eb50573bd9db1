/**
 * Helpers for integration suites that run network operations on the real stack: start and await the
 * keyed network workflows, read what a network left behind (libvirt network, kernel bridge and dnsmasq in
 * libvirtd's namespace, dnsmasq's files, the row), and clean up.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { type Client } from '@temporalio/client';
import { startKeyedWorkflow } from '../../src/client/machine-operations';
import { Network } from '../../src/entities/network';
import { isLibvirtError } from '../../src/libvirt/errors';
import { parseNetworkXml, type ParsedNetwork } from '../../src/libvirt/xml';
import {
  libvirtNames,
  networkWorkflowId,
  type CreateNetworkInput,
  type DeleteNetworkInput,
  type NetworkOperationResult,
  type UpdateNetworkInput,
} from '../../src/workflows/shared';
import { type Stack } from './stack';

const run = promisify(execFile);

/** The network namespace libvirtd runs in (bridges and dnsmasq live there). */
export const NETNS = process.env.VMFLOW_NETNS ?? 'vmflow';

type Workflow = 'createNetwork' | 'updateNetwork' | 'deleteNetwork';
type Inputs = {
  createNetwork: CreateNetworkInput;
  updateNetwork: UpdateNetworkInput;
  deleteNetwork: DeleteNetworkInput;
};
const TYPE = {
  createNetwork: 'create_network',
  updateNetwork: 'update_network',
  deleteNetwork: 'delete_network',
};

/** Starts a network operation (workflow id `network-<id>`, as the API does) and waits for its result. */
export async function runNetworkOperation<W extends Workflow>(
  client: Client,
  workflow: W,
  input: Omit<Inputs[W], 'operationId' | 'actorId'> & { operationId?: string; actorId?: string | null },
): Promise<NetworkOperationResult> {
  const full = { actorId: null, ...input, operationId: input.operationId ?? randomUUID() } as Inputs[W];
  const handle = await startKeyedWorkflow(client, {
    workflow,
    workflowId: networkWorkflowId(full.networkId),
    input: full,
    type: TYPE[workflow],
    resourceId: full.networkId,
    resourceKind: 'network',
  });
  return handle.result() as Promise<NetworkOperationResult>;
}

/**
 * Hands out /24 subnets `10.<b>.<c>.0/24`, c counting up from `from` (a range unique per test file),
 * skipping any a network of the host or a row already uses (a leftover of an interrupted run).
 */
export function subnets(b: number, from: number) {
  let c = from;
  return async (stack: Stack) => {
    const conn = await stack.libvirt.get();
    const used = new Set<string>();
    for (const net of await conn.listAllNetworks()) {
      // A network another suite removes meanwhile has no XML any more: it uses nothing.
      const xml = await net.getXML({ inactive: true }).catch(() => '');
      for (const m of xml.matchAll(/<ip address='10\.(\d+)\.(\d+)\./g)) used.add(`${m[1]}.${m[2]}`);
    }
    for (const r of await stack.dataSource.getRepository(Network).find({ select: { cidr: true } }))
      if (r.cidr) used.add(r.cidr.split('.').slice(1, 3).join('.'));
    while (used.has(`${b}.${c}`)) c++;
    if (c > 255) throw new Error(`no free test subnet left in 10.${b}.0.0/16`);
    const n = c++;
    return {
      cidr: `10.${b}.${n}.0/24`,
      gateway: `10.${b}.${n}.1`,
      dhcpStart: `10.${b}.${n}.100`,
      dhcpEnd: `10.${b}.${n}.200`,
      at: (host: number) => `10.${b}.${n}.${host}`,
    };
  };
}

/** Whether a kernel link exists in libvirtd's namespace (`ip -n <ns> link show <name>`). */
export async function linkExists(name: string): Promise<boolean> {
  try {
    await run('ip', ['-n', NETNS, 'link', 'show', 'dev', name]);
    return true;
  } catch {
    return false;
  }
}

/** The links enslaved to a bridge in libvirtd's namespace (guests' taps). */
export async function bridgePorts(bridge: string): Promise<string[]> {
  const { stdout } = await run('ip', ['-n', NETNS, '-o', 'link', 'show', 'master', bridge]);
  return stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => l.split(':')[1]!.trim().split('@')[0]!);
}

/** The dnsmasq processes serving a libvirt network (by their config file). */
export async function dnsmasqOf(internalName: string): Promise<number[]> {
  const { stdout } = await run('ps', ['-eo', 'pid=,args=']);
  const conf = `--conf-file=/var/lib/libvirt/dnsmasq/${internalName}.conf`;
  return stdout
    .split('\n')
    .filter((l) => l.includes('dnsmasq') && l.includes(conf))
    .map((l) => Number(l.trim().split(/\s+/)[0]));
}

/** Everything a network can leave on the host and in the database. */
export interface NetworkTraces {
  libvirt: boolean;
  active: boolean;
  bridge: boolean;
  dnsmasq: number;
  /** dnsmasq's config, hosts and lease-helper files, and libvirt's live state file. */
  files: string[];
  row: Network | null;
}

/** Nothing on the host. */
export const NO_NETWORK_TRACE = {
  libvirt: false,
  active: false,
  bridge: false,
  dnsmasq: 0,
  files: [] as string[],
};

/** Looks up every trace of a network id. */
export async function networkTraces(stack: Stack, networkId: string): Promise<NetworkTraces> {
  const name = libvirtNames.network(networkId);
  const bridge = libvirtNames.bridge(networkId);
  const conn = await stack.libvirt.get();
  let libvirt = false;
  let active = false;
  try {
    const net = await conn.lookupNetworkByName(name);
    libvirt = true;
    active = await net.isActive();
  } catch (e) {
    if (!isLibvirtError(e)) throw e;
  }
  const candidates = [
    `/var/lib/libvirt/dnsmasq/${name}.conf`,
    `/var/lib/libvirt/dnsmasq/${name}.hostsfile`,
    `/var/lib/libvirt/dnsmasq/${name}.addnhosts`,
    `/var/lib/libvirt/dnsmasq/${bridge}.status`,
    `/run/libvirt/network/${name}.xml`,
    `/run/libvirt/network/${name}.pid`,
    `/run/libvirt/network/${name}`,
  ];
  return {
    libvirt,
    active,
    bridge: await linkExists(bridge),
    dnsmasq: (await dnsmasqOf(name)).length,
    files: candidates.filter((f) => existsSync(f)),
    row: await stack.dataSource.getRepository(Network).findOne({ where: { id: networkId } }),
  };
}

/** The live (running) and persistent definitions of a network, parsed. */
export async function definitionsOf(
  stack: Stack,
  networkId: string,
): Promise<{ live: ParsedNetwork | null; config: ParsedNetwork; liveXml: string | null; configXml: string }> {
  const net = await (await stack.libvirt.get()).lookupNetworkByName(libvirtNames.network(networkId));
  const configXml = await net.getXML({ inactive: true });
  const liveXml = (await net.isActive()) ? await net.getXML() : null;
  return {
    live: liveXml ? parseNetworkXml(liveXml) : null,
    config: parseNetworkXml(configXml),
    liveXml,
    configXml,
  };
}

/** The DHCP ranges of network XML (all of them; the parser keeps only the first). */
export function rangesOf(xml: string): Array<{ start: string; end: string }> {
  return [...xml.matchAll(/<range start='([^']+)' end='([^']+)'/g)].map((m) => ({
    start: m[1]!,
    end: m[2]!,
  }));
}

/** Removes a network whatever state it is in (afterAll): the workflow first, by hand if that fails. */
export async function removeNetwork(stack: Stack, networkId: string): Promise<void> {
  const row = await stack.dataSource.getRepository(Network).findOne({ where: { id: networkId } });
  if (row) {
    try {
      await runNetworkOperation(stack.env.client, 'deleteNetwork', { networkId });
      return;
    } catch {
      // fall through: remove by hand
    }
  }
  const conn = await stack.libvirt.get();
  try {
    const net = await conn.lookupNetworkByName(libvirtNames.network(networkId));
    if ((await net.getUUID()) === networkId) {
      if (await net.isActive()) await net.destroy();
      await net.undefine();
    }
  } catch (e) {
    if (!isLibvirtError(e)) throw e;
  }
  await stack.dataSource.getRepository(Network).delete({ id: networkId });
}

/**
 * The filterref of a machine's NIC on the network named `name` (one that serves DHCP): its VM filter, its
 * address learned by DHCP snooping from that network's own address (read from libvirt's definition).
 */
export async function nicFilterOn(stack: Stack, name: string, filter: string) {
  const xml = await (await (await stack.libvirt.get()).lookupNetworkByName(name)).getXML();
  const address = /<ip\b[^>]*\baddress='([\d.]+)'/.exec(xml)?.[1];
  if (!address) throw new Error(`network ${name} has no IPv4 address`);
  return { filter, parameters: { CTRL_IP_LEARNING: 'dhcp', DHCPSERVER: address } };
}
