/**
 * Starting an operation on an existing machine, shared by the route files that do (machines, the guest
 * commands): the checks before (visible, allowed, idle) and the 202 with the operation.
 */
import { type OperationRequest } from '../client/machine-operations';
import { type MachineWorkflow } from '../client/operation-types';
import { type Machine } from '../entities/machine';
import { type ApiContext } from './context';
import { accepted, type RequestIds } from './handler';
import { assertIdle } from './idle';
import { allowed, visibleMachine } from './lookups';
import { type canOperateMachine, type Principal } from './permissions';

/**
 * Starts an operation on an existing machine and answers 202: the operation, actor and Idempotency-Key
 * come from the request, its routing (owner, department) from the machine.
 */
export async function startOnMachine<K extends Exclude<MachineWorkflow, 'createMachine' | 'cloneMachine'>>(
  ctx: ApiContext,
  call: { p: Principal; m: Machine; ids: RequestIds; idempotencyKey: string | null },
  workflow: K,
  fields: Omit<OperationRequest<K>, 'operationId' | 'machineId' | 'actorId' | 'idempotencyKey'>,
) {
  const { p, m, ids, idempotencyKey } = call;
  const operation = await ctx.operations.start(
    workflow,
    {
      operationId: ids.operation,
      machineId: m.id,
      actorId: p.id,
      idempotencyKey,
      ...fields,
    } as OperationRequest<K> & { operationId: string; machineId: string },
    { ownerId: m.ownerId, departmentId: m.departmentId, actorId: p.id },
  );
  return accepted(operation);
}

/** A machine the caller may see (404) and `may` act on (403 with `detail`), with nothing running on it (409). */
export async function idleMachine(
  ctx: ApiContext,
  p: Principal,
  id: string,
  may: typeof canOperateMachine,
  detail?: string,
) {
  const m = await allowed(visibleMachine(ctx, p, id), (found) => may(p, found), detail);
  await assertIdle(ctx, { kind: 'machine', currentOperationId: m.currentOperationId });
  return m;
}
