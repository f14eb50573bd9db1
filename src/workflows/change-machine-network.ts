import { ApplicationFailure } from '@temporalio/workflow';
import { type ChangeMachineNetworkInput, type MachineOperationResult } from './shared';

/** Placeholder: being implemented. */
export async function changeMachineNetwork(
  _input: ChangeMachineNetworkInput,
): Promise<MachineOperationResult> {
  throw ApplicationFailure.nonRetryable('changeMachineNetwork is not implemented yet');
}
