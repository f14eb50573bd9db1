/**
 * The recorded firewall scenarios (history-scenarios-firewall.ts) run against the current stubs and end as
 * their names say, so that recording them (record-histories.ts) captures the intended paths.
 */
import { uniqueId } from '../support/temporal';
import { WorkflowHarness } from '../support/workflow-harness';
import { createStubs } from '../support/workflow-stubs';
import { FIREWALL_SCENARIOS } from './history-scenarios-firewall';

let h: WorkflowHarness;
beforeAll(async () => {
  h = await WorkflowHarness.create();
});
afterAll(async () => {
  await h?.teardown();
});

// A cancelled operation fails with the typed OperationCancelledError once its compensations ran.
const expected = (name: string) => (name.includes('.happy') ? 'COMPLETED' : 'FAILED');

it.each(FIREWALL_SCENARIOS.map((s) => [s.name, s] as const))('%s', async (name, scenario) => {
  const hostName = uniqueId('host');
  const stubs = createStubs({ hostName, ...scenario.stubs(hostName) });
  const handle = await h.withWorkers(stubs, (run) => scenario.run(run, stubs));
  expect((await handle.describe()).status.name).toBe(expected(name));
  if (!name.includes('.happy'))
    expect(stubs.labels().some((l) => l.startsWith('restoreFilters') || l.startsWith('revert'))).toBe(true);
});
