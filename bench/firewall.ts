/**
 * What "push only the filters that changed" buys, on the real libvirtd, in one run:
 *
 *  - baseline: N filters redefined unconditionally with `virNWFilterDefineXML` (what a naive flush does);
 *  - `pushFilters` when every filter differs (first push: the read-and-compare cost on top of the baseline);
 *  - `pushFilters` when nothing differs (a flush after a flush: reads only, no define);
 *  - the same two against a department filter **in use by a running guest**, where each define makes
 *    libvirt rebuild that interface's ebtables/iptables chains.
 *
 * Printed as ratios against the baseline. Creates and removes its own `vmflow-fw-bench-*` filters and a
 * tiny OS-less domain on the host's default network. Filters: BENCH_FILTERS (default 40).
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createNwfilterActivities } from '../src/activities/nwfilter';
import { presetRules, serviceRules } from '../src/firewall/compile';
import { LibvirtProvider } from '../src/libvirt/provider';
import { buildDomainXml, buildNWFilterXml, type FilterSpec } from '../src/libvirt/xml';
import { macFromId } from '../src/secrets';

const NETWORK = process.env.DEFAULT_NETWORK ?? 'vmflow-default';

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** A realistic filter: a preset plus a few service rules, distinguished by a comment per generation. */
function spec(name: string, generation: number): FilterSpec {
  return {
    name,
    chain: 'root',
    rules: [
      ...presetRules('BLOCK_ALL'),
      ...serviceRules([
        { serviceId: 'ssh', action: 'PROVIDE' },
        { serviceId: 'https', action: 'USE' },
      ]),
      { action: 'accept', direction: 'in', protocol: 'tcp', dstPortStart: 8000 + generation, priority: 500 },
    ],
  };
}

/** Runs the firewall bench and prints its figures. */
export async function benchFirewall(): Promise<void> {
  const n = Number(process.env.BENCH_FILTERS ?? 40);
  const libvirt = new LibvirtProvider(process.env.LIBVIRT_URI ?? 'qemu:///system');
  const conn = await libvirt.get();
  const fw = createNwfilterActivities({ libvirt });
  const tag = randomUUID().slice(0, 8);
  const names = Array.from({ length: n }, (_, i) => `vmflow-fw-bench-${tag}-${i}`);
  const push = (generation: number) =>
    fw.pushFilters({
      filters: names.map((name) => ({ spec: spec(name, generation), mode: 'upsert' as const })),
    });
  const id = randomUUID();
  const deptName = `vmflow-fw-bench-${tag}-dept`;
  const vmName = `vmflow-fw-bench-${tag}-vm`;
  let dom: Awaited<ReturnType<typeof conn.defineDomain>> | null = null;
  try {
    await push(0); // define them once (uuids assigned)
    const uuids = await Promise.all(
      names.map(async (name) => (await conn.lookupNWFilterByName(name)).getUUID()),
    );
    const baseline = await time(async () => {
      for (const [i, name] of names.entries())
        await conn.defineNWFilter(buildNWFilterXml({ ...spec(name, 1), uuid: uuids[i] }));
    });
    const changed = await time(async () => {
      const r = await push(2);
      if (r.pushed.length !== n) throw new Error(`expected ${n} pushed, got ${r.pushed.length}`);
    });
    const unchanged = await time(async () => {
      const r = await push(2);
      if (r.pushed.length !== 0) throw new Error(`expected nothing pushed, got ${r.pushed.length}`);
    });
    console.log(`${n} filters, each ${spec('x', 0).rules!.length} rules`);
    console.log(`  baseline: unconditional define of each    ${baseline.toFixed(0)} ms (1.00×)`);
    console.log(
      `  pushFilters, all differ                  ${changed.toFixed(0)} ms (${(changed / baseline).toFixed(2)}×)`,
    );
    console.log(
      `  pushFilters, nothing differs             ${unchanged.toFixed(0)} ms (${(unchanged / baseline).toFixed(2)}×)`,
    );

    // A filter in use by a running interface: a define rebuilds the guest's chains.
    await conn.defineNWFilter(buildNWFilterXml(spec(deptName, 0)));
    await conn.defineNWFilter(
      buildNWFilterXml({ name: vmName, chain: 'root', filterrefs: [{ filter: deptName }] }),
    );
    dom = await conn.defineDomain(
      buildDomainXml({
        name: `vmflow-fw-bench-${tag}`,
        uuid: id,
        type: 'qemu',
        memoryMiB: 32,
        vcpus: 1,
        disks: [],
        interfaces: [
          {
            type: 'network',
            source: NETWORK,
            mac: macFromId(id),
            model: 'virtio',
            filterref: { filter: vmName },
          },
        ],
      }),
    );
    await dom.start();
    const rounds = 10;
    const deptPush = (generation: number) =>
      fw.pushFilters({ filters: [{ spec: spec(deptName, generation), mode: 'upsert' }] });
    const live = await time(async () => {
      for (let g = 1; g <= rounds; g++) await deptPush(g);
    });
    const liveNoop = await time(async () => {
      for (let g = 1; g <= rounds; g++) await deptPush(rounds);
    });
    console.log(`department filter used by a running guest, ${rounds} pushes`);
    console.log(`  each one differs (chains rebuilt)        ${live.toFixed(0)} ms (1.00×)`);
    console.log(
      `  none differs                             ${liveNoop.toFixed(0)} ms (${(liveNoop / live).toFixed(2)}×)`,
    );
  } finally {
    if (dom) {
      await dom.destroy().catch(() => undefined);
      await dom.undefine().catch(() => undefined);
    }
    for (const name of [vmName, deptName, ...names]) {
      await conn
        .lookupNWFilterByName(name)
        .then((f) => f.undefine())
        .catch(() => undefined);
    }
    await libvirt.close();
  }
}

if (require.main === module) {
  benchFirewall().then(
    () => process.exit(0),
    (err) => {
      console.error(err);
      process.exit(1);
    },
  );
}
