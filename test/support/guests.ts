/**
 * What the suites and benches that boot the project's guest share: the image (built or found in the cache,
 * then uploaded through the API as an operator would), programs run inside the guest through the QEMU guest
 * agent, and TCP listeners inside a network namespace for the guest to reach. Async all the way: the API and
 * the workers run in the caller's process, whose event loop must never be blocked.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { type User } from '../../src/entities/user';
import { type Domain } from '../../src/libvirt/connection';
import { type ApiHarness } from './api-harness';
import { operationEnded } from './api-operations';
import { waitFor } from './machines';

const execFileAsync = promisify(execFile);

/** The project's guest image file (scripts/image/build.sh: built once per recipe, then found in the cache). */
export async function projectImageFile(): Promise<string> {
  const { stdout } = await execFileAsync('bash', ['scripts/image/build.sh'], { maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim().split('\n').pop()!;
}

/**
 * Registers the project's image on `hostName` through the API (POST, then the streamed PUT of its content,
 * sha256 checked) and waits for the import; its id.
 */
export async function uploadProjectImage(h: ApiHarness, admin: User, hostName: string): Promise<string> {
  const file = await projectImageFile();
  const sha256 = createHash('sha256')
    .update(await readFile(file))
    .digest('hex');
  const created = await h.call('POST', '/api/images', {
    as: admin,
    body: {
      name: `debian-12-vmflow-${randomUUID().slice(0, 8)}`,
      osFamily: 'linux',
      format: 'qcow2',
      hostName,
      firmware: 'bios',
      provisioning: 'cloud-init',
      sha256,
    },
  });
  if (created.status !== 201)
    throw new Error(`POST /api/images: ${created.status} ${JSON.stringify(created.body)}`);
  const imageId = created.body.id as string;
  const put = await fetch(`${h.url}/api/images/${imageId}/content`, {
    method: 'PUT',
    headers: {
      authorization: `Bearer ${h.token(admin)}`,
      'content-type': 'application/octet-stream',
      'content-length': String((await stat(file)).size),
    },
    body: Readable.toWeb(createReadStream(file)) as unknown as ReadableStream,
    duplex: 'half',
  } as RequestInit);
  if (put.status !== 202) throw new Error(`PUT content: ${put.status} ${await put.text()}`);
  const op = await operationEnded(
    h,
    admin,
    ((await put.json()) as { operation: { id: string } }).operation.id,
    10 * 60_000,
  );
  if (op.status !== 'succeeded') throw new Error(`image import ${op.status}: ${op.error}`);
  return imageId;
}

/**
 * The project's image uploaded through the API ({@link uploadProjectImage}) and a template on it (1 vCPU,
 * 1 GiB, a 4 GiB linked disk) named `<prefix>-<random>`: what a suite that boots the guest starts from.
 */
export async function projectImageTemplate(
  h: ApiHarness,
  admin: User,
  hostName: string,
  prefix: string,
): Promise<{ imageId: string; templateId: string }> {
  const imageId = await uploadProjectImage(h, admin, hostName);
  const template = await h.call('POST', '/api/templates', {
    as: admin,
    body: {
      name: `${prefix}-${randomUUID().slice(0, 8)}`,
      cpu: 1,
      memory: 1024,
      storage: 4,
      os: 'debian-12',
      imageId,
      diskMode: 'linked',
    },
  });
  if (template.status !== 201) throw new Error(`the template was refused: ${JSON.stringify(template.body)}`);
  expect(template.body).toMatchObject({ imageId, diskMode: 'linked' });
  return { imageId, templateId: template.body.id };
}

/** What a program run in the guest returned. */
export interface GuestRun {
  code: number;
  out: string;
  err: string;
}

/** Runs a program in the guest through the QEMU guest agent; its exit code and output. */
export async function guestExec(
  dom: Domain,
  file: string,
  args: string[] = [],
  deadlineMs = 60_000,
): Promise<GuestRun> {
  const started = JSON.parse(
    await dom.qemuAgentCommand(
      JSON.stringify({ execute: 'guest-exec', arguments: { path: file, arg: args, 'capture-output': true } }),
      30,
    ),
  ) as { return: { pid: number } };
  return waitFor(
    async () => {
      const s = JSON.parse(
        await dom.qemuAgentCommand(
          JSON.stringify({ execute: 'guest-exec-status', arguments: { pid: started.return.pid } }),
          30,
        ),
      ) as { return: { exited: boolean; exitcode?: number; 'out-data'?: string; 'err-data'?: string } };
      if (!s.return.exited) return undefined;
      const text = (b64?: string) => (b64 ? Buffer.from(b64, 'base64').toString('utf8') : '');
      return {
        code: s.return.exitcode ?? -1,
        out: text(s.return['out-data']),
        err: text(s.return['err-data']),
      };
    },
    `${file} in the guest`,
    deadlineMs,
  );
}

/**
 * Whether the guest opens a TCP connection to `address:port` within `timeoutSec` (bash's /dev/tcp, run
 * through the guest agent): true when it connected, false when it timed out (a dropped SYN). A refused
 * connection or any other failure throws: it would prove nothing about the firewall.
 */
export async function guestConnects(
  dom: Domain,
  address: string,
  port: number,
  timeoutSec: number,
): Promise<boolean> {
  const r = await guestExec(dom, '/usr/bin/timeout', [
    String(timeoutSec),
    '/bin/bash',
    '-c',
    `exec 3<>/dev/tcp/${address}/${port}`,
  ]);
  if (r.code === 0) return true;
  if (r.code === 124) return false;
  throw new Error(`connecting to ${address}:${port} from the guest failed (exit ${r.code}): ${r.err.trim()}`);
}

/** A TCP listener in a network namespace. */
export interface Listener {
  /** Connections it accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/**
 * Listens on `address:port` inside the namespace `ns` (a node process under `ip netns exec`) and accepts
 * every connection, counting them. Resolves once it listens.
 */
export async function listenIn(ns: string, address: string, port: number): Promise<Listener> {
  const code = `const n=require('net');let c=0;n.createServer(s=>{c++;process.stdout.write('accepted '+c+'\\n');s.end()}).listen(${port},${JSON.stringify(address)},()=>process.stdout.write('listening\\n'))`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', code], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let accepted = 0;
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  let partial = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (line === 'listening') resolve();
        const m = /^accepted (\d+)$/.exec(line);
        if (m) accepted = Number(m[1]);
      }
    });
    child.once('exit', (c) =>
      reject(new Error(`listener on ${address}:${port} in ${ns} exited (${c}): ${err}`)),
    );
  });
  return {
    accepted: () => accepted,
    close: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill();
      await gone;
    },
  };
}
