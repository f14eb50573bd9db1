import { type LibvirtProvider } from '../libvirt/provider';
import { type FaultInjector } from './faults';

/** Dependencies of the network activities. */
export interface NetworkActivityDeps {
  libvirt: LibvirtProvider;
  faults?: FaultInjector;
}

/** Virtual-network activities (define, start, update, delete). Run on the host's task queue. */
export function createNetworkActivities(_deps: NetworkActivityDeps) {
  return {};
}

export type NetworkActivities = ReturnType<typeof createNetworkActivities>;
