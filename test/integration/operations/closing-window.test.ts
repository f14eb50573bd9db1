/**
 * The "is anything running on this resource" check (src/api/idle.ts) for every kind of resource, in the
 * window between an operation recording its outcome and its workflow closing: a request then waits for
 * the close and gets the answer it would get on an idle resource (not 409); an operation that has not
 * recorded an outcome still gets 409 at once. The workflow holding the id is a real one on the dev server
 * (closing-workflows.ts) that reports `succeeded` and then stays open a little under the grace.
 */
import { randomUUID } from 'node:crypto';
import { type Client } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import { CLOSE_GRACE_MS } from '../../../src/client/closing';
import { type Department } from '../../../src/entities/department';
import { FirewallFilter } from '../../../src/entities/firewall';
import { Host } from '../../../src/entities/host';
import { Machine } from '../../../src/entities/machine';
import { Network } from '../../../src/entities/network';
import { Operation, type OperationType } from '../../../src/entities/operation';
import { type User } from '../../../src/entities/user';
import {
  firewallWorkflowId,
  libvirtNames,
  machineWorkflowId,
  networkWorkflowId,
} from '../../../src/workflows/shared';
import { seedMachineRow, startApi, type ApiHarness, type Reply } from '../../support/api-harness';
import { seedDepartment, seedTemplate, seedUser } from '../../support/db';
import { startStack, type Stack } from '../../support/stack';
import { type ClosingActivities } from './closing-workflows';

/** How long the held workflow stays open after reporting: inside the grace, long enough to be seen. */
const HOLD_MS = 900;

describe('a finished operation whose workflow is still closing is not a conflict, for every resource', () => {
  let stack: Stack;
  let h: ApiHarness;
  let client: Client;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `closing-${randomUUID().slice(0, 8)}`;
  let admin: User;
  let dept: Department;
  let host: Host;
  let templateId: string;
  /** Workflows started here or by the API (no workers run the API's): terminated at the end. */
  const started = new Set<string>();

  const activities: ClosingActivities = {
    async reportSucceeded({ operationId }) {
      await stack.dataSource
        .getRepository(Operation)
        .update({ id: operationId }, { status: 'succeeded', finishedAt: new Date() });
    },
  };

  /** An operation row (running), and a workflow holding `workflowId` for it. */
  async function hold(
    workflowId: string,
    opts: { type: OperationType; report: boolean; holdMs: number },
  ): Promise<string> {
    const operationId = randomUUID();
    await stack.dataSource.getRepository(Operation).insert({
      id: operationId,
      workflowId,
      type: opts.type,
      machineId: null,
      actorId: admin.id,
      idempotencyKey: null,
      status: 'running',
      steps: [],
      input: null,
      error: null,
      startedAt: new Date(),
      finishedAt: null,
    });
    const handle = await client.workflow.start('holdOpen', {
      taskQueue,
      workflowId,
      args: [{ operationId, report: opts.report, holdMs: opts.holdMs }],
      memo: { operationId, type: opts.type },
    });
    started.add(workflowId);
    heldRuns.set(workflowId, handle.firstExecutionRunId);
    if (opts.report) {
      // The outcome is recorded: from here on only the workflow's close is pending.
      const deadline = Date.now() + 10_000;
      for (;;) {
        const op = await stack.dataSource.getRepository(Operation).findOneByOrFail({ id: operationId });
        if (op.status === 'succeeded') break;
        if (Date.now() > deadline) throw new Error('the held workflow never reported');
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    return operationId;
  }

  /** The run of holdOpen under each workflow id (a start of the API may follow it under the same id). */
  const heldRuns = new Map<string, string>();
  /** Is the held run under this id closed now? */
  const closed = async (workflowId: string) =>
    (await client.workflow.getHandle(workflowId, heldRuns.get(workflowId)).describe()).status.name !==
    'RUNNING';

  async function seedNetwork(over: Partial<Network> = {}): Promise<Network> {
    const id = randomUUID();
    await stack.dataSource.getRepository(Network).insert({
      id,
      name: `closing-${id.slice(0, 8)}`,
      description: null,
      internalName: libvirtNames.network(id),
      bridgeName: libvirtNames.bridge(id),
      hostId: host.id,
      mode: 'isolated',
      cidr: null,
      gateway: null,
      dhcpStart: null,
      dhcpEnd: null,
      staticHosts: null,
      forwardDev: null,
      departmentId: null,
      vlanId: null,
      bandwidth: null,
      qosApplied: false,
      status: 'active',
      lastError: null,
      currentOperationId: null,
      ...over,
    } as never);
    return stack.dataSource.getRepository(Network).findOneByOrFail({ id });
  }

  async function customFilter(): Promise<string> {
    const id = randomUUID();
    await stack.dataSource.getRepository(FirewallFilter).insert({
      id,
      kind: 'custom',
      name: `closing-${id.slice(0, 8)}`,
      description: null,
      internalName: libvirtNames.customFilter(id),
      departmentId: null,
      machineId: null,
      includes: [],
      version: 1,
    });
    return id;
  }

  beforeAll(async () => {
    stack = await startStack({ workers: false });
    h = await startApi(stack);
    client = stack.env.client;
    worker = await Worker.create({
      connection: stack.env.nativeConnection,
      namespace: 'default',
      taskQueue,
      workflowsPath: require.resolve('./closing-workflows'),
      activities,
    });
    running = worker.run();
    admin = await seedUser(stack.dataSource, 'ADMIN');
    dept = await seedDepartment(stack.dataSource, [[admin, 'MEMBER']]);
    host = await stack.dataSource.getRepository(Host).findOneByOrFail({ name: stack.hostName });
    templateId = (await seedTemplate(stack.dataSource)).id;
  });

  afterAll(async () => {
    for (const id of started)
      await client.workflow
        .getHandle(id)
        .terminate('test cleanup')
        .catch(() => undefined);
    worker?.shutdown();
    await running;
    await h?.close();
    await stack?.stop();
  });

  /** Calls, and tells whether the held run had closed by the time the answer came. */
  async function callDuring(workflowId: string, method: string, path: string, body?: unknown) {
    const t0 = Date.now();
    const res = await h.call(method, path, { as: admin, ...(body !== undefined ? { body } : {}) });
    return { res, ms: Date.now() - t0, closedThen: await closed(workflowId) };
  }

  const expectConflictNaming = (res: Reply, operationId: string) => {
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({ title: 'Operation in progress', runningOperation: { id: operationId } });
  };

  const machineRow = () =>
    seedMachineRow(stack.dataSource, {
      ownerId: admin.id,
      departmentId: dept.id,
      templateId,
      hostId: host.id,
      status: 'off',
    });

  describe('machine', () => {
    it('waits for a closing operation, then starts the next one', async () => {
      const m = await machineRow();
      const wf = machineWorkflowId(m.id);
      const op = await hold(wf, { type: 'power', report: true, holdMs: HOLD_MS });
      await stack.dataSource.getRepository(Machine).update({ id: m.id }, { currentOperationId: op });
      const { res, closedThen } = await callDuring(wf, 'POST', `/api/machines/${m.id}/power`, {
        action: 'start',
      });
      expect(res.status).toBe(202);
      expect(closedThen).toBe(true);
      expect(res.body.operation.type).toBe('power');
      started.add(wf); // the API's powerMachine now holds the id
    });

    it('answers 409 while an operation runs', async () => {
      const m = await machineRow();
      const wf = machineWorkflowId(m.id);
      const op = await hold(wf, { type: 'power', report: false, holdMs: 60_000 });
      await stack.dataSource.getRepository(Machine).update({ id: m.id }, { currentOperationId: op });
      const { res, closedThen } = await callDuring(wf, 'POST', `/api/machines/${m.id}/power`, {
        action: 'start',
      });
      expectConflictNaming(res, op);
      expect(closedThen).toBe(false);
    });
  });

  describe('network', () => {
    it('waits for a closing operation, then starts the next one', async () => {
      const n = await seedNetwork();
      const wf = networkWorkflowId(n.id);
      const op = await hold(wf, { type: 'update_network', report: true, holdMs: HOLD_MS });
      await stack.dataSource.getRepository(Network).update({ id: n.id }, { currentOperationId: op });
      const { res, closedThen } = await callDuring(wf, 'DELETE', `/api/networks/${n.id}`);
      expect(res.status).toBe(202);
      expect(closedThen).toBe(true);
      expect(res.body.operation.type).toBe('delete_network');
    });

    it('answers 409 while an operation runs', async () => {
      const n = await seedNetwork();
      const wf = networkWorkflowId(n.id);
      const op = await hold(wf, { type: 'update_network', report: false, holdMs: 60_000 });
      await stack.dataSource.getRepository(Network).update({ id: n.id }, { currentOperationId: op });
      const { res, closedThen } = await callDuring(wf, 'DELETE', `/api/networks/${n.id}`);
      expectConflictNaming(res, op);
      expect(closedThen).toBe(false);
    });
  });

  describe('firewall scope (a custom filter)', () => {
    it('waits for a closing change, then deletes the filter', async () => {
      const id = await customFilter();
      const wf = firewallWorkflowId(id);
      await hold(wf, { type: 'firewall', report: true, holdMs: HOLD_MS });
      const { res, closedThen } = await callDuring(wf, 'DELETE', `/api/filters/${id}`);
      expect(res.status).toBe(204);
      expect(closedThen).toBe(true);
    });

    it('answers 409 while a change runs', async () => {
      const id = await customFilter();
      const wf = firewallWorkflowId(id);
      const op = await hold(wf, { type: 'firewall', report: false, holdMs: 60_000 });
      const { res, closedThen } = await callDuring(wf, 'DELETE', `/api/filters/${id}`);
      expectConflictNaming(res, op);
      expect(closedThen).toBe(false);
    });
  });

  describe('department', () => {
    // The fresh-clone CI failure: deleting a department right after its firewall change reported
    // `succeeded` answered 409 instead of the 422 its machines call for.
    it('waits for a closing firewall change, then answers as for an idle department', async () => {
      const d = await seedDepartment(stack.dataSource, [[admin, 'MEMBER']]);
      await seedMachineRow(stack.dataSource, {
        ownerId: admin.id,
        departmentId: d.id,
        templateId,
        hostId: host.id,
      });
      const wf = firewallWorkflowId(d.id);
      await hold(wf, { type: 'firewall', report: true, holdMs: HOLD_MS });
      const { res, ms, closedThen } = await callDuring(wf, 'DELETE', `/api/departments/${d.id}`);
      expect(res.status).toBe(422);
      expect(closedThen).toBe(true);
      expect(ms).toBeLessThan(CLOSE_GRACE_MS + 2_000);
    });

    it('answers 409 while a firewall change runs', async () => {
      const d = await seedDepartment(stack.dataSource, [[admin, 'MEMBER']]);
      const wf = firewallWorkflowId(d.id);
      const op = await hold(wf, { type: 'firewall', report: false, holdMs: 60_000 });
      const { res, closedThen } = await callDuring(wf, 'DELETE', `/api/departments/${d.id}`);
      expectConflictNaming(res, op);
      expect(closedThen).toBe(false);
    });
  });
});
