/**
 * The agent watcher's counters on the worker's `/metrics`: a fake agent on a real unix socket
 * (test/support/fake-agent.ts) that sends garbage moves the malformed-lines counter, a lying one the
 * lying-hellos counter and the `lying` state, and the exposition stays valid for promtool.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type AgentWatcher, createAgentWatcher } from '../../../src/worker/agent-watcher';
import { createWorkerMetrics } from '../../../src/worker/metrics';
import { type MetricsServer } from '../../../src/prometheus/exposition';
import { FakeAgent, FakeDomainSource, memoryLogger, waitFor } from '../../support/fake-agent';
import { promtoolCheck, scrape, value } from '../../support/prometheus';

describe('agent watcher counters on /metrics', () => {
  let dir: string;
  let watcher: AgentWatcher;
  let server: MetricsServer;
  const agents: FakeAgent[] = [];
  const source = new FakeDomainSource();

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'prom-agent-'));
    watcher = createAgentWatcher({
      source,
      hostName: 'prom',
      logger: memoryLogger(),
      reconcileMs: 200,
      tickMs: 100,
    });
    await watcher.start();
    server = await createWorkerMetrics({ hostName: 'prom', agents: watcher }).serve('127.0.0.1', 0);
  });

  afterAll(async () => {
    await server.close();
    await watcher.stop();
    await Promise.all(agents.map((a) => a.close()));
    await rm(dir, { recursive: true, force: true });
  });

  /** A running "domain" whose channel a fake agent serves; `claims` is the machine id its hellos claim. */
  async function guest(claims?: string): Promise<{ agent: FakeAgent; machineId: string }> {
    const machineId = randomUUID();
    const socketPath = path.join(dir, `${machineId}.sock`);
    const agent = await new FakeAgent(socketPath, { machineId: claims ?? machineId }).listen();
    agents.push(agent);
    source.add({ name: `vmflow-${machineId}`, machineId, socketPath });
    return { agent, machineId };
  }

  it('counts garbage lines as malformed, a lying hello as lying, and promtool accepts the exposition', async () => {
    const before = await scrape(server.url);
    expect(value(before, 'vmflow_agent_malformed_lines_total', { host: 'prom' })).toBe(0);
    expect(value(before, 'vmflow_agent_guests', { state: 'connected' })).toBe(0);

    const { agent, machineId } = await guest();
    await waitFor('connected', () => watcher.status(machineId)?.state === 'connected');
    agent.send('this is not json\n');
    agent.send('{"v":1,"type":"metrics"}\n'); // JSON, but not a valid message
    agent.send(Buffer.from([0xff, 0xfe, 0x0a]));
    await waitFor('three malformed lines', () => watcher.status(machineId)!.counters.malformed === 3);

    const liar = await guest(randomUUID());
    await waitFor('lying', () => watcher.status(liar.machineId)?.state === 'lying');

    const after = await scrape(server.url);
    expect(value(after, 'vmflow_agent_malformed_lines_total')).toBe(3);
    expect(value(after, 'vmflow_agent_lying_hellos_total')).toBe(1);
    expect(value(after, 'vmflow_agent_guests', { state: 'connected' })).toBe(1);
    expect(value(after, 'vmflow_agent_guests', { state: 'lying' })).toBe(1);
    expect(value(after, 'vmflow_agent_messages_total')).toBeGreaterThanOrEqual(1); // the good agent's hello
    expect(await promtoolCheck(after)).toEqual({ code: 0, output: '' });
  });
});
