/**
 * vmflow's in-guest agent (guest-agent/, Go): its own tests and vet run from here so `npm test` and CI
 * run them, and scripts/guest-agent/build.sh must give a static Linux ELF and a Windows PE.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = path.resolve(__dirname, '../../..');
const agentDir = path.join(root, 'guest-agent');
const cache =
  process.env.VMFLOW_CACHE ??
  path.join(process.env.XDG_CACHE_HOME ?? path.join(homedir(), '.cache'), 'vmflow');

/** `go` from PATH, else the official tarball's place. */
function goBinary(): string {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && existsSync(path.join(dir, 'go'))) return path.join(dir, 'go');
  }
  return '/usr/local/go/bin/go';
}

const goEnv = {
  ...process.env,
  PATH: `${path.dirname(goBinary())}:${process.env.PATH ?? ''}`,
  // Go's build cache needs a writable place; without a HOME, the per-user vmflow cache.
  GOCACHE: process.env.GOCACHE ?? (existsSync(homedir()) ? undefined : path.join(cache, 'go-build')),
  GOFLAGS: '-mod=readonly',
};

async function go(...args: string[]): Promise<string> {
  const { stdout, stderr } = await run(goBinary(), args, { cwd: agentDir, env: goEnv, maxBuffer: 16 << 20 });
  return stdout + stderr;
}

/** Whether an ELF file is a 64-bit x86-64 executable without an interpreter or dynamic section. */
function elfInfo(buf: Buffer): { x8664: boolean; static: boolean } {
  if (buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2 || buf[5] !== 1)
    throw new Error('not a 64-bit little-endian ELF');
  const phoff = Number(buf.readBigUInt64LE(0x20));
  const phentsize = buf.readUInt16LE(0x36);
  const phnum = buf.readUInt16LE(0x38);
  const types = Array.from({ length: phnum }, (_, i) => buf.readUInt32LE(phoff + i * phentsize));
  const PT_DYNAMIC = 2;
  const PT_INTERP = 3;
  return {
    x8664: buf.readUInt16LE(0x12) === 0x3e,
    static: !types.includes(PT_INTERP) && !types.includes(PT_DYNAMIC),
  };
}

describe('guest agent (Go)', () => {
  it('passes go vet for Linux and Windows', async () => {
    await go('vet', './...');
    await run(goBinary(), ['vet', './...'], { cwd: agentDir, env: { ...goEnv, GOOS: 'windows' } });
  });

  it('passes its own tests', async () => {
    const out = await go('test', './...');
    expect(out).toMatch(/ok\s+vmflow\.local\/guest-agent\/internal\/agent/);
    expect(out).toMatch(/ok\s+vmflow\.local\/guest-agent\/internal\/collect/);
    expect(out).toMatch(/ok\s+vmflow\.local\/guest-agent\/internal\/commands/);
    expect(out).toMatch(/ok\s+vmflow\.local\/guest-agent\/internal\/protocol/);
    expect(out).not.toMatch(/FAIL/);
  });

  it('builds a static Linux binary and a Windows executable, cached by source hash', async () => {
    const build = async () =>
      run('bash', [path.join(root, 'scripts/guest-agent/build.sh')], { env: goEnv, maxBuffer: 1 << 20 });
    const first = await build();
    const linux = first.stdout.trim().split('\n').at(-1) ?? '';
    expect(linux).toMatch(/\/guest-agent\/[0-9a-f]{16}\/vmflow-agent-linux-amd64$/);
    const elf = elfInfo(readFileSync(linux));
    expect(elf).toEqual({ x8664: true, static: true });

    const exe = readFileSync(path.join(path.dirname(linux), 'vmflow-agent-windows-amd64.exe'));
    expect(exe.subarray(0, 2).toString('latin1')).toBe('MZ');
    const pe = exe.readUInt32LE(0x3c);
    expect(exe.readUInt32BE(pe)).toBe(0x50450000); // "PE\0\0"
    expect(exe.readUInt16LE(pe + 4)).toBe(0x8664); // AMD64

    const sums = readFileSync(path.join(path.dirname(linux), 'SHA256SUMS'), 'utf8');
    expect(sums).toMatch(/^[0-9a-f]{64} {2}vmflow-agent-linux-amd64$/m);

    const second = await build();
    expect(second.stdout.trim().split('\n').at(-1)).toBe(linux);
    expect(second.stderr).toMatch(/already built/);
  });
});
