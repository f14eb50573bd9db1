/**
 * Starts an ephemeral Temporal dev server (the pinned CLI, headless, in memory) on a free port: one per
 * test run (Jest global set-up) or per benchmark run.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, openSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Connection } from '@temporalio/client';

const root = path.resolve(__dirname, '../..');

/**
 * The dev server's latency settings, the same as scripts/temporal.sh's (docs/performance.md): the history
 * service reads each shard's transfer queue (which hands workflow and activity tasks to matching) at most
 * 20 times a second by default, so every task waited up to 50 ms, twice per activity.
 */
export const DEV_SERVER_DYNAMIC_CONFIG = ['history.transferProcessorMaxPollRPS=1000'];

/** A running dev server. */
export interface DevServer {
  address: string;
  pid: number;
  stop(): void;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function waitForTemporal(
  address: string,
  deadlineMs: number,
  server: { exitCode: number | null },
  log: string,
): Promise<void> {
  const end = Date.now() + deadlineMs;
  let last: unknown;
  while (Date.now() < end) {
    if (server.exitCode !== null)
      throw new Error(`Temporal dev server exited with ${server.exitCode}: see ${log}`);
    try {
      const c = await Connection.connect({ address, connectTimeout: 1000 });
      await c.workflowService.getSystemInfo({});
      await c.close();
      return;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error(`Temporal dev server did not come up on ${address}: ${String(last)}`);
}

/** Starts a dev server and waits until it answers. */
export async function startDevServer(opts: { port?: number; logName?: string } = {}): Promise<DevServer> {
  const port = opts.port ?? (await freePort());
  const cli = process.env.TEMPORAL_CLI ?? path.join(root, '.tools/temporal');
  if (!existsSync(cli)) throw new Error(`Temporal CLI not found at ${cli}: run scripts/setup.sh`);
  mkdirSync(path.join(root, '.vmflow'), { recursive: true });
  const logFile = path.join(root, `.vmflow/${opts.logName ?? `temporal-${process.pid}`}.log`);
  const child = spawn(
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
      '--search-attribute',
      'MachineId=Keyword',
      '--search-attribute',
      'OperationType=Keyword',
      ...DEV_SERVER_DYNAMIC_CONFIG.flatMap((kv) => ['--dynamic-config-value', kv]),
    ],
    { stdio: ['ignore', openSync(logFile, 'w'), openSync(logFile, 'a')], detached: true },
  );
  child.unref();
  const address = `127.0.0.1:${port}`;
  const stop = () => {
    try {
      process.kill(-child.pid!, 'SIGTERM');
    } catch {
      /* already gone */
    }
  };
  try {
    await waitForTemporal(address, 60_000, child, logFile);
  } catch (err) {
    stop();
    throw err;
  }
  return { address, pid: child.pid!, stop };
}
