/**
 * The worker's `/metrics` from the real worker process (`src/worker/main.ts`, as `npm run worker` runs it)
 * against the real libvirtd, MariaDB and the run's Temporal server: a running domain of one of this host's
 * machines shows its gauges with its department; a running domain of another host's machine (same
 * libvirtd) does not; the Temporal SDK's runtime metrics are in the same exposition; an activity run
 * through the worker is counted by type and outcome; and promtool accepts the whole exposition.
 * The domains are empty-disk TCG machines (no OS boots: CPU is scarce on the test machine).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import path from 'node:path';
import { type TestWorkflowEnvironment } from '@temporalio/testing';
import { type DataSource } from 'typeorm';
import { registerHost } from '../../../src/activities/db';
import { Host } from '../../../src/entities/host';
import { type Domain } from '../../../src/libvirt/connection';
import { LibvirtProvider } from '../../../src/libvirt/provider';
import { CONTROL_TASK_QUEUE } from '../../../src/workflows/shared';
import { seedMachineRow } from '../../support/api-harness';
import { openTestDataSource, seedDepartment, seedTemplate, seedUser } from '../../support/db';
import { families, find, promtoolCheck, scrape, value } from '../../support/prometheus';
import { connectTestEnv } from '../../support/temporal';
import { LIBVIRT_URI, domainType, domainXml, removeDomain, uniqueName, waitFor } from '../libvirt/support';

const root = path.resolve(__dirname, '../../..');

/** A free loopback port (the SDK's exporter needs a fixed one: it cannot report the port it picked). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

describe('worker /metrics (real worker process)', () => {
  const hostName = `prom-${randomUUID().slice(0, 8)}`;
  const libvirt = new LibvirtProvider(LIBVIRT_URI);
  let ds: DataSource;
  let env: TestWorkflowEnvironment;
  let worker: ChildProcess | undefined;
  let output = '';
  let metricsUrl = '';
  const domains: Domain[] = [];
  let ours: { machineId: string; departmentId: string; departmentName: string; name: string };
  let theirs: { machineId: string };

  beforeAll(async () => {
    ds = await openTestDataSource();
    env = await connectTestEnv();
    const sdkPort = await freePort();
    worker = spawn(path.join(root, 'node_modules/.bin/tsx'), [path.join(root, 'src/worker/main.ts')], {
      cwd: root,
      env: {
        ...process.env,
        NODE_ENV: 'test',
        HOST_NAME: hostName,
        TEMPORAL_ADDRESS: process.env.TEMPORAL_ADDRESS,
        DATABASE_URL: process.env.DATABASE_URL,
        LIBVIRT_URI,
        REDIS_URL: '',
        WORKER_METRICS_PORT: '0',
        TEMPORAL_METRICS_PORT: String(sdkPort),
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    worker.stdout!.on('data', (d: Buffer) => (output += d.toString()));
    worker.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    metricsUrl = await waitFor(
      'the worker to serve /metrics',
      () => {
        if (worker!.exitCode !== null) throw new Error(`worker exited:\n${output}`);
        return /worker metrics on (\S+)/.exec(output)?.[1] ?? '';
      },
      120_000,
    );
    await waitFor('the worker to poll', () => output.includes('worker ready'), 120_000);
  }, 180_000);

  afterAll(async () => {
    if (worker && worker.exitCode === null) {
      const exited = new Promise((r) => worker!.once('exit', r));
      process.kill(-worker.pid!, 'SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
      if (worker.exitCode === null) process.kill(-worker.pid!, 'SIGKILL');
    }
    for (const d of domains) await removeDomain(d);
    await libvirt.close();
    await env?.teardown();
    await ds?.destroy();
  }, 60_000);

  it("shows a running machine of this host with its department, and not another host's machine", async () => {
    const host = await ds.getRepository(Host).findOneByOrFail({ name: hostName });
    const other = await registerHost(ds, {
      name: `${hostName}-other`,
      libvirtUri: LIBVIRT_URI,
      taskQueue: `host-${hostName}-other`,
      cpus: 1,
      memoryMiB: 1024,
      storagePool: 'vmflow',
      defaultNetwork: 'vmflow-default',
    });
    const user = await seedUser(ds);
    const dept = await seedDepartment(ds);
    const otherDept = await seedDepartment(ds);
    const template = await seedTemplate(ds);
    const conn = await libvirt.get();
    const start = async (hostId: string, departmentId: string) => {
      const internalName = uniqueName('prom');
      const row = await seedMachineRow(ds, {
        ownerId: user.id,
        departmentId,
        templateId: template.id,
        hostId,
        internalName,
      });
      const dom = await conn.defineDomain(domainXml({ name: internalName, type: domainType(), vcpus: 1 }));
      domains.push(dom);
      await dom.start();
      return row;
    };
    const mine = await start(host.id, dept.id);
    const foreign = await start(other.id, otherDept.id);
    ours = { machineId: mine.id, departmentId: dept.id, departmentName: dept.name, name: mine.name };
    theirs = { machineId: foreign.id };

    const text = await scrape(metricsUrl);
    const labels = { machine: ours.machineId, department: ours.departmentId, host: hostName };
    expect(value(text, 'vmflow_vm_stats_up')).toBe(1);
    expect(value(text, 'vmflow_vm_info', labels)).toBe(1);
    expect(find(text, 'vmflow_vm_info', labels)[0]!.labels).toMatchObject({
      name: ours.name,
      department_name: ours.departmentName,
    });
    expect(value(text, 'vmflow_vm_vcpus', labels)).toBe(1);
    expect(value(text, 'vmflow_vm_cpu_seconds_total', labels)).toBeGreaterThan(0);
    expect(value(text, 'vmflow_vm_memory_max_bytes', labels)).toBe(64 * 1024 * 1024);
    expect(value(text, 'vmflow_vm_memory_assigned_bytes', labels)).toBe(64 * 1024 * 1024);
    expect(value(text, 'vmflow_vm_host_rss_bytes', labels)).toBeGreaterThan(0);
    // no disk, no NIC: the I/O counters are absent rather than invented
    expect(find(text, 'vmflow_vm_block_read_bytes_total', labels)).toEqual([]);
    // only this host's machine: not the other host's, nor any other domain of the shared libvirtd
    expect(text).not.toContain(theirs.machineId);
    expect(find(text, 'vmflow_vm_info').map((s) => s.labels.machine)).toEqual([ours.machineId]);

    // the CPU ratio needs two reads of the same domain: present from the second scrape on, within 0..1
    const again = await scrape(metricsUrl);
    const ratio = value(again, 'vmflow_vm_cpu_usage_ratio', labels);
    expect(ratio).toBeGreaterThanOrEqual(0);
    expect(ratio).toBeLessThanOrEqual(1);
  });

  it("counts the activities it runs by type and outcome, includes the SDK's runtime metrics, and passes promtool", async () => {
    const report = await env.client.workflow.execute('pingHost', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: `prom-ping-${randomUUID()}`,
      args: [{ hostName }],
    });
    expect(report).toBeTruthy();
    const text = await scrape(metricsUrl);
    const ran = {
      activity_type: 'describeHost',
      task_queue: `host-${hostName}`,
      outcome: 'completed',
    };
    expect(value(text, 'vmflow_activity_executions_total', ran)).toBe(1);
    expect(value(text, 'vmflow_activity_duration_seconds_count', ran)).toBe(1);
    expect(find(text, 'vmflow_activity_executions_total', { outcome: 'failed' })).toEqual([]);

    // the SDK's own families, fetched from its loopback exporter and served here
    expect(value(text, 'vmflow_temporal_sdk_metrics_up')).toBe(1);
    const names = [...families(text).keys()];
    const sdk = names.filter((n) => n.startsWith('temporal_'));
    expect(sdk).toEqual(expect.arrayContaining(['temporal_workflow_completed_total']));
    expect(
      find(text, 'temporal_workflow_completed_total', { task_queue: CONTROL_TASK_QUEUE, host: hostName }),
    ).toHaveLength(1);
    expect(new Set(names).size).toBe(names.length); // no family twice
    // the agent watcher's counters (AGENT_WATCHER=on by default)
    expect(value(text, 'vmflow_agent_malformed_lines_total')).toBe(0);

    expect(await promtoolCheck(text)).toEqual({ code: 0, output: '' });
  });
});
