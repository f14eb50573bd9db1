/**
 * Firewall stubs for the workflow tier, plugged into {@link Stubs} (test/support/workflow-stubs.ts): the
 * control (DB) and hypervisor activities of the firewall workflows, over a small in-memory world of their own.
 */
import type { FirewallDbActivities } from '../../src/activities/db-firewall';
import type { StubOptions, Stubs } from './workflow-stubs';

/** Options of the firewall stubs (part of {@link StubOptions}). */
// eslint-disable-next-line @typescript-eslint/no-empty-object-type -- filled in by the firewall workflows
export interface FirewallStubOptions {}

/** The firewall part of the stubs: activities for both queues. */
export function firewallStubs(_stubs: Stubs, _opts: StubOptions) {
  const control: FirewallDbActivities = {};
  const hypervisor = {};
  return { control, hypervisor };
}
