/**
 * Jest global set-up: one Temporal dev server for the whole run, on a free port of its own (several runs
 * may share a machine), and the test database created and migrated. `npm test` ran scripts/setup.sh
 * before this (pretest), which installed and started everything else, libvirtd in its namespace included.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { migrateDatabase } from '../../src/entities/migrate';
import { bundleWorkflowsNow, WORKFLOW_BUNDLE_ENV } from './temporal';
import { startDevServer } from './temporal-server';

/** One file per running test run: {owner (jest pid), server (dev server pid)}. */
const runsDir = path.resolve(__dirname, '../../.vmflow/test-runs');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops dev servers left behind by test runs that died without their tear-down. */
function reapOrphans(): void {
  if (!existsSync(runsDir)) return;
  for (const f of readdirSync(runsDir)) {
    const file = path.join(runsDir, f);
    if (f.endsWith('.workflows.js')) {
      if (!alive(Number.parseInt(f, 10))) rmSync(file, { force: true });
      continue;
    }
    try {
      const run = JSON.parse(readFileSync(file, 'utf8')) as { owner: number; server: number };
      if (alive(run.owner)) continue;
      if (alive(run.server)) process.kill(-run.server, 'SIGKILL');
    } catch {
      /* unreadable: remove it */
    }
    rmSync(file, { force: true });
  }
}

export default async function globalSetup(): Promise<void> {
  mkdirSync(runsDir, { recursive: true });
  process.env.NODE_ENV = 'test';
  process.env.LIBVIRT_URI ??= 'qemu:///system';
  process.env.DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/vmflow_test';
  await migrateDatabase(process.env.DATABASE_URL);
  // One bundle of src/workflows for every file of this run (removed by the tear-down, or by the next
  // run's reaping when this one died).
  const bundleFile = path.join(runsDir, `${process.pid}.workflows.js`);
  writeFileSync(bundleFile, (await bundleWorkflowsNow()).code);
  process.env[WORKFLOW_BUNDLE_ENV] = bundleFile;
  if (!process.env.TEST_TEMPORAL_ADDRESS) {
    reapOrphans();
    const server = await startDevServer({
      port: process.env.TEST_TEMPORAL_PORT ? Number(process.env.TEST_TEMPORAL_PORT) : undefined,
      logName: `test-temporal-${process.pid}`,
    });
    writeFileSync(
      path.join(runsDir, `${process.pid}.json`),
      JSON.stringify({ owner: process.pid, server: server.pid }),
    );
    process.env.TEST_TEMPORAL_ADDRESS = server.address;
  }
  process.env.TEMPORAL_ADDRESS = process.env.TEST_TEMPORAL_ADDRESS;
}
