/**
 * Recorded runs of the guest workflows (see history-scenarios.ts): a happy path and a failure of the guest
 * for each command, and each kind of read. They run against the guest stubs (test/support/guest-stubs.ts).
 */
import { operationContext } from '../support/workflow-harness';
import { machineFixture } from '../support/workflow-stubs';
import { GuestFailureType } from '../../src/workflows/shared';
import type { Scenario } from './history-scenarios';
import { settle } from './history-runs';

const running = (hostName: string) => ({
  machines: [machineFixture('m-recorded', hostName, { status: 'running' })],
});
const onRecorded = { ...operationContext(), machineId: 'm-recorded' };
const SEALED = { v: 1, iv: 'iv', tag: 'tag', data: 'sealed' } as const;
const exec = { ...onRecorded, command: '/bin/echo', args: ['hi'], timeoutS: 30 };
const read = (hostName: string, what: 'info' | 'processes') => ({
  hostName,
  machineId: 'm-recorded',
  internalName: 'vmflow-m-recorded',
  what,
  timeoutMs: 15_000,
});

export const GUEST_SCENARIOS: Scenario[] = [
  {
    name: 'guestExec.happy',
    workflow: 'guestExec',
    stubs: running,
    run: async (run) => settle(await run.start('guestExec', { ...exec, stdin: SEALED })),
  },
  {
    name: 'guestExec.fail-guestExecWait',
    workflow: 'guestExec',
    stubs: (host) => ({ ...running(host), fail: { guestExecWait: GuestFailureType.Command } }),
    run: async (run) => settle(await run.start('guestExec', exec)),
  },
  {
    name: 'guestKillProcess.happy',
    workflow: 'guestKillProcess',
    stubs: running,
    run: async (run) =>
      settle(await run.start('guestKillProcess', { ...onRecorded, pid: 4242, signal: 'TERM' })),
  },
  {
    name: 'guestKillProcess.fail-agentRequest',
    workflow: 'guestKillProcess',
    stubs: (host) => ({ ...running(host), fail: { agentRequest: GuestFailureType.Unavailable } }),
    run: async (run) =>
      settle(await run.start('guestKillProcess', { ...onRecorded, pid: 4242, signal: 'TERM' })),
  },
  {
    name: 'guestServiceAction.happy',
    workflow: 'guestServiceAction',
    stubs: running,
    run: async (run) =>
      settle(
        await run.start('guestServiceAction', { ...onRecorded, name: 'cron.service', action: 'restart' }),
      ),
  },
  {
    name: 'guestServiceAction.fail-agentRequest',
    workflow: 'guestServiceAction',
    stubs: (host) => ({ ...running(host), fail: { agentRequest: GuestFailureType.Timeout } }),
    run: async (run) =>
      settle(await run.start('guestServiceAction', { ...onRecorded, name: 'cron.service', action: 'stop' })),
  },
  {
    name: 'readGuest.info',
    workflow: 'readGuest',
    stubs: running,
    run: async (run, s) => settle(await run.start('readGuest', read(s.hostName, 'info'))),
  },
  {
    name: 'readGuest.processes',
    workflow: 'readGuest',
    stubs: running,
    run: async (run, s) => settle(await run.start('readGuest', read(s.hostName, 'processes'))),
  },
];
