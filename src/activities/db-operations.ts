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
import { lockRow, releaseHold } from './db-hold';

function stringField(obj: Record<string, unknown> | null, key: string): string | null {
  const v = obj?.[key];
  return typeof v === 'string' ? v : null;
}

/**
 * Appends step records to an operation (each one once: a retry writes the same `at`, which is recognised
 * and skipped) and emits a `<resource>:progress` event for each, in the caller's transaction.
 */
async function appendSteps(
  m: EntityManager,
  operationId: string,
  machineId: string | null,
  entries: OperationStep[],
): Promise<void> {
  const op = await lockRow(m, Operation, operationId);
  if (!op) return;
  const same = (a: OperationStep, b: OperationStep) =>
    a.name === b.name && a.status === b.status && a.at === b.at;
  const fresh = entries.filter((e) => !op.steps.some((s) => same(s, e)));
  if (fresh.length) {
    const add = fresh.map(({ error, ...e }) => ({ ...e, ...(error ? { error } : {}) }));
    await m.update(Operation, { id: op.id }, { steps: [...op.steps, ...add] });
  }
  const machine = machineId ? await m.findOne(Machine, { where: { id: machineId } }) : null;
  for (const e of entries) {
    await publishEvent(m, {
      resource: op.resource ?? 'vms',
      action: 'progress',
      resourceId: machineId ?? op.resourceId,
      payload: {
        operationId: op.id,
        type: op.type,
        step: e.name,
        status: e.status,
        error: e.error,
        at: e.at,
      },
      actorId: op.actorId,
      workflowId: op.workflowId,
      // Before the row exists and after it is gone, route by what the operation was asked to do.
      ownerId: machine?.ownerId ?? stringField(op.input, 'ownerId'),
      departmentId: machine?.departmentId ?? stringField(op.input, 'departmentId'),
      dedupeKey: `${op.id}:${e.name}:${e.status}:${e.at}`,
    });
  }
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
     * retry writes the same entry, which is then recognised and skipped. (Runs recorded before merged
     * step records call this; newer ones call {@link recordSteps}.)
     */
    async recordStep(input: {
      operationId: string;
      machineId: string | null;
      step: string;
      status: StepStatus;
      at: string;
      error?: string;
    }): Promise<void> {
      const { operationId, machineId, step, ...entry } = input;
      await tx((m) => appendSteps(m, operationId, machineId, [{ name: step, ...entry }]));
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

    /**
     * {@link recordStep} for several steps at once, in one transaction: how a step's completion is written
     * together with the next step's start (one write where there were two).
     */
    async recordSteps(input: {
      operationId: string;
      machineId: string | null;
      steps: OperationStep[];
    }): Promise<void> {
      await tx((m) => appendSteps(m, input.operationId, input.machineId, input.steps));
    },

    /**
     * Marks an operation finished (idempotent: a finished operation keeps its first outcome). With
     * `releaseMachineId`, ends the operation's hold on that machine first, and with `steps`, appends those
     * step records first (with their `<resource>:progress` events): the closing writes of an operation in
     * one transaction.
     */
    async finishOperation(input: {
      operationId: string;
      status: OperationStatus;
      error?: string;
      at: string;
      /** The machine whose hold ends with the operation ({@link releaseHold}). */
      releaseMachineId?: string | null;
      /** Step records not written yet (the last step's completion). */
      steps?: OperationStep[];
      /** The machine the step records are about (routing of their events). */
      machineId?: string | null;
    }): Promise<void> {
      await tx(async (m) => {
        if (input.steps?.length)
          await appendSteps(m, input.operationId, input.machineId ?? null, input.steps);
        if (input.releaseMachineId) await releaseHold(m, Machine, input.releaseMachineId, input.operationId);
        await m
          .createQueryBuilder()
          .update(Operation)
          .set({ status: input.status, error: input.error ?? null, finishedAt: new Date(input.at) })
          .where('id = :id AND status = :running', { id: input.operationId, running: 'running' })
          .execute();
      });
    },
  };
}
