/**
 * Stubbed guest activities (src/activities/guest.ts) for the workflow tier: a guest that answers exec,
 * reads and agent requests with what the test says. Failures and gates come from the common stub machinery
 * (`fail: { guestExecStart: … }`, `gate('guestExecWait')`).
 */
import type { GuestActivities } from '../../src/activities/guest';
import type { GuestInfo } from '../../src/guests/qemu-agent';
import type { GuestExecResult, GuestReadOutcome } from '../../src/workflows/shared';

/** Options of the guest stubs. */
export interface GuestStubOptions {
  /** What guestExecWait reports (default: exit 0, `hi\n`). */
  exec?: GuestExecResult;
  /** What a service action reports as the state after (default `running` for start/restart, `stopped` for stop). */
  serviceState?: string;
  /** What readGuest gives (default: an answer). */
  read?: GuestReadOutcome;
}

/** The guest stubs' world: programs started (pid → input). */
export interface GuestWorld {
  started: Array<{ pid: number; command: string; args: string[]; stdin: boolean }>;
}

const INFO: GuestInfo = {
  os: {
    id: 'debian',
    name: 'Debian GNU/Linux',
    prettyName: 'Debian GNU/Linux 12 (bookworm)',
    version: '12 (bookworm)',
    versionId: '12',
    kernelRelease: '6.1.0-27-cloud-amd64',
    kernelVersion: '#1 SMP',
    machine: 'x86_64',
  },
  hostname: 'stub',
  users: [],
  timezone: { zone: 'UTC', offsetS: 0 },
  interfaces: [],
  filesystems: [],
  unavailable: [],
};

/** The guest activities of the stub host. */
export function guestStubs(opts: { guest?: GuestStubOptions }): {
  hypervisor: GuestActivities;
  world: GuestWorld;
} {
  const o = opts.guest ?? {};
  const world: GuestWorld = { started: [] };
  const hypervisor: GuestActivities = {
    readGuest: async (input) =>
      structuredClone(o.read ?? { ok: true, value: input.what === 'info' ? INFO : { [input.what]: [] } }),
    readGuestInfo: async () => structuredClone(INFO),
    agentRequest: (async (input: { command: string; args: { name?: string } }) => {
      switch (input.command) {
        case 'processes.list':
          return { processes: [] };
        case 'services.list':
          return { services: [] };
        case 'packages.list':
          return { packages: [] };
        case 'process.kill':
          return {};
        default:
          return { state: o.serviceState ?? (input.command === 'service.stop' ? 'stopped' : 'running') };
      }
    }) as GuestActivities['agentRequest'],
    guestExecStart: async (input) => {
      const pid = 1000 + world.started.length;
      world.started.push({ pid, command: input.command, args: input.args, stdin: !!input.stdin });
      return { pid };
    },
    guestExecWait: async () =>
      structuredClone(
        o.exec ?? {
          exitCode: 0,
          signal: null,
          timedOut: false,
          stdout: 'hi\n',
          stderr: '',
          stdoutTruncated: false,
          stderrTruncated: false,
        },
      ),
  };
  return { hypervisor, world };
}
