/**
 * Starting machine operations from the API and reading them back. The API records the operation request
 * (who may see it, where its events go), then starts the workflow through `startMachineOperation`
 * (one operation per VM: a second one is a 409 naming the first). The workflow writes the `operation` row
 * and its steps; until it has, the operation is reported as running from the request and Temporal.
 */
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { type DataSource } from 'typeorm';
import {
  OperationConflictError,
  startMachineOperation,
  type OperationRequest as StartRequest,
} from '../client/machine-operations';
import { Machine } from '../entities/machine';
import { Operation, type OperationStatus, type OperationType } from '../entities/operation';
import { OperationRequest } from '../entities/operation-request';
import { machineWorkflowId } from '../workflows/shared';
import { canViewMachine, type MachineRef, type Principal } from './permissions';

type Workflows =
  'createMachine' | 'cloneMachine' | 'destroyMachine' | 'updateMachineHardware' | 'powerMachine';
const TYPE: Record<Workflows, OperationType> = {
  createMachine: 'create',
  cloneMachine: 'clone',
  destroyMachine: 'destroy',
  updateMachineHardware: 'update_hardware',
  powerMachine: 'power',
};

/** An operation as the API shows it. */
export interface OperationView {
  id: string;
  type: OperationType;
  machineId: string | null;
  status: OperationStatus;
  steps: Array<{
    name: string;
    status: 'started' | 'completed' | 'failed' | 'compensating' | 'compensated';
    at: string;
    error?: string;
  }>;
  error?: string;
  workflowId: string;
  temporalUrl: string;
  startedAt: string | null;
  finishedAt: string | null;
}

/** Where operations are started and looked up. */
export class Operations {
  constructor(
    private readonly ds: DataSource,
    private readonly client: Client,
    private readonly temporalUi: { url: string; namespace: string },
  ) {}

  /** The Web UI link of a workflow. */
  temporalUrl(workflowId: string): string {
    return `${this.temporalUi.url.replace(/\/$/, '')}/namespaces/${encodeURIComponent(this.temporalUi.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  }

  /**
   * Starts an operation with a known id. A retry of the same request (same operation id) that finds its
   * operation already running or recorded is the same operation, not a conflict.
   */
  async start<K extends Workflows>(
    workflow: K,
    request: StartRequest<K> & { operationId: string; machineId: string },
    route: MachineRef & { actorId: string | null },
  ): Promise<OperationView> {
    const workflowId = machineWorkflowId(request.machineId);
    await this.ds
      .createQueryBuilder()
      .insert()
      .into(OperationRequest)
      .values({
        id: request.operationId,
        workflowId,
        type: TYPE[workflow],
        machineId: request.machineId,
        actorId: route.actorId,
        ownerId: route.ownerId,
        departmentId: route.departmentId,
      })
      .orIgnore()
      .execute();
    const already = await this.ds.getRepository(Operation).exists({ where: { id: request.operationId } });
    if (!already) {
      for (let attempt = 0; ; attempt++) {
        try {
          await startMachineOperation(this.client, workflow, request);
          break;
        } catch (err) {
          if (err instanceof OperationConflictError && err.runningOperationId === request.operationId) break;
          // The previous operation has recorded its outcome and its workflow is closing: that is not a
          // conflict a caller should see. Retry briefly.
          if (
            err instanceof OperationConflictError &&
            attempt < 50 &&
            (await this.finished(err.runningOperationId))
          ) {
            await new Promise((r) => setTimeout(r, 100));
            continue;
          }
          await this.ds.getRepository(OperationRequest).delete({ id: request.operationId });
          throw err;
        }
      }
    }
    return (await this.view(request.operationId))!;
  }

  /** True when the operation has recorded its outcome (its workflow may still be closing). */
  private async finished(operationId: string | null): Promise<boolean> {
    if (!operationId) return false;
    const op = await this.ds
      .getRepository(Operation)
      .findOne({ where: { id: operationId }, select: { id: true, status: true } });
    return !!op && op.status !== 'running';
  }

  /** The operation, or null when unknown. */
  async view(id: string): Promise<OperationView | null> {
    const [op, req] = await Promise.all([
      this.ds.getRepository(Operation).findOne({ where: { id } }),
      this.ds.getRepository(OperationRequest).findOne({ where: { id } }),
    ]);
    if (op) {
      return {
        id: op.id,
        type: op.type,
        machineId: op.machineId,
        status: op.status,
        steps: op.steps ?? [],
        ...(op.error ? { error: op.error } : {}),
        workflowId: op.workflowId || req?.workflowId || '',
        temporalUrl: this.temporalUrl(op.workflowId || req?.workflowId || ''),
        startedAt: op.startedAt ? new Date(op.startedAt).toISOString() : null,
        finishedAt: op.finishedAt ? new Date(op.finishedAt).toISOString() : null,
      };
    }
    if (!req) return null;
    // Accepted, but the workflow has not recorded it yet (or never will: it failed before its first step).
    let status: OperationStatus = 'running';
    let error: string | undefined;
    const run = await this.runOf(req.workflowId, id);
    if (run && run.status !== 'RUNNING') {
      status = run.status === 'COMPLETED' ? 'succeeded' : run.status === 'CANCELLED' ? 'cancelled' : 'failed';
      if (status === 'failed') error = `workflow ${run.status.toLowerCase()}`;
    }
    return {
      id,
      type: req.type,
      machineId: req.machineId,
      status,
      steps: [],
      ...(error ? { error } : {}),
      workflowId: req.workflowId,
      temporalUrl: this.temporalUrl(req.workflowId),
      startedAt: new Date(req.createdAt).toISOString(),
      finishedAt: null,
    };
  }

  /** The run of a workflow id that carries this operation id, with its status (null: none). */
  private async runOf(
    workflowId: string,
    operationId: string,
  ): Promise<{ runId: string; status: string } | null> {
    try {
      const d = await this.client.workflow.getHandle(workflowId).describe();
      const memo = (d.memo ?? {}) as { operationId?: string };
      if (memo.operationId !== operationId) return null;
      return { runId: d.runId, status: d.status.name };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  /** Whom an operation belongs to (for permissions): its machine's owner and department, else the request's. */
  async ownerOf(id: string): Promise<(MachineRef & { machineId: string | null }) | null> {
    const [req, op] = await Promise.all([
      this.ds.getRepository(OperationRequest).findOne({ where: { id } }),
      this.ds.getRepository(Operation).findOne({ where: { id } }),
    ]);
    if (req) return { ownerId: req.ownerId, departmentId: req.departmentId, machineId: req.machineId };
    if (!op) return null;
    if (op.machineId) {
      const m = await this.ds
        .getRepository(Machine)
        .findOne({ where: { id: op.machineId }, select: { id: true, ownerId: true, departmentId: true } });
      if (m) return { ownerId: m.ownerId, departmentId: m.departmentId, machineId: m.id };
    }
    const input = (op.input ?? {}) as { ownerId?: string; departmentId?: string };
    if (input.ownerId && input.departmentId)
      return { ownerId: input.ownerId, departmentId: input.departmentId, machineId: op.machineId };
    return null;
  }

  /** True when the caller may see the operation. */
  async visible(p: Principal, id: string): Promise<(MachineRef & { machineId: string | null }) | null> {
    const owner = await this.ownerOf(id);
    if (owner && canViewMachine(p, owner)) return owner;
    if (!owner && p.role === 'ADMIN') return { ownerId: '', departmentId: '', machineId: null };
    return null;
  }

  /**
   * Requests Temporal cancellation of the operation's workflow run, only if that run is still the running
   * one for this operation. Returns false when it is not running.
   */
  async cancel(id: string): Promise<boolean> {
    const view = await this.view(id);
    if (!view || view.status !== 'running' || !view.workflowId) return false;
    const run = await this.runOf(view.workflowId, id);
    if (!run || run.status !== 'RUNNING') return false;
    await this.client.workflow.getHandle(view.workflowId, run.runId).cancel();
    return true;
  }
}
