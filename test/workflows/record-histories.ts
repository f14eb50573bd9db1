/**
 * Regenerates test/workflows/histories/*.json (see history-scenarios.ts):
 *   npx tsx test/workflows/record-histories.ts
 * Uses the Temporal server at TEMPORAL_ADDRESS, or starts the pinned dev server (TEMPORAL_CLI, else
 * .tools/temporal) on a free port for the duration of the run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';
import { WorkflowHarness } from '../support/workflow-harness';
import { recordHistories } from './history-scenarios';

const root = path.resolve(__dirname, '../..');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

async function waitForServer(address: string, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      const c = await Connection.connect({ address, connectTimeout: 1000 });
      await c.workflowService.getSystemInfo({});
      await c.close();
      return;
    } catch (err) {
      if (Date.now() > end)
        throw new Error(`Temporal dev server did not come up on ${address}: ${String(err)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

async function main(): Promise<void> {
  let server: ChildProcess | undefined;
  if (!process.env.TEMPORAL_ADDRESS) {
    const cli = process.env.TEMPORAL_CLI ?? path.join(root, '.tools/temporal');
    if (!existsSync(cli))
      throw new Error(`Temporal CLI not found at ${cli}: set TEMPORAL_CLI or TEMPORAL_ADDRESS`);
    const port = await freePort();
    server = spawn(
      cli,
      [
        'server',
        'start-dev',
        '--headless',
        '--ip',
        '127.0.0.1',
        '--port',
        String(port),
        '--namespace',
        'default',
        '--log-level',
        'warn',
      ],
      {
        stdio: 'ignore',
      },
    );
    process.env.TEMPORAL_ADDRESS = `127.0.0.1:${port}`;
  }
  try {
    await waitForServer(process.env.TEMPORAL_ADDRESS, 60_000);
    const h = await WorkflowHarness.create();
    try {
      const files = await recordHistories(h);
      for (const f of files) console.log(`wrote ${path.relative(root, f)}`);
    } finally {
      await h.teardown();
    }
  } finally {
    server?.kill('SIGTERM');
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
