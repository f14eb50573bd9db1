/**
 * Regenerates test/workflows/histories/*.json (see history-scenarios.ts):
 *   npx tsx test/workflows/record-histories.ts [workflowName | workflowName.case …]
 * With workflow names, only their histories are re-recorded (the others stay as recorded); with scenario
 * names (`createMachine.happy-image`), only those files are written (to add a history beside older ones).
 * Uses the Temporal server at TEMPORAL_ADDRESS, or starts the pinned dev server (TEMPORAL_CLI, else
 * .tools/temporal) on a free port for the duration of the run.
 */
import path from 'node:path';
import { startDevServer, type DevServer } from '../support/temporal-server';
import { WorkflowHarness } from '../support/workflow-harness';
import { recordHistories } from './history-scenarios';

const root = path.resolve(__dirname, '../..');

async function main(): Promise<void> {
  let server: DevServer | undefined;
  if (!process.env.TEMPORAL_ADDRESS) {
    server = await startDevServer({ logName: 'record-histories-temporal' });
    process.env.TEMPORAL_ADDRESS = server.address;
  }
  try {
    const h = await WorkflowHarness.create();
    try {
      const files = await recordHistories(h, undefined, process.argv.slice(2));
      for (const f of files) console.log(`wrote ${path.relative(root, f)}`);
    } finally {
      await h.teardown();
    }
  } finally {
    server?.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
