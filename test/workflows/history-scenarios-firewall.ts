/**
 * Recorded runs of the firewall workflows (see history-scenarios.ts): for each a happy path and at least one
 * compensating failure, and a cancellation for firewallChange. They run against the firewall stubs
 * (test/support/firewall-stubs.ts).
 */
import { customFilterSpec, departmentFilterSpec } from '../../src/firewall/compile';
import { libvirtNames, type FirewallChangeInput } from '../../src/workflows/shared';
import { uniqueId } from '../support/temporal';
import { type WorkflowHarness, type WorkflowName, operationContext } from '../support/workflow-harness';
import { INJECTED, createStubs, machineFixture } from '../support/workflow-stubs';
import type { Scenario } from './history-scenarios';
import { cancelDuring, settle } from './history-runs';

/** Fixed ids: the recorded inputs stay the same from one recording to the next. */
const DEPT = '6f1a9e8c-4b5d-4c2e-9f3a-7b8c9d0e1f2a';
const FILTER = '7a2b0f9d-5c6e-4d3f-8a4b-8c9d0e1f2a3b';
const CUSTOM = '8b3c1a0e-6d7f-4e4a-9b5c-9d0e1f2a3b4c';
const RULE = '9c4d2b1f-7e8a-4f5b-8c6d-0e1f2a3b4c5d';
const customName = libvirtNames.customFilter(CUSTOM);

/** The stub host has the department filter including a custom one, which the change stops including. */
const withCustom = () => ({
  firewall: {
    filters: [
      customFilterSpec({ filterId: CUSTOM, rules: [], includes: [] }),
      departmentFilterSpec({
        departmentId: 'dept-1',
        policy: 'ALLOW_ALL',
        rules: [],
        includes: [customName],
      }),
    ],
    applied: { pruneCandidates: [customName] },
  },
});
const addRule = (): FirewallChangeInput => ({
  ...operationContext(),
  scopeId: DEPT,
  change: {
    type: 'addRule',
    filterId: FILTER,
    ruleId: RULE,
    rule: { action: 'accept', direction: 'in', protocol: 'tcp', dstPortStart: 22 },
  },
});
const setIncludes = (): FirewallChangeInput => ({
  ...operationContext(),
  scopeId: DEPT,
  change: { type: 'setIncludes', filterId: FILTER, includes: [] },
});
const flush = () => ({ ...operationContext(), departmentId: DEPT });
const recorded = (hostName: string) => machineFixture('m-recorded', hostName, { status: 'running' });
const move = () => ({ ...operationContext(), machineId: 'm-recorded', departmentId: 'dept-2' });

export const FIREWALL_SCENARIOS: Scenario[] = [
  {
    name: 'firewallChange.happy-prune',
    workflow: 'firewallChange',
    stubs: () => withCustom(),
    run: async (run) => settle(await run.start('firewallChange', setIncludes())),
  },
  {
    name: 'firewallChange.fail-pruneFilters',
    workflow: 'firewallChange',
    stubs: () => ({ ...withCustom(), fail: { pruneFilters: INJECTED } }),
    run: async (run) => settle(await run.start('firewallChange', setIncludes())),
  },
  {
    name: 'firewallChange.cancel-pushFilters',
    workflow: 'firewallChange',
    stubs: () => ({}),
    run: (run, s) => cancelDuring(s, 'pushFilters', () => run.start('firewallChange', addRule())),
  },
  {
    name: 'flushFilters.happy',
    workflow: 'flushFilters',
    stubs: () => ({}),
    run: async (run) => settle(await run.start('flushFilters', flush())),
  },
  {
    name: 'flushFilters.fail-recordFlush',
    workflow: 'flushFilters',
    stubs: () => ({ fail: { recordFlush: INJECTED } }),
    run: async (run) => settle(await run.start('flushFilters', flush())),
  },
  {
    name: 'changeMachineDepartment.happy-running',
    workflow: 'changeMachineDepartment',
    stubs: (host) => ({ machines: [recorded(host)] }),
    run: async (run) => settle(await run.start('changeMachineDepartment', move())),
  },
  {
    name: 'changeMachineDepartment.fail-pruneFilters',
    workflow: 'changeMachineDepartment',
    stubs: (host) => ({ machines: [recorded(host)], fail: { pruneFilters: INJECTED } }),
    run: async (run) => settle(await run.start('changeMachineDepartment', move())),
  },
];

/**
 * The recorded firewall scenarios of `workflow`, each a test: run against the current stubs, they end as
 * their names say (so that recording them, record-histories.ts, captures the intended paths), and a failed
 * or cancelled one has put filters back. Call at the top level of the workflow's test file.
 */
export function itEndsAsRecorded(h: WorkflowHarness, workflow: WorkflowName): void {
  // A cancelled operation fails with the typed OperationCancelledError once its compensations ran.
  const expected = (name: string) => (name.includes('.happy') ? 'COMPLETED' : 'FAILED');
  const scenarios = FIREWALL_SCENARIOS.filter((s) => s.workflow === workflow);
  it.each(scenarios.map((s) => [s.name, s] as const))('%s', async (name, scenario) => {
    const hostName = uniqueId('host');
    const stubs = createStubs({ hostName, ...scenario.stubs(hostName) });
    const handle = await h.withWorkers(stubs, (run) => scenario.run(run, stubs));
    expect((await handle.describe()).status.name).toBe(expected(name));
    if (!name.includes('.happy'))
      expect(stubs.labels().some((l) => l.startsWith('restoreFilters') || l.startsWith('revert'))).toBe(true);
  });
}
