/**
 * The QEMU guest agent's answers as vmflow reads them (src/guests/qemu-agent.ts): information shaped and
 * bounded, a part that is missing or malformed left out (named in `unavailable`), and exec output capped.
 */
import { capOutput, execResultOf, guestInfoFrom } from '../../../src/guests/qemu-agent';
import { GUEST_EXEC_MAX_OUTPUT_BYTES } from '../../../src/workflows/shared';

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

describe('guest information', () => {
  it('shapes every part of a Debian guest', () => {
    const info = guestInfoFrom({
      os: {
        id: 'debian',
        name: 'Debian GNU/Linux',
        'pretty-name': 'Debian GNU/Linux 12 (bookworm)',
        version: '12 (bookworm)',
        'version-id': '12',
        'kernel-release': '6.1.0-27-cloud-amd64',
        'kernel-version': '#1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)',
        machine: 'x86_64',
      },
      hostname: { 'host-name': 'web-1' },
      users: [{ user: 'alice', 'login-time': 1764660000.5 }],
      timezone: { zone: 'UTC', offset: 0 },
      interfaces: [
        {
          name: 'lo',
          'hardware-address': '00:00:00:00:00:00',
          'ip-addresses': [{ 'ip-address-type': 'ipv4', 'ip-address': '127.0.0.1', prefix: 8 }],
        },
        { name: 'eth0', 'hardware-address': '52:54:00:12:34:56' },
      ],
      filesystems: [
        {
          name: 'vda1',
          mountpoint: '/',
          type: 'ext4',
          'used-bytes': 10,
          'total-bytes': 100,
          disk: [{ dev: '/dev/vda1' }],
        },
      ],
    });
    expect(info).toEqual({
      os: {
        id: 'debian',
        name: 'Debian GNU/Linux',
        prettyName: 'Debian GNU/Linux 12 (bookworm)',
        version: '12 (bookworm)',
        versionId: '12',
        kernelRelease: '6.1.0-27-cloud-amd64',
        kernelVersion: '#1 SMP PREEMPT_DYNAMIC Debian 6.1.115-1 (2024-11-01)',
        machine: 'x86_64',
      },
      hostname: 'web-1',
      users: [{ name: 'alice', domain: null, loginTime: '2025-12-02T07:20:00.500Z' }],
      timezone: { zone: 'UTC', offsetS: 0 },
      interfaces: [
        {
          name: 'lo',
          hardwareAddress: '00:00:00:00:00:00',
          addresses: [{ type: 'ipv4', address: '127.0.0.1', prefix: 8 }],
        },
        { name: 'eth0', hardwareAddress: '52:54:00:12:34:56', addresses: [] },
      ],
      filesystems: [
        { name: 'vda1', mountpoint: '/', type: 'ext4', usedBytes: 10, totalBytes: 100, disks: ['/dev/vda1'] },
      ],
      unavailable: [],
    });
  });

  it('leaves out a part the agent did not give, or gave malformed (an untrusted guest)', () => {
    const info = guestInfoFrom({
      hostname: { 'host-name': 'x'.repeat(256) },
      users: 'not a list',
      interfaces: Array.from({ length: 257 }, (_, i) => ({ name: `e${i}` })),
      filesystems: [{ name: 'a', mountpoint: '/', type: 'ext4', 'used-bytes': -1 }],
      timezone: { offset: 3600 },
    });
    expect(info).toMatchObject({
      os: null,
      hostname: null,
      users: [],
      interfaces: [],
      filesystems: [],
      timezone: { zone: null, offsetS: 3600 },
    });
    expect(info.unavailable.sort()).toEqual(['filesystems', 'hostname', 'interfaces', 'os', 'users']);
  });
});

describe('exec output', () => {
  it('is cut at the cap, and says so', () => {
    const big = Buffer.alloc(GUEST_EXEC_MAX_OUTPUT_BYTES + 10, 'a');
    expect(capOutput(b64(big))).toEqual({ text: 'a'.repeat(GUEST_EXEC_MAX_OUTPUT_BYTES), truncated: true });
    expect(capOutput(b64('hi\n'))).toEqual({ text: 'hi\n', truncated: false });
    expect(capOutput(undefined)).toEqual({ text: '', truncated: false });
  });

  it('a character cut in two by the cap is replaced, never passed on as broken UTF-8', () => {
    expect(capOutput(b64('aé'), 2)).toEqual({ text: 'a\uFFFD', truncated: true });
  });

  it('gives the exit code, or the signal, and the agent’s own truncation', () => {
    expect(
      execResultOf({ exited: true, exitcode: 2, 'out-data': b64('x'), 'err-truncated': true }, false),
    ).toEqual({
      exitCode: 2,
      signal: null,
      timedOut: false,
      stdout: 'x',
      stderr: '',
      stdoutTruncated: false,
      stderrTruncated: true,
    });
    expect(execResultOf({ exited: true, signal: 9 }, true)).toMatchObject({
      exitCode: null,
      signal: 9,
      timedOut: true,
    });
    expect(execResultOf({ exited: false }, true)).toMatchObject({ exitCode: null, signal: null });
  });
});
