import { type DataSource } from 'typeorm';
import { type LibvirtProvider } from '../libvirt/provider';
import { type SecretBox } from '../secrets';
import { type AgentWatcher } from '../worker/agent-watcher';
import { createDbActivities } from './db';
import { createFirewallDbActivities } from './db-firewall';
import { createNetworkDbActivities } from './db-network';
import { type FaultInjector } from './faults';
import { createGuestActivities } from './guest';
import { createHostActivities } from './host';
import { createImageDbActivities } from './db-images';
import { createImageHostActivities } from './images';
import { activityInterceptors } from './interceptors';
import { createLibvirtActivities } from './libvirt';
import { createNetworkActivities } from './network';
import { createNwfilterActivities } from './nwfilter';
import { createSeedActivities } from './seed';
import { createStorageActivities } from './storage';

/** Everything the activities of a process need; the worker builds it once. */
export interface ActivityDeps {
  libvirt: LibvirtProvider;
  dataSource: DataSource;
  secrets: SecretBox;
  /**
   * Test-only fault injector; production has none. Not seen by any activity: the worker makes it an
   * activity interceptor ({@link activityInterceptors}).
   */
  faults?: FaultInjector;
  /** Force a virtualization type instead of probing the host. */
  virtType?: 'kvm' | 'qemu';
  /** This host's guest agent watcher (src/worker/agent-watcher.ts); none when AGENT_WATCHER is off. */
  agents?: Pick<AgentWatcher, 'request'> | null;
}

/**
 * Activities served on the host's task queue (hypervisor work: libvirt, storage, nwfilter). Heartbeats and
 * test faults come from the worker's interceptors ({@link activityInterceptors}).
 */
export function createHypervisorActivities(deps: ActivityDeps) {
  return {
    ...createHostActivities(deps),
    ...createLibvirtActivities(deps),
    ...createStorageActivities(deps),
    ...createNwfilterActivities(deps),
    ...createNetworkActivities(deps),
    ...createSeedActivities(deps),
    ...createImageHostActivities(deps),
    ...createGuestActivities(deps),
  };
}

/** Activities served on the control task queue (database and events). */
export function createControlActivities(deps: ActivityDeps) {
  return {
    ...createDbActivities(deps),
    ...createNetworkDbActivities(deps),
    ...createFirewallDbActivities(deps),
    ...createImageDbActivities(deps),
  };
}

export { activityInterceptors };
