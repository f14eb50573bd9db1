import { ApplicationFailure } from '@temporalio/workflow';
import { type ChangeMachineDepartmentInput, type MachineOperationResult } from './shared';

/** Placeholder: being implemented. */
export async function changeMachineDepartment(
  _input: ChangeMachineDepartmentInput,
): Promise<MachineOperationResult> {
  throw ApplicationFailure.nonRetryable('changeMachineDepartment is not implemented yet');
}
