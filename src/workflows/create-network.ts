import { ApplicationFailure } from '@temporalio/workflow';
import { type CreateNetworkInput, type NetworkOperationResult } from './shared';

/** Placeholder: being implemented. */
export async function createNetwork(_input: CreateNetworkInput): Promise<NetworkOperationResult> {
  throw ApplicationFailure.nonRetryable('createNetwork is not implemented yet');
}
