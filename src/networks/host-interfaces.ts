/**
 * The host's own network interfaces, as libvirtd sees them (its interface driver, in its network
 * namespace): how a `bridge`-mode network learns whether the bridge it names exists. libvirt itself
 * starts a bridge-mode network on a bridge that does not exist and only fails when a guest attaches, so
 * vmflow asks first. The project's native binding has no interface API, so this goes through `virsh`
 * (libvirt-clients, installed with the daemon) on the same URI.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { attr, parseRoot } from '../libvirt/xml/dom';
import { assertInterfaceName } from '../libvirt/xml';

const run = promisify(execFile);

/** An interface of the host: its libvirt type (`bridge`, `ethernet`, `bond`, `vlan`). */
export interface HostInterface {
  name: string;
  type: string;
}

/**
 * Looks up a host interface by name through libvirt at `uri`. Null when the host has none by that name;
 * throws when libvirt cannot be asked (no virsh, connection refused).
 */
export async function lookupHostInterface(uri: string, name: string): Promise<HostInterface | null> {
  assertInterfaceName(name, 'bridgeName'); // never an option or a path on virsh's command line
  try {
    const { stdout } = await run('virsh', ['-q', '-c', uri, 'iface-dumpxml', '--', name], {
      timeout: 15_000,
      env: { ...process.env, LC_ALL: 'C' },
    });
    const root = parseRoot(stdout, 'interface');
    return { name, type: attr(root, 'type') ?? 'unknown' };
  } catch (e) {
    const stderr = String((e as { stderr?: unknown }).stderr ?? '');
    if (/Interface not found|couldn't find interface/i.test(stderr)) return null;
    throw new Error(`could not look up host interface ${name}: ${stderr.trim() || (e as Error).message}`);
  }
}
