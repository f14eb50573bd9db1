/**
 * The worker's exposition without a hypervisor: libvirt's stats records turned into per-VM numbers, series
 * that follow the source (a stopped VM leaves none), the CPU ratio from two reads, a failing source or SDK
 * shown as `0` rather than as an error, and promtool's verdict on the whole.
 */
import { countersOf, createWorkerMetrics, type VmSample } from '../../../src/worker/metrics';
import { find, promtoolCheck, value } from '../../support/prometheus';

const vm = (over: Partial<VmSample> = {}): VmSample => ({
  machineId: 'm-1',
  departmentId: 'd-1',
  name: 'web "1"',
  departmentName: 'Sales',
  ...countersOf({ name: 'vmflow-m-1', uuid: 'm-1', stats: { 'cpu.time': 2e9, 'vcpu.current': 2 } }),
  ...over,
});

describe('countersOf', () => {
  it('sums disks and NICs, turns KiB into bytes, and leaves what libvirt did not report null', () => {
    const stats = (s: Record<string, number | string>) => ({ name: 'vmflow-m-1', uuid: 'm-1', stats: s });
    const c = countersOf(
      stats({
        'cpu.time': 5e9,
        'vcpu.current': 2,
        'balloon.current': 65536,
        'balloon.maximum': 131072,
        'balloon.rss': 1000,
        'block.count': 2,
        'block.0.rd.bytes': 10,
        'block.1.rd.bytes': 5,
        'block.0.wr.reqs': 3,
        'net.count': 1,
        'net.0.name': 'vnet0',
        'net.0.rx.bytes': 100,
        'net.0.tx.pkts': 4,
      }),
    );
    expect(c).toEqual({
      cpuTimeNs: 5e9,
      vcpus: 2,
      memAssignedBytes: 64 * 1024 * 1024,
      memMaxBytes: 128 * 1024 * 1024,
      memGuestTotalBytes: null,
      memGuestUsableBytes: null,
      memGuestUnusedBytes: null,
      hostRssBytes: 1000 * 1024,
      blockReadBytes: 15,
      blockWriteBytes: null,
      blockReadOps: null,
      blockWriteOps: 3,
      netRxBytes: 100,
      netTxBytes: null,
      netRxPackets: null,
      netTxPackets: 4,
    });
    expect(countersOf(stats({}))).toMatchObject({ cpuTimeNs: null, blockReadBytes: null, netRxBytes: null });
  });
});

describe('createWorkerMetrics', () => {
  it("shows the source's VMs at each scrape, a stopped one no more, and the CPU ratio from the second read", async () => {
    let now: VmSample[] = [vm(), vm({ machineId: 'm-2', departmentId: 'd-2' })];
    const m = createWorkerMetrics({
      hostName: 'h1',
      vms: { sample: async () => now },
      processMetrics: false,
    });
    const first = await m.render();
    expect(
      value(first, 'vmflow_vm_cpu_seconds_total', { machine: 'm-1', department: 'd-1', host: 'h1' }),
    ).toBe(2);
    expect(find(first, 'vmflow_vm_info', { machine: 'm-1' })[0]!.labels).toMatchObject({
      name: 'web "1"',
      department_name: 'Sales',
    });
    expect(find(first, 'vmflow_vm_cpu_usage_ratio')).toEqual([]); // one read: no ratio yet
    expect(find(first, 'vmflow_vm_memory_assigned_bytes')).toEqual([]); // not reported: no series
    expect(await promtoolCheck(first)).toEqual({ code: 0, output: '' });

    now = [vm({ cpuTimeNs: 3e9 })]; // m-2 stopped; m-1 used more CPU
    const second = await m.render();
    expect(find(second, 'vmflow_vm_info').map((s) => s.labels.machine)).toEqual(['m-1']);
    const ratio = value(second, 'vmflow_vm_cpu_usage_ratio', { machine: 'm-1' })!;
    expect(ratio).toBeGreaterThan(0);
    expect(ratio).toBeLessThanOrEqual(1);
    expect(second).not.toContain('m-2');
  });

  it('shows a failing source as vmflow_vm_stats_up 0 and an absent SDK as vmflow_temporal_sdk_metrics_up 0', async () => {
    const errors: string[] = [];
    const m = createWorkerMetrics({
      hostName: 'h1',
      vms: {
        sample: async () => {
          throw new Error('libvirt down');
        },
      },
      sdkUrl: 'http://127.0.0.1:1/metrics',
      processMetrics: false,
      onError: (_e, what) => errors.push(what),
    });
    const text = await m.render();
    expect(value(text, 'vmflow_vm_stats_up')).toBe(0);
    expect(value(text, 'vmflow_temporal_sdk_metrics_up')).toBe(0);
    expect(find(text, 'vmflow_vm_info')).toEqual([]);
    expect(errors.sort()).toEqual(['temporal sdk metrics', 'vm stats']);
    expect(await promtoolCheck(text)).toEqual({ code: 0, output: '' });
  });

  it('records activity outcomes by type, queue and outcome', async () => {
    const m = createWorkerMetrics({ hostName: 'h1', processMetrics: false });
    m.activityObserver.observe({
      activityType: 'startDomain',
      taskQueue: 'host-h1',
      outcome: 'completed',
      seconds: 0.2,
    });
    m.activityObserver.observe({
      activityType: 'startDomain',
      taskQueue: 'host-h1',
      outcome: 'failed',
      seconds: 1,
    });
    m.activityObserver.observe({
      activityType: 'startDomain',
      taskQueue: 'host-h1',
      outcome: 'failed',
      seconds: 2,
    });
    const text = await m.render();
    const failed = { activity_type: 'startDomain', task_queue: 'host-h1', outcome: 'failed' };
    expect(value(text, 'vmflow_activity_executions_total', failed)).toBe(2);
    expect(value(text, 'vmflow_activity_duration_seconds_sum', failed)).toBe(3);
    expect(value(text, 'vmflow_activity_executions_total', { ...failed, outcome: 'completed' })).toBe(1);
    expect(await promtoolCheck(text)).toEqual({ code: 0, output: '' });
  });
});
