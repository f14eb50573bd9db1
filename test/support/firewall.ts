/**
 * Reading the firewall back from the real stack, for the firewall integration suites: a filter's XML in
 * libvirt, the vmflow filters and bindings of the host, and the ebtables/iptables rules libvirt installed
 * for a running domain's tap device inside libvirtd's network namespace (`vmflow`).
 *
 * libvirt instantiates a filter that uses `clean-traffic` only once it knows the guest's IP: it learns it
 * from the guest's DHCP (SeaBIOS' iPXE asks for a lease even with no OS), so the rules of a freshly started
 * domain appear after a few seconds (see {@link waitForInstantiated}).
 */
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { WorkflowFailedError } from '@temporalio/client';
import { type DataSource } from 'typeorm';
import { Department } from '../../src/entities/department';
import { FirewallFilter, FirewallRule, ServiceSetting } from '../../src/entities/firewall';
import { ensureDepartmentFilterRow } from '../../src/firewall/load';
import { isLibvirtError } from '../../src/libvirt/errors';
import { type LibvirtProvider } from '../../src/libvirt/provider';
import { parseNWFilterXml, parseXmlRoot, type ParsedFilter } from '../../src/libvirt/xml';
import { serialize } from '../../src/libvirt/xml/dom';
import {
  CONTROL_TASK_QUEUE,
  LIBVIRT_PREFIXES,
  firewallWorkflowId,
  flushWorkflowId,
  libvirtNames,
  type FirewallChange,
  type FirewallResult,
} from '../../src/workflows/shared';
import { createMachine, runMachineOperation, waitFor, type World } from './machines';
import { type Stack } from './stack';

const execFileAsync = promisify(execFile);

/** The network namespace libvirtd runs in. */
export const NETNS = process.env.VMFLOW_NETNS ?? 'vmflow';

/**
 * Runs a command inside libvirtd's namespace and returns its stdout. The nf_tables variants of the listing
 * commands fail now and then while libvirt rewrites the rules at the same moment: those are retried.
 */
export async function inNamespace(cmd: string, ...args: string[]): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    try {
      const { stdout } = await execFileAsync('ip', ['netns', 'exec', NETNS, cmd, ...args], {
        maxBuffer: 16 * 1024 * 1024,
      });
      return stdout;
    } catch (e) {
      if (attempt >= 10) throw e;
      await new Promise((r) => setTimeout(r, 100 * attempt));
    }
  }
}

/** A filter's XML in libvirt, or null when it does not exist. */
export async function filterXml(libvirt: LibvirtProvider, name: string): Promise<string | null> {
  const conn = await libvirt.get();
  try {
    return await (await conn.lookupNWFilterByName(name)).getXML();
  } catch (e) {
    if (isLibvirtError(e)) return null;
    throw e;
  }
}

/** A filter as libvirt has it, parsed, or null. */
export async function libvirtFilter(libvirt: LibvirtProvider, name: string): Promise<ParsedFilter | null> {
  const xml = await filterXml(libvirt, name);
  return xml === null ? null : parseNWFilterXml(xml);
}

/** The names of every vmflow filter on the host. */
export async function vmflowFilters(libvirt: LibvirtProvider): Promise<string[]> {
  const conn = await libvirt.get();
  const names: string[] = [];
  for (const f of await conn.listAllNWFilters()) {
    const name = await f.getName().catch(() => '');
    if (LIBVIRT_PREFIXES.filter.some((p) => name.startsWith(p))) names.push(name);
  }
  return names.sort();
}

/** The filters bound to a port (running interfaces), as `portdev → filter`. */
export async function bindings(libvirt: LibvirtProvider): Promise<Map<string, string>> {
  const conn = await libvirt.get();
  const out = new Map<string, string>();
  for (const b of await conn.listAllNWFilterBindings()) {
    try {
      out.set(await b.getPortDev(), await b.getFilterName());
    } catch (e) {
      if (!isLibvirtError(e)) throw e; // removed meanwhile
    }
  }
  return out;
}

/** The tap device of a running machine's NIC. */
export async function tapOf(libvirt: LibvirtProvider, machineId: string): Promise<string> {
  const conn = await libvirt.get();
  const xml = await (await conn.lookupDomainByName(libvirtNames.domain(machineId))).getXML();
  const dev = /<target dev='(vnet\d+)'/.exec(xml)?.[1];
  if (!dev) throw new Error(`machine ${machineId} has no tap device (is it running?)`);
  return dev;
}

/** The rules of a tap device: iptables/ip6tables (its FI/FO/HI chains) and ebtables (its libvirt-I/O chains). */
export interface TapRules {
  iptables: string[];
  ip6tables: string[];
  ebtables: string[];
}

/** The firewall rules libvirt installed for `tap`, read back from the namespace. */
export async function tapRules(tap: string): Promise<TapRules> {
  const chains = new RegExp(`^-A (FI|FO|HI)-${tap} `);
  const pick = (out: string) => out.split('\n').filter((l) => chains.test(l));
  const [v4, v6, eb] = await Promise.all([
    inNamespace('iptables-save'),
    inNamespace('ip6tables-save'),
    inNamespace('ebtables', '-t', 'nat', '-L'),
  ]);
  // ebtables -L prints chains as blocks: keep the blocks of this tap's chains, each line prefixed by its chain.
  const ebtables: string[] = [];
  let chain: string | null = null;
  const mine = new RegExp(`^Bridge chain: ((libvirt-[IO]-|[IO]-)${tap}(-[\\w-]+)?),`);
  for (const line of eb.split('\n')) {
    const head = mine.exec(line);
    if (head) chain = head[1];
    else if (line.startsWith('Bridge chain:')) chain = null;
    else if (chain && line.trim()) ebtables.push(`${chain}: ${line.trim()}`);
  }
  return { iptables: pick(v4), ip6tables: pick(v6), ebtables };
}

/**
 * Waits until libvirt has instantiated the full filter of `tap` (its iptables chains exist: the guest's IP
 * was learned) and, when given, until `until` holds on the rules. Returns the rules.
 */
export async function waitForRules(
  tap: string,
  until: (r: TapRules) => boolean = () => true,
  what = `the firewall rules of ${tap}`,
  deadlineMs = 120_000,
): Promise<TapRules> {
  return waitFor(
    async () => {
      const r = await tapRules(tap);
      return r.iptables.length > 0 && until(r) ? r : undefined;
    },
    what,
    deadlineMs,
  );
}

/**
 * Lets an OS-less guest ask for a DHCP lease, so that libvirt learns its IP and instantiates its whole filter:
 * the machine's NIC gets the second place in the boot order (after its empty disk, SeaBIOS then runs the NIC's
 * iPXE, which sends DHCP requests), and the domain runs under TCG with QEMU's default CPU (iPXE hangs under
 * this machine's KVM). Test-only: the domain is otherwise the one vmflow defined. The machine must be off.
 */
export async function bootFromNetwork(libvirt: LibvirtProvider, machineId: string): Promise<void> {
  const conn = await libvirt.get();
  const dom = await conn.lookupDomainByName(libvirtNames.domain(machineId));
  const root = parseXmlRoot(await dom.getXML({ inactive: true }), 'domain');
  const iface = root.getElementsByTagName('interface')[0];
  if (!iface) throw new Error(`machine ${machineId} has no NIC`);
  // iPXE hangs at "starting execution" under this machine's KVM; under TCG it asks for its lease at once.
  root.setAttribute('type', 'qemu');
  for (const cpu of Array.from(root.getElementsByTagName('cpu'))) cpu.parentNode?.removeChild(cpu);
  if (iface.getElementsByTagName('boot').length === 0) {
    const boot = root.ownerDocument!.createElement('boot');
    boot.setAttribute('order', '2');
    iface.appendChild(boot);
  }
  // The guest's address, given to its filter: libvirt then instantiates the whole filter when the domain
  // starts, instead of in its IP-learning thread after snooping the lease. That thread's re-instantiation
  // failed here once on ebtables-nft ("RULE_DELETE failed … J-vnetN-mac" in libvirtd.log) and never
  // retried, leaving the tap without its iptables rules. Outside the DHCP range; unique per machine.
  const filterref = iface.getElementsByTagName('filterref')[0];
  if (filterref && filterref.getElementsByTagName('parameter').length === 0) {
    const param = root.ownerDocument!.createElement('parameter');
    param.setAttribute('name', 'IP');
    param.setAttribute('value', `10.250.0.${2 + (parseInt(machineId.slice(0, 4), 16) % 90)}`);
    filterref.appendChild(param);
  }
  await conn.defineDomain(serialize(root));
}

/**
 * Creates a machine that boots from its NIC (see {@link bootFromNetwork}), starts it, and waits for its rules.
 * Its id goes into `made` as soon as it exists, so the suite's clean-up finds it whatever happens next.
 */
export async function createNetbootMachine(
  stack: Stack,
  world: World,
  made: string[],
  over: Record<string, unknown> = {},
): Promise<{ machineId: string; tap: string }> {
  const { machineId } = await createMachine(stack, world, { ...over, start: false });
  made.push(machineId);
  await bootFromNetwork(stack.libvirt, machineId);
  await runMachineOperation(stack.env.client, 'powerMachine', { machineId, action: 'start', actorId: null });
  const { tap } = await waitForInstantiated(stack, machineId);
  return { machineId, tap };
}

/** Waits for the first full instantiation of a running machine's filter; returns its tap and rules. */
export async function waitForInstantiated(
  stack: Stack,
  machineId: string,
): Promise<{ tap: string; rules: TapRules }> {
  const tap = await tapOf(stack.libvirt, machineId);
  return { tap, rules: await waitForRules(tap) };
}

/** An iptables rule of the chain that carries traffic *to* the guest (direction `in`). */
export const toGuest = (r: TapRules, tap: string) => r.iptables.filter((l) => l.startsWith(`-A FO-${tap} `));
/** An iptables rule of the chain that carries traffic *from* the guest (direction `out`). */
export const fromGuest = (r: TapRules, tap: string) =>
  r.iptables.filter((l) => l.startsWith(`-A FI-${tap} `));

/** Runs a firewall change as the API would (workflow `firewallChange` keyed by its scope) and waits for it. */
export async function runFirewallChange(
  stack: Stack,
  scopeId: string,
  change: FirewallChange,
  opts: { operationId?: string; actorId?: string | null } = {},
): Promise<FirewallResult> {
  const operationId = opts.operationId ?? randomUUID();
  return stack.env.client.workflow.execute('firewallChange', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: firewallWorkflowId(scopeId),
    args: [{ operationId, actorId: opts.actorId ?? null, scopeId, change }],
  });
}

/** Runs a flush (of a department, or of everything) and waits for it. */
export async function runFlush(stack: Stack, departmentId?: string | null): Promise<FirewallResult> {
  const operationId = randomUUID();
  return stack.env.client.workflow.execute('flushFilters', {
    taskQueue: CONTROL_TASK_QUEUE,
    workflowId: flushWorkflowId(departmentId),
    args: [{ operationId, actorId: null, departmentId: departmentId ?? null }],
  });
}

/** Awaits a workflow that must fail and returns its failure type. */
export async function failureTypeOf(p: Promise<unknown>): Promise<string | undefined> {
  const err = await p.then(
    () => {
      throw new Error('expected the workflow to fail');
    },
    (e: unknown) => e,
  );
  if (!(err instanceof WorkflowFailedError)) throw err;
  return (err.cause as { type?: string } | undefined)?.type;
}

/** Ensures a department's filter row (as the API does when it creates a department); returns it. */
export async function departmentFilterRow(ds: DataSource, departmentId: string): Promise<FirewallFilter> {
  const dept = await ds.getRepository(Department).findOneByOrFail({ id: departmentId });
  return ds.transaction((m) => ensureDepartmentFilterRow(m, dept.id, dept.name));
}

/** The VM filter row of a machine. */
export async function vmFilterRow(ds: DataSource, machineId: string): Promise<FirewallFilter> {
  return ds.getRepository(FirewallFilter).findOneByOrFail({ kind: 'vm', machineId });
}

/** Inserts a custom filter row (as the API's createFilter does). */
export async function seedCustomFilter(
  ds: DataSource,
  over: Partial<FirewallFilter> = {},
): Promise<FirewallFilter> {
  const id = over.id ?? randomUUID();
  return ds.getRepository(FirewallFilter).save({
    id,
    kind: 'custom',
    name: `custom ${id.slice(0, 6)}`,
    description: null,
    internalName: libvirtNames.customFilter(id),
    departmentId: null,
    machineId: null,
    includes: [],
    version: 1,
    ...over,
  });
}

/** The firewall rows of a set of filters and service scopes: a snapshot to compare before and after. */
export async function dbSnapshot(
  ds: DataSource,
  filterIds: string[],
  scopeIds: string[] = [],
  departmentIds: string[] = [],
): Promise<unknown> {
  const filters = await ds.getRepository(FirewallFilter).find({ where: filterIds.map((id) => ({ id })) });
  const rules = await ds
    .getRepository(FirewallRule)
    .find({ where: filterIds.map((filterId) => ({ filterId })), order: { id: 'ASC' } });
  const services = scopeIds.length
    ? await ds.getRepository(ServiceSetting).find({ where: scopeIds.map((scopeId) => ({ scopeId })) })
    : [];
  const depts = departmentIds.length
    ? await ds.getRepository(Department).find({ where: departmentIds.map((id) => ({ id })) })
    : [];
  return {
    filters: filters.map(({ id, includes }) => ({ id, includes })).sort((a, b) => a.id.localeCompare(b.id)),
    rules: rules.map(({ id, filterId, spec, createdAt }) => ({
      id,
      filterId,
      spec,
      createdAt: createdAt.getTime(),
    })),
    services: services
      .map(({ scope, scopeId, serviceId, action, enabled }) => ({
        scope,
        scopeId,
        serviceId,
        action,
        enabled: !!enabled,
      }))
      .sort((a, b) =>
        `${a.scopeId}${a.serviceId}${a.action}`.localeCompare(`${b.scopeId}${b.serviceId}${b.action}`),
      ),
    policies: depts.map((d) => ({ id: d.id, policy: d.firewallPolicy })),
  };
}
