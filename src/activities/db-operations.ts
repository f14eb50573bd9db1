/**
 * Operation bookkeeping: the `operation` row of every workflow run (begin, steps, finish) and its
 * `<resource>:progress` events. Part of {@link createDbActivities}.
 */
import { type EntityManager } from 'typeorm';
import { Machine } from '../entities/machine';
import {
  Operation,
  type OperationResource,
  type OperationStatus,
  type OperationStep,
  type OperationType,
  type StepStatus,
} from '../entities/operation';
import { isDuplicate } from './failures';
import { currentWorkflowId, publishEvent } from './events';
import { type DbActivityDeps } from './db-types';
import { lockRow } from './db-hold';

function stringField(obj: Record<string, unknown> | null, key: string): string | null {
  const v = obj?.[key];
  return typeof v === 'string' ? v : null;
}

/** Activities that record operations and their steps. Run on the control task queue; each is idempotent. */
export function createOperationDbActivities({ dataSource }: DbActivityDeps) {
  const tx = <T>(fn: (m: EntityManager) => Promise<T>) => dataSource.transaction(fn);
  return {
    /** Records the start of an operation (upsert by id). */
    async beginOperation(input: {
      operationId: string;
      type: OperationType;
      machineId: string | null;
      /** Default `vms` (resourceId = machineId). */
      resource?: OperationResource;
      resourceId?: string | null;
      actorId: string | null;
      idempotencyKey?: string | null;
      input: Record<string, unknown>;
      at: string;
    }): Promise<void> {
      const repo = dataSource.getRepository(Operation);
      if (await repo.exists({ where: { id: input.operationId } })) return;
      try {
        await repo.insert({
          id: input.operationId,
          workflowId: currentWorkflowId() ?? '',
          type: input.type,
          machineId: input.machineId,
          resource: input.resource ?? 'vms',
          resourceId: input.resourceId ?? input.machineId,
          actorId: input.actorId,
          idempotencyKey: input.idempotencyKey ?? null,
          status: 'running',
          steps: [],
          input: input.input as never,
          error: null,
          startedAt: new Date(input.at),
          finishedAt: null,
        });
      } catch (err) {
        if (!isDuplicate(err)) throw err;
      }
    },

    /**
     * Appends a step to the operation and emits `vms:progress`. `at` comes from the workflow clock so a
     * retry writes the same entry, which is then recognised and skipped.
     */
    async recordStep(input: {
      operationId: string;
      machineId: string | null;
      step: string;
      status: StepStatus;
      at: string;
      error?: string;
    }): Promise<void> {
      await tx(async (m) => {
        const op = await lockRow(m, Operation, input.operationId);
        if (!op) return;
        const entry: OperationStep = { name: input.step, status: input.status, at: input.at };
        if (input.error) entry.error = input.error;
        if (!op.steps.some((s) => s.name === entry.name && s.status === entry.status && s.at === entry.at)) {
          await m.update(Operation, { id: op.id }, { steps: [...op.steps, entry] });
        }
        const machine = input.machineId ? await m.findOne(Machine, { where: { id: input.machineId } }) : null;
        await publishEvent(m, {
          resource: op.resource ?? 'vms',
          action: 'progress',
          resourceId: input.machineId ?? op.resourceId,
          payload: {
            operationId: op.id,
            type: op.type,
            step: input.step,
            status: input.status,
            error: input.error,
            at: input.at,
          },
          actorId: op.actorId,
          workflowId: op.workflowId,
          // Before the row exists and after it is gone, route by what the operation was asked to do.
          ownerId: machine?.ownerId ?? stringField(op.input, 'ownerId'),
          departmentId: machine?.departmentId ?? stringField(op.input, 'departmentId'),
          dedupeKey: `${op.id}:${input.step}:${input.status}:${input.at}`,
        });
      });
    },

    /** Stores what a running operation gave (idempotent: the same result written again changes nothing). */
    async setOperationResult(input: { operationId: string; result: Record<string, unknown> }): Promise<void> {
      await dataSource
        .getRepository(Operation)
        .createQueryBuilder()
        .update()
        .set({ result: input.result as never })
        .where('id = :id AND status = :running', { id: input.operationId, running: 'running' })
        .execute();
    },

    /** Marks an operation finished (idempotent: a finished operation keeps its first outcome). */
    async finishOperation(input: {
      operationId: string;
      status: OperationStatus;
      error?: string;
      at: string;
    }): Promise<void> {
      await dataSource
        .getRepository(Operation)
        .createQueryBuilder()
        .update()
        .set({ status: input.status, error: input.error ?? null, finishedAt: new Date(input.at) })
        .where('id = :id AND status = :running', { id: input.operationId, running: 'running' })
        .execute();
    },
  };
}
