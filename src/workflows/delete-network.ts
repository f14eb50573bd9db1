import { ApplicationFailure } from '@temporalio/workflow';
import { type DeleteNetworkInput, type NetworkOperationResult } from './shared';

/** Placeholder: being implemented. */
export async function deleteNetwork(_input: DeleteNetworkInput): Promise<NetworkOperationResult> {
  throw ApplicationFailure.nonRetryable('deleteNetwork is not implemented yet');
}
