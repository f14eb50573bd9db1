/**
 * flushFilters against the real dev server with stubbed activities: what differs is pushed and recorded,
 * a failure compensates, and the recorded scenarios end as their names say.
 */
import { type FlushFiltersInput } from '../../src/workflows/shared';
import { filterSnapshot, firewallWorld, STUB_DEPARTMENT_SPEC } from '../support/firewall-stubs';
import { uniqueId } from '../support/temporal';
import { useWorkflowHarness, expectOperationFailure, operationContext } from '../support/workflow-harness';
import { INJECTED, createStubs } from '../support/workflow-stubs';

import { DEPT, deptWithCustom } from './firewall-fixtures';
import { itEndsAsRecorded } from './history-scenarios-firewall';

const h = useWorkflowHarness();

describe('recorded scenarios', () => {
  itEndsAsRecorded(h, 'flushFilters');
});

describe('flushFilters', () => {
  const flush = (departmentId: string | null = DEPT): FlushFiltersInput => ({
    ...operationContext(),
    departmentId,
  });

  it('pushes what differs, records it; a second flush pushes nothing', async () => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    await h.withWorkers(stubs, async (run) => {
      expect(await run.execute('flushFilters', flush())).toEqual({
        pushed: [STUB_DEPARTMENT_SPEC.name],
        unchanged: [],
      });
      expect(await run.execute('flushFilters', flush())).toEqual({
        pushed: [],
        unchanged: [STUB_DEPARTMENT_SPEC.name],
      });
    });
    expect(stubs.labels().slice(0, 6)).toEqual([
      'beginOperation',
      'planFilterPush',
      'readFilters',
      'pushFilters',
      'recordFlush',
      'finishOperation:succeeded',
    ]);
    expect(stubs.inputs('planFilterPush')[0]).toEqual({ departmentId: DEPT });
    expect(firewallWorld(stubs).flushes.map((f) => f.pushed)).toEqual([[STUB_DEPARTMENT_SPEC.name], []]);
  });

  it('a flush of everything asks for every filter', async () => {
    const stubs = createStubs({ hostName: uniqueId('host') });
    await h.withWorkers(stubs, (run) => run.execute('flushFilters', flush(null)));
    expect(stubs.inputs('planFilterPush')).toEqual([{ departmentId: null }]);
    expect(stubs.inputs('beginOperation')[0]).toMatchObject({ type: 'flush_filters', resourceId: null });
  });

  it.concurrent.each([
    { call: 'planFilterPush', undos: [] as string[] },
    { call: 'readFilters', undos: [] as string[] },
    { call: 'pushFilters', undos: ['restoreFilters'] },
    { call: 'recordFlush', undos: ['restoreFilters'] },
  ])('failure at $call → undo $undos; libvirt as before', async ({ call, undos }) => {
    const stubs = createStubs({
      hostName: uniqueId('host'),
      firewall: { filters: [deptWithCustom] },
      fail: { [call]: INJECTED },
    });
    const before = filterSnapshot(stubs);
    await h.withWorkers(stubs, (run) =>
      expectOperationFailure(run.execute('flushFilters', flush()), INJECTED),
    );
    const labels = stubs.labels();
    expect(labels.slice(labels.indexOf(call) + 1)).toEqual([...undos, 'finishOperation:failed']);
    expect(filterSnapshot(stubs)).toEqual(before);
  });
});
