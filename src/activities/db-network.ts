import { type DataSource } from 'typeorm';
import { type FaultInjector } from './faults';

/** Dependencies of the network database activities. */
export interface NetworkDbActivityDeps {
  dataSource: DataSource;
  faults?: FaultInjector;
}

/** Database activities of the network workflows. Run on the control task queue. Each one is idempotent. */
export function createNetworkDbActivities(_deps: NetworkDbActivityDeps) {
  return {};
}

export type NetworkDbActivities = ReturnType<typeof createNetworkDbActivities>;
