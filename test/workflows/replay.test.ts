/**
 * Determinism: every committed history (test/workflows/histories, see history-scenarios.ts) replays
 * against the current workflow bundle without a nondeterminism error. A workflow change that breaks
 * in-flight runs fails here; guard it with patched() (STYLE.md). RECORD_HISTORIES=1 re-records first
 * (test/workflows/record-histories.ts).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import type { HistoryAndWorkflowId } from '@temporalio/client';
import { Worker, type WorkflowBundle } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { type WorkflowName, installLogger } from '../support/workflow-harness';
import { historyFromJsonValue } from '../support/workflow-history';
import { bundleWorkflows } from '../support/temporal';

/** Every workflow the worker registers; the type check fails when one is added without a history. */
const ALL_WORKFLOWS = [
  'pingHost',
  'createMachine',
  'cloneMachine',
  'destroyMachine',
  'updateMachineHardware',
  'powerMachine',
  'createNetwork',
  'updateNetwork',
  'deleteNetwork',
  'changeMachineNetwork',
  'firewallChange',
  'flushFilters',
  'changeMachineDepartment',
  'importImage',
  'registerImage',
  'deleteImage',
  'readGuest',
  'guestExec',
  'guestKillProcess',
  'guestServiceAction',
] as const;
type Unlisted = Exclude<WorkflowName, (typeof ALL_WORKFLOWS)[number]>;
const everyWorkflowListed: [Unlisted] extends [never] ? true : Unlisted = true;

const HISTORIES_DIR = path.join(__dirname, 'histories');

let bundle: WorkflowBundle;
beforeAll(async () => {
  installLogger();
  if (process.env.RECORD_HISTORIES === '1') {
    // Re-record first, against the dev server of the global set-up (TEMPORAL_ADDRESS).
    execFileSync('npx', ['tsx', path.join(__dirname, 'record-histories.ts')], {
      stdio: 'inherit',
      env: process.env,
    });
  }
  bundle = await bundleWorkflows();
});

function loadHistories(): Array<HistoryAndWorkflowId & { type: string; json: unknown }> {
  const files = readdirSync(HISTORIES_DIR)
    .filter((f) => f.endsWith('.json'))
    .sort();
  return files.map((f) => {
    const json: unknown = JSON.parse(readFileSync(path.join(HISTORIES_DIR, f), 'utf8'));
    const history = historyFromJsonValue(json);
    const type = history.events?.[0]?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '?';
    return { workflowId: f, history, type, json };
  });
}

async function replay(
  histories: HistoryAndWorkflowId[],
): Promise<Array<{ workflowId: string; error?: string; determinism: boolean }>> {
  const results = [];
  for await (const r of Worker.runReplayHistories(
    { workflowBundle: bundle, replayName: 'vmflow-replay' },
    histories,
  )) {
    results.push({
      workflowId: r.workflowId,
      error: r.error?.message,
      determinism: r.error instanceof DeterminismViolationError,
    });
  }
  return results;
}

describe('replay of recorded histories', () => {
  it('has a history for every workflow', () => {
    expect(everyWorkflowListed).toBe(true);
    const histories = loadHistories();
    expect(histories.length).toBeGreaterThan(0);
    expect([...new Set(histories.map((h) => h.type))].sort()).toEqual([...ALL_WORKFLOWS].sort());
  });

  it('replays every recorded history against the current bundle without a determinism error', async () => {
    const histories = loadHistories();
    expect(histories.length).toBeGreaterThan(0);

    const results = await replay(histories);

    expect(results).toEqual(
      histories.map((h) => ({ workflowId: h.workflowId, error: undefined, determinism: false })),
    );
  });

  it('would notice a change: a history whose first activity differs fails with a DeterminismViolationError', async () => {
    const original = loadHistories().find((h) => h.type === 'createMachine');
    expect(original).toBeDefined();
    const json = structuredClone(original!.json) as {
      events: Array<{ activityTaskScheduledEventAttributes?: { activityType: { name: string } } }>;
    };
    json.events.find(
      (e) => e.activityTaskScheduledEventAttributes,
    )!.activityTaskScheduledEventAttributes!.activityType.name = 'someOtherActivity';

    const [result] = await replay([{ workflowId: 'tampered', history: historyFromJsonValue(json) }]);

    expect(result).toMatchObject({ workflowId: 'tampered', determinism: true });
  });
});
