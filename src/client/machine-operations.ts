/**
 * Starting machine operations from a Temporal client (the API, tests, benches, scripts): one operation
 * per VM at a time (workflow id `vm-<machineId>`, conflict policy FAIL), a typed conflict error naming
 * the running operation, and the operation id carried in the memo so operators see it in the Web UI.
 */
import { randomUUID } from 'node:crypto';
import { type Client, type WorkflowHandle, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { CLOSE_GRACE_MS, closesWithin } from './closing';
import { OperationConflictError, type ResourceKind } from './errors';
import { MACHINE_OPERATION_TYPE } from './operation-types';
import {
  CONTROL_TASK_QUEUE,
  machineWorkflowId,
  type CloneMachineInput,
  type ChangeMachineDepartmentInput,
  type ChangeMachineNetworkInput,
  type CreateMachineInput,
  type DestroyMachineInput,
  type GuestExecInput,
  type GuestKillInput,
  type GuestServiceInput,
  type MachineOperationResult,
  type PowerMachineInput,
  type UpdateHardwareInput,
} from '../workflows/shared';

/** Where {@link OperationConflictError} used to live: kept for the importers of this module. */
export { OperationConflictError } from './errors';

type Inputs = {
  createMachine: CreateMachineInput;
  cloneMachine: CloneMachineInput;
  destroyMachine: DestroyMachineInput;
  updateMachineHardware: UpdateHardwareInput;
  powerMachine: PowerMachineInput;
  changeMachineNetwork: ChangeMachineNetworkInput;
  changeMachineDepartment: ChangeMachineDepartmentInput;
  guestExec: GuestExecInput;
  guestKillProcess: GuestKillInput;
  guestServiceAction: GuestServiceInput;
};

/** The input without the operation id: it is generated here unless given. */
export type OperationRequest<K extends keyof Inputs> = Omit<Inputs[K], 'operationId'> & {
  operationId?: string;
};

/**
 * Starts a workflow under a business-keyed id with conflict policy FAIL (one operation per resource at a
 * time). When another run holds the id: waits up to `waitForRunningMs` (at least a short grace: an
 * operation reports its outcome a moment before its workflow closes) for it to close, then starts; else
 * throws {@link OperationConflictError} naming the running operation (from its memo).
 */
export async function startKeyedWorkflow(
  client: Client,
  opts: {
    workflow: string;
    workflowId: string;
    input: { operationId: string };
    /** Operation type (memo: shown to operators and in conflicts). */
    type: string;
    resourceId: string;
    resourceKind?: ResourceKind;
    /** Serialize instead of refusing: wait this long for a running operation to finish. */
    waitForRunningMs?: number;
  },
): Promise<WorkflowHandle> {
  const start = () =>
    client.workflow.start(opts.workflow, {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: opts.workflowId,
      workflowIdConflictPolicy: 'FAIL',
      args: [opts.input as never],
      memo: {
        operationId: opts.input.operationId,
        type: opts.type,
        resourceId: opts.resourceId,
        ...(opts.resourceKind && opts.resourceKind !== 'machine'
          ? { resourceKind: opts.resourceKind }
          : { machineId: opts.resourceId }),
      },
    });
  const deadline = Date.now() + Math.max(opts.waitForRunningMs ?? 0, CLOSE_GRACE_MS);
  for (;;) {
    try {
      return await start();
    } catch (err) {
      if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    }
    const running = client.workflow.getHandle(opts.workflowId);
    if (await closesWithin(client, opts.workflowId, deadline - Date.now())) continue;
    const info = await running.describe().catch(() => null);
    const memo = (info?.memo ?? {}) as { operationId?: string; type?: string };
    throw new OperationConflictError(
      opts.resourceKind ?? 'machine',
      opts.resourceId,
      opts.workflowId,
      memo.operationId ?? null,
      memo.type ?? null,
    );
  }
}

/**
 * Starts a machine operation. Throws {@link OperationConflictError} when one is already running on the
 * machine. The workflow id is keyed by the machine the operation mutates (for a clone: the new machine;
 * the source is locked by its status instead).
 */
export async function startMachineOperation<K extends keyof Inputs>(
  client: Client,
  workflow: K,
  request: OperationRequest<K>,
): Promise<{ handle: WorkflowHandle; operationId: string }> {
  const operationId = request.operationId ?? randomUUID();
  const input = { ...request, operationId } as Inputs[K];
  const machineId = input.machineId;
  const handle = await startKeyedWorkflow(client, {
    workflow,
    workflowId: machineWorkflowId(machineId),
    input,
    type: MACHINE_OPERATION_TYPE[workflow],
    resourceId: machineId,
  });
  return { handle, operationId };
}

/** Starts an operation and waits for its result. */
export async function runMachineOperation<K extends keyof Inputs>(
  client: Client,
  workflow: K,
  request: OperationRequest<K>,
): Promise<MachineOperationResult> {
  const { handle } = await startMachineOperation(client, workflow, request);
  return handle.result() as Promise<MachineOperationResult>;
}
