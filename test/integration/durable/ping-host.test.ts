/**
 * The first durable path: test → Temporal → worker (control + host queues) → libvirt → back.
 */
import { CONTROL_TASK_QUEUE } from '../../../src/workflows/shared';
import { startStack, type Stack } from '../../support/stack';
import { uniqueId } from '../../support/temporal';

describe('durable path: pingHost', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it('reads node info from libvirt through a workflow on the control queue and an activity on the host queue', async () => {
    const report = await stack.env.client.workflow.execute('pingHost', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: uniqueId('ping-host'),
      args: [{ hostName: stack.hostName }],
    });
    const conn = await stack.libvirt.get();
    const node = await conn.getNodeInfo();
    expect(report.cpus).toBe(node.cpus);
    expect(report.memoryMiB).toBe(Math.floor(node.memoryKiB / 1024));
    expect(report.hostname).toBe(await conn.getHostname());
    expect(report.uri).toMatch(/^qemu:\/\/\/system|^test:\/\//);
    expect(report.freeMemoryMiB).toBeGreaterThan(0);
  });
});
