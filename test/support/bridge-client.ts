/**
 * A client on a libvirt network: a network namespace of its own (made here, removed by `remove()`), plugged
 * into the network's bridge inside the test libvirtd's namespace by a veth pair, with a static address
 * outside the network's DHCP range. Its traffic to a guest is bridged (through FORWARD), so the guest's
 * nwfilter judges it; the host's own traffic from the bridge address bypasses nwfilter
 * (docs/networks-and-firewall.md, "Known limits").
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import { NETNS } from './networks';

const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
const run = promisify(execFile);

export interface BridgeClient {
  ns: string;
  address: string;
  /** Runs a program inside the client's namespace; its stdout (rejects on a non-zero exit). */
  run(file: string, args: string[]): Promise<string>;
  remove(): void;
}

/**
 * Makes the client and waits until the bridge forwards its port. Async all the way: the API and the workers
 * of a suite run in the test's own process, whose event loop must never be blocked.
 */
export async function bridgeClient(bridge: string, address: string, prefix = 24): Promise<BridgeClient> {
  const tag = randomBytes(3).toString('hex');
  const ns = `vmflow-cl-${tag}`;
  const inner = `vcl${tag}`; // the client's end
  const outer = `vbr${tag}`; // the bridge's end
  const remove = () => {
    try {
      ip('netns', 'delete', ns); // takes its end of the pair, and so the pair, with it
    } catch {
      /* never made */
    }
  };
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', inner, 'netns', ns, 'type', 'veth', 'peer', 'name', outer, 'netns', NETNS);
    ip('-n', NETNS, 'link', 'set', outer, 'master', bridge, 'up');
    ip('-n', ns, 'addr', 'add', `${address}/${prefix}`, 'dev', inner);
    ip('-n', ns, 'link', 'set', inner, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    // The bridge runs STP: its new port listens and learns before it forwards.
    const until = Date.now() + 30_000;
    while (
      !(await run('bridge', ['-n', NETNS, 'link', 'show', 'dev', outer])).stdout.includes('state forwarding')
    ) {
      if (Date.now() > until) throw new Error(`bridge port ${outer} never forwarded`);
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    remove();
    throw err;
  }
  return {
    ns,
    address,
    run: async (file, args) => (await run('ip', ['netns', 'exec', ns, file, ...args])).stdout,
    remove,
  };
}
