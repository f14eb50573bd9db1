import { ApplicationFailure } from '@temporalio/workflow';
import { type FirewallChangeInput, type FirewallResult } from './shared';

/** Placeholder: being implemented. */
export async function firewallChange(_input: FirewallChangeInput): Promise<FirewallResult> {
  throw ApplicationFailure.nonRetryable('firewallChange is not implemented yet');
}
