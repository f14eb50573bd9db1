/**
 * Starting machine operations from the API and reading them back. The API records the operation request
 * (who may see it, where its events go), then starts the workflow through `startMachineOperation`
 * (one operation per VM: a second one is a 409 naming the first). The workflow writes the `operation` row
 * and its steps; until it has, the operation is reported as running from the request and Temporal.
 */
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { type DataSource } from 'typeorm';
import { OperationConflictError } from '../client/errors';
import {
  startKeyedWorkflow,
  startMachineOperation,
  type OperationRequest as StartRequest,
} from '../client/machine-operations';
import { MACHINE_OPERATION_TYPE, type MachineWorkflow } from '../client/operation-types';
import { Machine } from '../entities/machine';
import {
  Operation,
  type OperationResource,
  type OperationStatus,
  type OperationType,
} from '../entities/operation';
import { OperationRequest } from '../entities/operation-request';
import { machineWorkflowId } from '../workflows/shared';
import { canViewMachine, isAdmin, manages, type MachineRef, type Principal } from './permissions';

/** Who may see an operation: its machine's owner and department, or (networks, firewall) its department. */
export interface OperationOwner {
  resource: OperationResource;
  ownerId: string | null;
  departmentId: string | null;
  machineId: string | null;
}

/** An operation as the API shows it. */
export interface OperationView {
  id: string;
  type: OperationType;
  /** What it works on: `vms` (see machineId), `networks` or `firewall` (see resourceId). */
  resource: OperationResource;
  resourceId: string | null;
  machineId: string | null;
  status: OperationStatus;
  steps: Array<{
    name: string;
    status: 'started' | 'completed' | 'failed' | 'compensating' | 'compensated';
    at: string;
    error?: string;
  }>;
  error?: string;
  /** What it gave, for operations that give something (a guest command's exit code and output). */
  result?: Record<string, unknown>;
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
  async start<K extends MachineWorkflow>(
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
        type: MACHINE_OPERATION_TYPE[workflow],
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

  /**
   * Starts an operation on a network or the firewall, under a workflow id keyed by what it changes. With
   * `waitForRunningMs` a second operation on the same key waits for the first (serialized) instead of
   * failing at once; past that it is a conflict (409) naming the running one.
   */
  async startResource(opts: {
    workflow: string;
    workflowId: string;
    type: OperationType;
    resource: Exclude<OperationResource, 'vms'>;
    /** What it changes; null for an operation over every resource (a flush of all filters). */
    resourceId: string | null;
    input: { operationId: string } & Record<string, unknown>;
    actorId: string | null;
    /** The department concerned (rooms and visibility); null: admins only. */
    departmentId: string | null;
    waitForRunningMs?: number;
  }): Promise<OperationView> {
    const operationId = opts.input.operationId;
    await this.ds
      .createQueryBuilder()
      .insert()
      .into(OperationRequest)
      .values({
        id: operationId,
        workflowId: opts.workflowId,
        type: opts.type,
        machineId: null,
        resource: opts.resource,
        resourceId: opts.resourceId,
        actorId: opts.actorId,
        ownerId: null,
        departmentId: opts.departmentId,
      })
      .orIgnore()
      .execute();
    const already = await this.ds.getRepository(Operation).exists({ where: { id: operationId } });
    if (!already) {
      try {
        await startKeyedWorkflow(this.client, {
          workflow: opts.workflow,
          workflowId: opts.workflowId,
          input: opts.input,
          type: opts.type,
          resourceId: opts.resourceId ?? opts.workflowId,
          resourceKind:
            opts.resource === 'networks' ? 'network' : opts.resource === 'images' ? 'image' : 'firewall',
          waitForRunningMs: opts.waitForRunningMs,
        });
      } catch (err) {
        // The same request retried (Idempotency-Key) finds its own operation running: not a conflict.
        if (!(err instanceof OperationConflictError && err.runningOperationId === operationId)) {
          await this.ds.getRepository(OperationRequest).delete({ id: operationId });
          throw err;
        }
      }
    }
    return (await this.view(operationId))!;
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
        resource: op.resource ?? 'vms',
        resourceId: op.resourceId ?? op.machineId,
        machineId: op.machineId,
        status: op.status,
        steps: op.steps ?? [],
        ...(op.error ? { error: op.error } : {}),
        ...(op.result ? { result: op.result } : {}),
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
      resource: req.resource ?? 'vms',
      resourceId: req.resourceId ?? req.machineId,
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
  async ownerOf(id: string): Promise<OperationOwner | null> {
    const [req, op] = await Promise.all([
      this.ds.getRepository(OperationRequest).findOne({ where: { id } }),
      this.ds.getRepository(Operation).findOne({ where: { id } }),
    ]);
    if (req)
      return {
        resource: req.resource ?? 'vms',
        ownerId: req.ownerId,
        departmentId: req.departmentId,
        machineId: req.machineId,
      };
    if (!op) return null;
    const resource = op.resource ?? 'vms';
    const input = (op.input ?? {}) as { ownerId?: string; departmentId?: string };
    if (resource !== 'vms')
      return { resource, ownerId: null, departmentId: input.departmentId ?? null, machineId: null };
    if (op.machineId) {
      const m = await this.ds
        .getRepository(Machine)
        .findOne({ where: { id: op.machineId }, select: { id: true, ownerId: true, departmentId: true } });
      if (m) return { resource, ownerId: m.ownerId, departmentId: m.departmentId, machineId: m.id };
    }
    if (input.ownerId && input.departmentId)
      return { resource, ownerId: input.ownerId, departmentId: input.departmentId, machineId: op.machineId };
    return null;
  }

  /**
   * The owner when the caller may see the operation, else null. Machine operations: as the machine.
   * Network and firewall operations: admins, and the managers of the department concerned.
   */
  async visible(p: Principal, id: string): Promise<(MachineRef & { machineId: string | null }) | null> {
    const owner = await this.ownerOf(id);
    if (owner && owner.resource !== 'vms') {
      const ok = isAdmin(p) || (owner.departmentId !== null && manages(p, owner.departmentId));
      return ok ? { ownerId: '', departmentId: owner.departmentId ?? '', machineId: null } : null;
    }
    if (owner && owner.ownerId && owner.departmentId) {
      const ref = { ownerId: owner.ownerId, departmentId: owner.departmentId };
      if (canViewMachine(p, ref)) return { ...ref, machineId: owner.machineId };
    }
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
