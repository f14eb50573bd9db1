import { ApplicationFailure } from '@temporalio/workflow';
import { type UpdateNetworkInput, type NetworkOperationResult } from './shared';

/** Placeholder: being implemented. */
export async function updateNetwork(_input: UpdateNetworkInput): Promise<NetworkOperationResult> {
  throw ApplicationFailure.nonRetryable('updateNetwork is not implemented yet');
}
