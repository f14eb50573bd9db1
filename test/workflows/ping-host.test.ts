/** pingHost against the real dev server: the workflow reaches the host's queue and returns its report. */
import { useWorkflowHarness } from '../support/workflow-harness';
import { createStubs } from '../support/workflow-stubs';
import { uniqueId } from '../support/temporal';

const h = useWorkflowHarness();

it('returns what describeHost reports on the host queue', async () => {
  const stubs = createStubs({ hostName: uniqueId('host') });

  const report = await h.withWorkers(stubs, (run) => run.execute('pingHost', { hostName: stubs.hostName }));

  expect(report).toEqual({
    hostname: stubs.hostName,
    uri: 'test:///stub',
    libvirtVersion: '9.0.0',
    cpus: 16,
    memoryMiB: 32768,
    freeMemoryMiB: 16384,
  });
  expect(stubs.labels()).toEqual(['describeHost']);
});
