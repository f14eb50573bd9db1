/**
 * `npm run bench`: every benchmark, each printing its figures as ratios against a baseline measured in
 * the same run. `npm run bench -- binding machines api` runs a subset.
 */
import 'reflect-metadata';
import { benchApi } from './api';
import { benchBinding } from './binding';
import { benchFirewall } from './firewall';
import { benchGuests } from './guests';
import { benchMachines } from './machines';
import { benchMetrics } from './metrics';

const benches: Record<string, () => Promise<void>> = {
  binding: benchBinding,
  machines: benchMachines,
  api: benchApi,
  firewall: benchFirewall,
  guests: benchGuests,
  metrics: benchMetrics,
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(benches);
  for (const name of wanted) {
    const run = benches[name];
    if (!run) throw new Error(`unknown bench "${name}" (have: ${Object.keys(benches).join(', ')})`);
    console.log(`\n=== ${name}`);
    await run();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
