/**
 * The runs whose histories are committed under test/workflows/histories and replayed by replay.test.ts:
 * for every workflow a happy path and at least one compensating failure (and a cancellation for the
 * sagas that make resources). Regenerate with `npx tsx test/workflows/record-histories.ts` (or
 * `RECORD_HISTORIES=1 npm run test:workflows`, which runs that script first) — only when a workflow
 * change is meant to be incompatible; otherwise guard it with patched() and keep the old histories.
 * (Not imported by Jest: prettier 3 needs dynamic import, which Jest's VM lacks.)
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import * as prettier from 'prettier';
import {
  type WorkflowHarness,
  type WorkflowRunner,
  type WorkflowName,
  cloneMachineInput,
  createMachineInput,
  operationContext,
} from '../support/workflow-harness';
import {
  INJECTED,
  type StubOptions,
  type Stubs,
  createStubs,
  imagePlanFixture,
  machineFixture,
} from '../support/workflow-stubs';
import { historyToJsonText } from '../support/workflow-history';
import { uniqueId } from '../support/temporal';
import { FIREWALL_SCENARIOS } from './history-scenarios-firewall';
import { NETWORK_SCENARIOS } from './history-scenarios-network';
import { IMAGE_SCENARIOS } from './history-scenarios-image';
import { GUEST_SCENARIOS } from './history-scenarios-guest';
import { cancelDuring, settle } from './history-runs';

export { cancelDuring, settle };

/** Where the committed histories live. */
export const HISTORIES_DIR = path.join(__dirname, 'histories');

/** A recorded run (scenario lists of other features live in history-scenarios-<feature>.ts). */
export interface Scenario {
  /** File name without `.json`: `<workflow>.<case>`. */
  name: string;
  workflow: WorkflowName;
  stubs: (hostName: string) => Partial<StubOptions>;
  /** Starts the run and waits until it is closed. */
  run: (run: WorkflowRunner, stubs: Stubs) => Promise<WorkflowHandle>;
}

const create = (start: boolean) => createMachineInput({ start });
const existing = (hostName: string, status: 'off' | 'running' = 'off') =>
  machineFixture('m-recorded', hostName, { status });
const onRecorded = { ...operationContext(), machineId: 'm-recorded' };
const imaged = (hostName: string) => machineFixture('m-recorded', hostName, { imageId: 'image-1' });
const SEALED = { v: 1, iv: 'iv', tag: 'tag', data: 'sealed' } as const;
const clone = (linked: boolean) => cloneMachineInput('m-recorded', { linked });

export const SCENARIOS: Scenario[] = [
  {
    name: 'pingHost.happy',
    workflow: 'pingHost',
    stubs: () => ({}),
    run: async (run, s) => settle(await run.start('pingHost', { hostName: s.hostName })),
  },
  {
    name: 'createMachine.happy-start',
    workflow: 'createMachine',
    stubs: () => ({}),
    run: async (run) => settle(await run.start('createMachine', create(true))),
  },
  {
    name: 'createMachine.fail-startDomain',
    workflow: 'createMachine',
    stubs: () => ({ fail: { startDomain: INJECTED } }),
    run: async (run) => settle(await run.start('createMachine', create(true))),
  },
  {
    name: 'createMachine.cancel-createVolume',
    workflow: 'createMachine',
    stubs: () => ({}),
    run: (run, s) => cancelDuring(s, 'createVolume', () => run.start('createMachine', create(false))),
  },
  {
    name: 'cloneMachine.happy-linked',
    workflow: 'cloneMachine',
    stubs: (host) => ({ machines: [existing(host)] }),
    run: async (run) => settle(await run.start('cloneMachine', clone(true))),
  },
  {
    name: 'cloneMachine.fail-defineDomain',
    workflow: 'cloneMachine',
    stubs: (host) => ({ machines: [existing(host)], fail: { defineDomain: INJECTED } }),
    run: async (run) => settle(await run.start('cloneMachine', clone(false))),
  },
  {
    name: 'cloneMachine.cancel-createVolume',
    workflow: 'cloneMachine',
    stubs: (host) => ({ machines: [existing(host)] }),
    run: (run, s) => cancelDuring(s, 'createVolume', () => run.start('cloneMachine', clone(false))),
  },
  {
    name: 'destroyMachine.happy-shutdown-timeout',
    workflow: 'destroyMachine',
    stubs: (host) => ({
      machines: [existing(host, 'running')],
      domainState: 'running',
      shutdownOutcome: 'timeout',
    }),
    run: async (run) => settle(await run.start('destroyMachine', { ...onRecorded, shutdownTimeoutSec: 5 })),
  },
  {
    name: 'destroyMachine.fail-deleteVolume',
    workflow: 'destroyMachine',
    stubs: (host) => ({ machines: [existing(host)], fail: { deleteVolume: INJECTED } }),
    run: async (run) => settle(await run.start('destroyMachine', onRecorded)),
  },
  {
    name: 'updateMachineHardware.happy-live-and-grow',
    workflow: 'updateMachineHardware',
    stubs: (host) => ({
      machines: [existing(host, 'running')],
      hardwareApplied: () => ({ live: { cpu: 4 }, pending: { memoryMiB: 4096 } }),
    }),
    run: async (run) =>
      settle(
        await run.start('updateMachineHardware', { ...onRecorded, cpu: 4, memoryMiB: 4096, storageGiB: 20 }),
      ),
  },
  {
    name: 'updateMachineHardware.fail-growDisk',
    workflow: 'updateMachineHardware',
    stubs: (host) => ({ machines: [existing(host, 'running')], fail: { growDisk: INJECTED } }),
    run: async (run) =>
      settle(await run.start('updateMachineHardware', { ...onRecorded, cpu: 4, storageGiB: 20 })),
  },
  {
    name: 'powerMachine.start',
    workflow: 'powerMachine',
    stubs: (host) => ({ machines: [existing(host)] }),
    run: async (run) => settle(await run.start('powerMachine', { ...onRecorded, action: 'start' })),
  },
  {
    name: 'powerMachine.shutdown-timeout',
    workflow: 'powerMachine',
    stubs: (host) => ({ machines: [existing(host, 'running')], shutdownOutcome: 'timeout' }),
    run: async (run) =>
      settle(await run.start('powerMachine', { ...onRecorded, action: 'shutdown', shutdownTimeoutSec: 5 })),
  },
  {
    name: 'powerMachine.fail-startDomain',
    workflow: 'powerMachine',
    stubs: (host) => ({ machines: [existing(host)], fail: { startDomain: INJECTED } }),
    run: async (run) => settle(await run.start('powerMachine', { ...onRecorded, action: 'start' })),
  },
  // Machines from an OS image: the disk from the image, the first-boot seed, and its removal.
  {
    name: 'createMachine.happy-image',
    workflow: 'createMachine',
    stubs: () => ({ planImage: imagePlanFixture() }),
    run: async (run) => settle(await run.start('createMachine', { ...create(true), guestSecrets: SEALED })),
  },
  {
    name: 'createMachine.fail-defineDomain-image',
    workflow: 'createMachine',
    stubs: () => ({ planImage: imagePlanFixture({ diskMode: 'full' }), fail: { defineDomain: INJECTED } }),
    run: async (run) => settle(await run.start('createMachine', { ...create(true), guestSecrets: SEALED })),
  },
  {
    name: 'cloneMachine.happy-image',
    workflow: 'cloneMachine',
    stubs: (host) => ({ machines: [imaged(host)], planImage: imagePlanFixture() }),
    run: async (run) => settle(await run.start('cloneMachine', clone(true))),
  },
  {
    name: 'destroyMachine.happy-image',
    workflow: 'destroyMachine',
    stubs: (host) => ({ machines: [imaged(host)] }),
    run: async (run) => settle(await run.start('destroyMachine', onRecorded)),
  },
  // Merged bookkeeping (a step's end written with the next record, the release with the outcome) and the
  // destroy's one-read validation: recorded beside the runs before them (docs/performance.md).
  {
    name: 'createMachine.merged-off',
    workflow: 'createMachine',
    stubs: () => ({}),
    run: async (run) => settle(await run.start('createMachine', create(false))),
  },
  {
    name: 'createMachine.merged-fail-startDomain',
    workflow: 'createMachine',
    stubs: () => ({ fail: { startDomain: INJECTED } }),
    run: async (run) => settle(await run.start('createMachine', create(true))),
  },
  {
    name: 'createMachine.merged-cancel-createVolume',
    workflow: 'createMachine',
    stubs: () => ({}),
    run: (run, s) => cancelDuring(s, 'createVolume', () => run.start('createMachine', create(false))),
  },
  {
    name: 'destroyMachine.merged-off',
    workflow: 'destroyMachine',
    stubs: (host) => ({ machines: [existing(host)] }),
    run: async (run) => settle(await run.start('destroyMachine', onRecorded)),
  },
  {
    name: 'destroyMachine.merged-fail-deleteVolume',
    workflow: 'destroyMachine',
    stubs: (host) => ({ machines: [existing(host)], fail: { deleteVolume: INJECTED } }),
    run: async (run) => settle(await run.start('destroyMachine', onRecorded)),
  },
  ...NETWORK_SCENARIOS,
  ...FIREWALL_SCENARIOS,
  ...IMAGE_SCENARIOS,
  ...GUEST_SCENARIOS,
];

/**
 * Runs every scenario (or those `only` names: a workflow name selects its scenarios, a scenario name
 * `<workflow>.<case>` selects that one), then replaces the histories folder's JSON files of the workflows
 * selected whole, and writes the scenarios selected by name beside the others (nothing is removed unless
 * every selected scenario ran). Recording only what a change added keeps the older histories as the runs
 * in flight recorded them. Returns the files written.
 */
export async function recordHistories(
  h: WorkflowHarness,
  dir = HISTORIES_DIR,
  only?: readonly string[],
): Promise<string[]> {
  const unknown = only?.filter((o) => !SCENARIOS.some((s) => s.workflow === o || s.name === o));
  if (unknown?.length) throw new Error(`no scenario or workflow named ${unknown.join(', ')}`);
  const selected = SCENARIOS.filter(
    (s) => !only?.length || only.includes(s.workflow) || only.includes(s.name),
  );
  const recorded: Array<{ file: string; text: string }> = [];
  for (const scenario of selected) {
    const hostName = uniqueId('host');
    const stubs = createStubs({ hostName, ...scenario.stubs(hostName) });
    const history = await h.withWorkers(stubs, async (run) =>
      (await scenario.run(run, stubs)).fetchHistory(),
    );
    const file = path.join(dir, `${scenario.name}.json`);
    // Formatted as `npm run format` would, so formatting the repo leaves the recorded files alone.
    const options = (await prettier.resolveConfig(file)) ?? {};
    recorded.push({
      file,
      text: await prettier.format(historyToJsonText(history), { ...options, parser: 'json' }),
    });
  }
  mkdirSync(dir, { recursive: true });
  const replaced = new Set(selected.map((s) => s.workflow).filter((w) => !only?.length || only.includes(w)));
  for (const f of readdirSync(dir))
    if (f.endsWith('.json') && replaced.has(f.split('.')[0] as WorkflowName)) rmSync(path.join(dir, f));
  for (const { file, text } of recorded) writeFileSync(file, text);
  return recorded.map((r) => r.file);
}
