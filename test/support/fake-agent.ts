/**
 * Fake vmflow guest agents for the watcher's tests: valid messages of the protocol (docs/guest-agent.md)
 * and agents served on real unix sockets, as libvirt serves a domain's `org.vmflow.agent.0` channel.
 */
/** A valid hello as the contract shows it. */
export const hello = (over: Record<string, unknown> = {}) => ({
  v: 1,
  type: 'hello',
  machineId: '2b5d1a9e-0000-4000-8000-000000000001',
  agentVersion: '1.0.0',
  os: { family: 'linux', name: 'Debian GNU/Linux', version: '12', kernel: '6.1.0-18-amd64', arch: 'amd64' },
  hostname: 'web-1',
  capabilities: ['metrics', 'processes.list'],
  intervalS: 10,
  ...over,
});

/** A valid metrics message. */
export const metrics = (over: Record<string, unknown> = {}) => ({
  v: 1,
  type: 'metrics',
  seq: 1,
  uptimeS: 12.5,
  cpu: { totalPct: 12.5, perCorePct: [10, 15] },
  load: [0.1, 0.2, 0.3],
  memory: {
    totalBytes: 1024,
    availableBytes: 512,
    usedBytes: 512,
    swapTotalBytes: 0,
    swapUsedBytes: 0,
  },
  filesystems: [{ mount: '/', fsType: 'ext4', totalBytes: 100, usedBytes: 50 }],
  nics: [{ name: 'eth0', rxBytes: 1, txBytes: 2, rxPackets: 3, txPackets: 4 }],
  disks: [{ name: 'vda', readBytes: 1, writeBytes: 2, reads: 3, writes: 4 }],
  users: [{ name: 'alice', tty: 'pts/0', since: '2026-01-02T03:04:05Z' }],
  topCpu: [{ pid: 1, name: 'init', cpuPct: 150, rssBytes: 10 }],
  topMemory: [],
  ...over,
});
