/**
 * Benchmark of vmflow's libvirt binding against `virsh` doing the same work in the same run:
 * 1,000 × (look a domain up by name + read its info).
 *
 *  - binding: 1,000 sequential `lookupDomainByName` + `getInfo` on one connection (and the same
 *    with 32 calls in flight, which is how a worker with concurrent activities uses it);
 *  - virsh, one process: a single `virsh` reading 1,000 `dominfo <name>` commands from stdin
 *    (one connection, no process start per call; `dominfo` makes a few more RPCs than our pair);
 *  - virsh, one process per call: 50 `virsh dominfo <name>` runs, the per-call cost of shelling out.
 *
 * Creates and removes its own inactive domain `vmflow-test-bind-bench`. Run standalone with
 * `npx tsx bench/binding.ts` (LIBVIRT_URI selects the URI, default qemu:///system).
 */
import { spawn, execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Connection, LibvirtErrorCode, isLibvirtError, type Domain } from '../src/libvirt/connection';

const execFileAsync = promisify(execFile);
const DOMAIN = 'vmflow-test-bind-bench';
const CALLS = 1000;
const PER_PROCESS_CALLS = 50;

function domainXml(): string {
  return `<domain type='qemu'><name>${DOMAIN}</name><memory unit='KiB'>65536</memory><vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type></os></domain>`;
}

async function elapsed(fn: () => Promise<void>): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/** One virsh process running `commands` read from stdin; resolves when it exits. */
function virshBatch(uri: string, commands: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('virsh', ['-q', '-c', uri], { stdio: ['pipe', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`virsh exited ${code}: ${stderr}`)),
    );
    child.stdin.end(commands);
  });
}

async function removeBenchDomain(conn: Connection): Promise<void> {
  try {
    await (await conn.lookupDomainByName(DOMAIN)).undefine();
  } catch (e) {
    if (!isLibvirtError(e, LibvirtErrorCode.NO_DOMAIN)) throw e;
  }
}

/**
 * Measures the binding's cost for 1,000 lookup+info pairs against `virsh` in the same run and
 * prints the figures and the virsh/binding ratio.
 */
export async function benchBinding(): Promise<void> {
  const uri = process.env.LIBVIRT_URI ?? 'qemu:///system';
  const conn = await Connection.open(uri);
  try {
    await removeBenchDomain(conn); // a leftover of an interrupted run
    await conn.defineDomain(domainXml());
    const lookupAndInfo = async () => {
      const d: Domain = await conn.lookupDomainByName(DOMAIN);
      await d.getInfo();
    };

    // Warm-up: connection buffers, worker threads, JIT.
    for (let i = 0; i < 100; i++) await lookupAndInfo();

    const sequential = await elapsed(async () => {
      for (let i = 0; i < CALLS; i++) await lookupAndInfo();
    });
    const parallel = await elapsed(async () => {
      let next = 0;
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next++ < CALLS) await lookupAndInfo();
        }),
      );
    });
    const batch = await elapsed(() => virshBatch(uri, `dominfo ${DOMAIN}\n`.repeat(CALLS)));
    const perProcess = await elapsed(async () => {
      for (let i = 0; i < PER_PROCESS_CALLS; i++)
        await execFileAsync('virsh', ['-q', '-c', uri, 'dominfo', DOMAIN]);
    });

    const fmt = (ms: number) => ms.toFixed(0);
    console.log(
      `binding: ${CALLS} lookup+info in ${fmt(sequential)} ms (${((sequential * 1000) / CALLS).toFixed(0)} µs each); ` +
        `virsh (one process, batch): ${fmt(batch)} ms; ratio virsh/binding = ${(batch / sequential).toFixed(1)}×`,
    );
    console.log(`binding, 32 in flight: ${CALLS} lookup+info in ${fmt(parallel)} ms`);
    const perCall = perProcess / PER_PROCESS_CALLS;
    console.log(
      `virsh (one process per call): ${PER_PROCESS_CALLS} calls in ${fmt(perProcess)} ms ` +
        `(${perCall.toFixed(1)} ms each, ≈ ${fmt(perCall * CALLS)} ms per ${CALLS}; ` +
        `ratio virsh/binding = ${((perCall * CALLS) / sequential).toFixed(0)}×)`,
    );
  } finally {
    await removeBenchDomain(conn);
    await conn.close();
  }
}

if (require.main === module) {
  benchBinding().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
