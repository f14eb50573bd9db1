import { type DataSource } from 'typeorm';
import { type FaultInjector } from './faults';

/** Dependencies of the firewall database activities. */
export interface FirewallDbActivityDeps {
  dataSource: DataSource;
  faults?: FaultInjector;
}

/** Database activities of the firewall workflows. Run on the control task queue. Each one is idempotent. */
export function createFirewallDbActivities(_deps: FirewallDbActivityDeps) {
  return {};
}

export type FirewallDbActivities = ReturnType<typeof createFirewallDbActivities>;
