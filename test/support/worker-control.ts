/** Worker processes for crash tests: started with their own env, killed as a crash would. */
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(__dirname, '../..');

/**
 * Starts a worker process (test/support/worker-process.ts) with `env` added; `reached(line)` resolves once it
 * has printed `line` (READY, HANG …). `output()` is what it printed so far.
 */
export function startWorker(
  hostName: string,
  hang?: string,
  env: Record<string, string> = {},
): { child: ChildProcess; reached: (line: string) => Promise<void>; output: () => string } {
  const child = spawn(
    path.join(root, 'node_modules/.bin/tsx'),
    [path.join(root, 'test/support/worker-process.ts')],
    {
      cwd: root,
      env: { ...process.env, ...env, TEST_HOST_NAME: hostName, ...(hang ? { TEST_HANG: hang } : {}) },
      stdio: ['ignore', 'pipe', 'inherit'],
      detached: true,
    },
  );
  let out = '';
  const waiters: Array<() => void> = [];
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    waiters.splice(0).forEach((w) => w());
  });
  const reached = (line: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (out.includes(line)) return resolve();
        if (child.exitCode !== null) return reject(new Error(`worker exited before printing ${line}`));
        waiters.push(check);
      };
      check();
    });
  return { child, reached, output: () => out };
}

/** Kills the worker process and its group as a crash would (SIGKILL), and waits for it to exit. */
export function kill9(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    process.kill(-child.pid!, 'SIGKILL');
  });
}
