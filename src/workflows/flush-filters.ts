import { ApplicationFailure } from '@temporalio/workflow';
import { type FlushFiltersInput, type FirewallResult } from './shared';

/** Placeholder: being implemented. */
export async function flushFilters(_input: FlushFiltersInput): Promise<FirewallResult> {
  throw ApplicationFailure.nonRetryable('flushFilters is not implemented yet');
}
