/**
 * firewallChange against the real dev server with stubbed activities: the order of the
 * steps, a failure at every step compensating exactly what was registered in reverse (libvirt's filters and
 * the database back as before), cancellation, and two changes of one scope serialized.
 */
import { startKeyedWorkflow, OperationConflictError } from '../../src/client/machine-operations';
import { FailureType, firewallWorkflowId, type FirewallChangeInput } from '../../src/workflows/shared';
import { filterSnapshot, firewallWorld, STUB_DEPARTMENT_SPEC } from '../support/firewall-stubs';
import { uniqueId } from '../support/temporal';
import {
  useWorkflowHarness,
  expectOperationFailure,
  operationContext,
  within,
} from '../support/workflow-harness';
import { INJECTED, createStubs, type StubOptions } from '../support/workflow-stubs';

import { DEPT, customName, customSpec, deptWithCustom } from './firewall-fixtures';
import { itEndsAsRecorded } from './history-scenarios-firewall';

const h = useWorkflowHarness();

describe('recorded scenarios', () => {
  itEndsAsRecorded(h, 'firewallChange');
});

const FILTER = '3c8e6b5f-1d2e-4f6a-9b0c-1d2e3f4a5b6c';

const addRule = (scopeId = DEPT): FirewallChangeInput => ({
  ...operationContext(),
  scopeId,
  change: {
    type: 'addRule',
    filterId: FILTER,
    ruleId: '5e0a8d7b-3f4a-4b8c-9d2e-3f4a5b6c7d8e',
    rule: { action: 'accept', direction: 'in', protocol: 'tcp', dstPortStart: 22 },
  },
});

/** Stubs whose host has the department filter including a custom one, and a change that drops it (pruned). */
function pruneSetUp(opts: Partial<StubOptions> = {}) {
  return createStubs({
    hostName: uniqueId('host'),
    firewall: {
      filters: [customSpec, deptWithCustom],
      applied: { pruneCandidates: [customName] },
      plans: undefined,
    },
    ...opts,
  });
}

describe('firewallChange', () => {
  it('applies the change, reads what libvirt has, pushes what differs', async () => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    const input = addRule();

    const result = await h.withWorkers(stubs, (run) => run.execute('firewallChange', input));

    expect(result).toEqual({ pushed: [STUB_DEPARTMENT_SPEC.name], unchanged: [] });
    expect(stubs.labels()).toEqual([
      'beginOperation',
      'applyFirewallChange',
      'planFilterPush',
      'readFilters',
      'pushFilters',
      'finishOperation:succeeded',
    ]);
    expect(stubs.inputs('planFilterPush')).toEqual([{ filterIds: ['filter-1'] }]);
    expect(stubs.inputs('readFilters')).toEqual([{ names: [STUB_DEPARTMENT_SPEC.name] }]);
    expect(firewallWorld(stubs).libvirt.get(STUB_DEPARTMENT_SPEC.name)).toEqual({
      ...STUB_DEPARTMENT_SPEC,
      uuid: undefined,
    });
    expect([...firewallWorld(stubs).applied.keys()]).toEqual([input.operationId]);
    expect(stubs.inputs('beginOperation')[0]).toMatchObject({
      type: 'firewall',
      resource: 'firewall',
      resourceId: DEPT,
      input: expect.objectContaining({ departmentId: DEPT }),
    });
  });

  it('a second run of the same change pushes nothing (libvirt already equal)', async () => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    await h.withWorkers(stubs, async (run) => {
      await run.execute('firewallChange', addRule());
      expect(await run.execute('firewallChange', addRule())).toEqual({
        pushed: [],
        unchanged: [STUB_DEPARTMENT_SPEC.name],
      });
    });
  });

  it('a custom filter no longer included is pruned where nothing uses it', async () => {
    const stubs = pruneSetUp();
    const result = await h.withWorkers(stubs, (run) => run.execute('firewallChange', addRule()));
    expect(result.pushed).toEqual([STUB_DEPARTMENT_SPEC.name]);
    expect(stubs.labels().slice(-3)).toEqual(['planPrune', 'pruneFilters', 'finishOperation:succeeded']);
    expect(stubs.inputs('pruneFilters')).toEqual([{ candidates: [customName], cascade: false }]);
    expect(firewallWorld(stubs).libvirt.has(customName)).toBe(false);
  });

  it('a custom filter still used elsewhere is kept (nothing to prune)', async () => {
    const stubs = pruneSetUp({
      firewall: {
        filters: [
          customSpec,
          deptWithCustom,
          { name: 'vmflow-vm-other', filterrefs: [{ filter: customName }] },
        ],
        applied: { pruneCandidates: [customName] },
      },
    });
    await h.withWorkers(stubs, (run) => run.execute('firewallChange', addRule()));
    expect(stubs.labels()).toContain('planPrune');
    expect(stubs.labels()).not.toContain('pruneFilters');
    expect(firewallWorld(stubs).libvirt.has(customName)).toBe(true);
  });

  it('a bad change fails validation in its first step; nothing is applied or pushed', async () => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    const input: FirewallChangeInput = {
      ...addRule(),
      change: {
        ...addRule().change,
        rule: { action: 'accept', direction: 'in', protocol: 'icmp', dstPortStart: 1 },
      },
    } as FirewallChangeInput;
    const before = filterSnapshot(stubs);

    const failure = await h.withWorkers(stubs, (run) =>
      expectOperationFailure(run.execute('firewallChange', input), FailureType.Validation),
    );

    expect(failure.message).toMatch(/rule.dstPortStart/);
    expect(stubs.labels()).toEqual([
      'beginOperation',
      'applyFirewallChange',
      'revertFirewallChange',
      'finishOperation:failed',
    ]);
    expect(filterSnapshot(stubs)).toEqual(before);
    expect(firewallWorld(stubs).applied.size).toBe(0);
  });

  describe('a failure at every step compensates exactly what was registered, in reverse', () => {
    const cases: Array<{ call: string; undos: string[] }> = [
      { call: 'applyFirewallChange', undos: ['revertFirewallChange'] },
      { call: 'planFilterPush', undos: ['revertFirewallChange'] },
      { call: 'readFilters', undos: ['revertFirewallChange'] },
      { call: 'pushFilters', undos: ['restoreFilters', 'revertFirewallChange'] },
      { call: 'planPrune', undos: ['restoreFilters', 'revertFirewallChange'] },
      { call: 'pruneFilters', undos: ['restoreFilters', 'restoreFilters', 'revertFirewallChange'] },
    ];
    it.concurrent.each(cases)('failure at $call → undo $undos, operation failed', async ({ call, undos }) => {
      const stubs = pruneSetUp({ fail: { [call]: INJECTED } });
      const input = addRule();
      const before = filterSnapshot(stubs);

      const failure = await h.withWorkers(stubs, (run) =>
        expectOperationFailure(run.execute('firewallChange', input), INJECTED),
      );

      expect(failure.message).toBe(`injected failure in ${call}`);
      const labels = stubs.labels();
      const at = labels.indexOf(call);
      expect(labels.slice(at + 1)).toEqual([...undos, 'finishOperation:failed']);
      expect(filterSnapshot(stubs)).toEqual(before);
      expect(firewallWorld(stubs).applied.size).toBe(0);
      // The push undo puts back exactly the snapshot it read, in reverse order.
      if (undos.includes('restoreFilters')) {
        const restores = stubs.inputs<{ filters: Array<{ name: string }> }>('restoreFilters');
        expect(restores.at(-1)!.filters.map((f) => f.name)).toEqual([STUB_DEPARTMENT_SPEC.name]);
      }
      expect(stubs.stepLabels()).toContain('apply:compensated');
    });
  });

  it('cancelled during the push: the push and the change are undone, the operation is cancelled', async () => {
    const stubs = pruneSetUp();
    const gate = stubs.gate('pushFilters');
    const before = filterSnapshot(stubs);
    const input = addRule();

    await h.withWorkers(stubs, async (run) => {
      const handle = await run.start('firewallChange', input);
      await within(gate.entered, 'the push to start');
      await handle.cancel();
      await expectOperationFailure(handle.result(), FailureType.Cancelled);
    });

    expect(stubs.labels()).toEqual([
      'beginOperation',
      'applyFirewallChange',
      'planFilterPush',
      'readFilters',
      'pushFilters',
      'pushFilters:cancelled',
      'restoreFilters',
      'revertFirewallChange',
      'finishOperation:cancelled',
    ]);
    expect(filterSnapshot(stubs)).toEqual(before);
    expect(firewallWorld(stubs).applied.size).toBe(0);
  });

  it('two changes of one scope are serialized: the second waits for the first, then runs', async () => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    const gate = stubs.gate('pushFilters', { cancellable: false });
    const scope = uniqueId('dept');
    const first = addRule(scope);
    const second = { ...addRule(scope), operationId: uniqueId('op2') };
    const workflowId = firewallWorkflowId(scope);

    await h.withWorkers(stubs, async (run) => {
      const one = await run.start('firewallChange', first, workflowId);
      await within(gate.entered, 'the first push');
      // Without waiting, the scope is busy: a conflict naming the running operation.
      await expect(
        startKeyedWorkflow(h.client, {
          workflow: 'firewallChange',
          workflowId,
          input: second,
          type: 'firewall',
          resourceId: scope,
          resourceKind: 'firewall',
        }),
      ).rejects.toBeInstanceOf(OperationConflictError);
      // With waitForRunningMs it waits for the first to close, then starts.
      const starting = startKeyedWorkflow(h.client, {
        workflow: 'firewallChange',
        workflowId,
        input: second,
        type: 'firewall',
        resourceId: scope,
        resourceKind: 'firewall',
        waitForRunningMs: 30_000,
      });
      await new Promise((r) => setTimeout(r, 300));
      expect(stubs.inputs('applyFirewallChange')).toHaveLength(1); // still waiting
      gate.release();
      await one.result();
      await within((await starting).result(), 'the second change');
    });

    const applies = stubs.calls.filter(
      (c) => c.name === 'applyFirewallChange' || c.label.startsWith('finishOperation'),
    );
    expect(applies.map((c) => `${c.label}:${(c.input as { operationId: string }).operationId}`)).toEqual([
      `applyFirewallChange:${first.operationId}`,
      `finishOperation:succeeded:${first.operationId}`,
      `applyFirewallChange:${second.operationId}`,
      `finishOperation:succeeded:${second.operationId}`,
    ]);
  });
});
