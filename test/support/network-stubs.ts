/**
 * Network stubs for the workflow tier, plugged into {@link Stubs} (test/support/workflow-stubs.ts): the
 * control (DB) and hypervisor activities of the network workflows, over a small in-memory world of their own.
 */
import type { NetworkDbActivities } from '../../src/activities/db-network';
import type { NetworkActivities } from '../../src/activities/network';
import type { StubOptions, Stubs } from './workflow-stubs';

/** Options of the network stubs (part of {@link StubOptions}). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by the network workflows
export interface NetworkStubOptions {}

/** The network part of the stubs: activities for both queues. */
export function networkStubs(_stubs: Stubs, _opts: StubOptions) {
  const control: NetworkDbActivities = {};
  const hypervisor: NetworkActivities = {};
  return { control, hypervisor };
}
