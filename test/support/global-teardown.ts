/** Jest global tear-down: stops the Temporal dev server this run's set-up started. */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';

export default async function globalTeardown(): Promise<void> {
  rmSync(path.resolve(__dirname, `../../.vmflow/test-runs/${process.pid}.workflows.js`), { force: true });
  const file = path.resolve(__dirname, `../../.vmflow/test-runs/${process.pid}.json`);
  if (!existsSync(file)) return;
  const { server } = JSON.parse(readFileSync(file, 'utf8')) as { server: number };
  try {
    process.kill(-server, 'SIGTERM');
  } catch {
    /* already gone */
  }
  rmSync(file, { force: true });
}
