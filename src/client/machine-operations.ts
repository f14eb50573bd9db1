/**
 * Starting machine operations from a Temporal client (the API, tests, benches, scripts): one operation
 * per VM at a time (workflow id `vm-<machineId>`, conflict policy FAIL), a typed conflict error naming
 * the running operation, and the operation id carried in the memo so operators see it in the Web UI.
 */
import { randomUUID } from 'node:crypto';
import { type Client, type WorkflowHandle, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import {
  CONTROL_TASK_QUEUE,
  machineWorkflowId,
  type CloneMachineInput,
  type CreateMachineInput,
  type DestroyMachineInput,
  type MachineOperationResult,
  type PowerMachineInput,
  type UpdateHardwareInput,
} from '../workflows/shared';

/** Another operation runs on this machine. */
export class OperationConflictError extends Error {
  override readonly name = 'OperationConflictError';
  constructor(
    public readonly machineId: string,
    public readonly runningWorkflowId: string,
    public readonly runningOperationId: string | null,
    public readonly runningType: string | null,
  ) {
    super(
      `another operation (${runningType ?? 'unknown'} ${runningOperationId ?? runningWorkflowId}) is running on machine ${machineId}`,
    );
  }
}

/** How long a conflicting operation may take to close before the conflict is reported. */
const CLOSE_GRACE_MS = 1500;

type Inputs = {
  createMachine: CreateMachineInput;
  cloneMachine: CloneMachineInput;
  destroyMachine: DestroyMachineInput;
  updateMachineHardware: UpdateHardwareInput;
  powerMachine: PowerMachineInput;
};
const TYPE: Record<keyof Inputs, string> = {
  createMachine: 'create',
  cloneMachine: 'clone',
  destroyMachine: 'destroy',
  updateMachineHardware: 'update_hardware',
  powerMachine: 'power',
};

/** The input without the operation id: it is generated here unless given. */
export type OperationRequest<K extends keyof Inputs> = Omit<Inputs[K], 'operationId'> & {
  operationId?: string;
};

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
  const workflowId = machineWorkflowId(machineId);
  const start = () =>
    client.workflow.start(workflow, {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId,
      workflowIdConflictPolicy: 'FAIL',
      args: [input as never],
      memo: { operationId, type: TYPE[workflow], machineId },
    });
  try {
    return { handle: await start(), operationId };
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const running = client.workflow.getHandle(workflowId);
    // An operation reports `succeeded` a moment before its workflow closes (its last write): a caller
    // that waited for it and starts the next one at once must not get a conflict. Give it a moment.
    const closed = await Promise.race([
      running.result().then(
        () => true,
        () => true,
      ),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), CLOSE_GRACE_MS).unref()),
    ]);
    if (closed) {
      try {
        return { handle: await start(), operationId };
      } catch (again) {
        if (!(again instanceof WorkflowExecutionAlreadyStartedError)) throw again;
      }
    }
    const info = await running.describe().catch(() => null);
    const memo = (info?.memo ?? {}) as { operationId?: string; type?: string };
    throw new OperationConflictError(machineId, workflowId, memo.operationId ?? null, memo.type ?? null);
  }
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
