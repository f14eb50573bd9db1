/**
 * Recorded runs of the network workflows (see history-scenarios.ts): for each a happy path and at least
 * one compensating failure, and a cancellation for createNetwork (it makes resources). They run against
 * the network stubs (test/support/network-stubs.ts).
 */
import { randomUUID } from 'node:crypto';
import type { NetworkView } from '../../src/activities/db-network';
import { operationContext } from '../support/workflow-harness';
import { INJECTED, machineFixture } from '../support/workflow-stubs';
import { libvirtFixture, networkFixture } from '../support/network-stubs';
import type { Scenario } from './history-scenarios';
import { cancelDuring, settle } from './history-runs';

/** Fixed ids: the recorded inputs stay the same from one recording to the next. */
const NET = '3f7c1b2a-5d4e-4c6b-9a8f-0e1d2c3b4a51';
const OTHER = '8a2e6d40-1b3c-4f5e-8d7a-6c5b4a392810';

const existing = (hostName: string, id = NET, n = 1): NetworkView => networkFixture(id, hostName, {}, n);
const withNetworks = (hostName: string, extra: Record<string, unknown> = {}) => {
  const nets = [existing(hostName), existing(hostName, OTHER, 2)];
  return { network: { networks: nets, libvirtNetworks: nets.map(libvirtFixture), ...extra } };
};
const create = () => ({
  ...operationContext(),
  networkId: randomUUID(),
  name: 'lab',
  mode: 'nat' as const,
  cidr: '10.252.30.0/24',
  dhcpStart: '10.252.30.100',
  dhcpEnd: '10.252.30.200',
  staticHosts: [{ mac: '52:54:00:00:30:01', ip: '10.252.30.10', name: 'web' }],
});
const liveChange = () => ({
  ...operationContext(),
  networkId: NET,
  dhcpStart: '10.252.1.20',
  dhcpEnd: '10.252.1.30',
  staticHosts: [{ mac: '52:54:00:00:01:01', ip: '10.252.1.10' }],
});
const newSubnet = () => ({
  ...operationContext(),
  networkId: NET,
  cidr: '10.252.31.0/24',
  dhcpStart: '10.252.31.100',
  dhcpEnd: '10.252.31.200',
});
const move = () => ({ ...operationContext(), machineId: 'm-recorded', networkId: OTHER });
const onNet = (hostName: string, status: 'off' | 'running') =>
  machineFixture('m-recorded', hostName, { status, networkName: `vmflow-net-${NET}` });

export const NETWORK_SCENARIOS: Scenario[] = [
  {
    name: 'createNetwork.happy',
    workflow: 'createNetwork',
    stubs: () => ({}),
    run: async (run) => settle(await run.start('createNetwork', create())),
  },
  {
    name: 'createNetwork.fail-startNetwork',
    workflow: 'createNetwork',
    stubs: () => ({ fail: { startNetwork: INJECTED } }),
    run: async (run) => settle(await run.start('createNetwork', create())),
  },
  {
    name: 'createNetwork.cancel-startNetwork',
    workflow: 'createNetwork',
    stubs: () => ({}),
    run: (run, s) => cancelDuring(s, 'startNetwork', () => run.start('createNetwork', create())),
  },
  {
    name: 'updateNetwork.happy-live',
    workflow: 'updateNetwork',
    stubs: (host) => withNetworks(host),
    run: async (run) => settle(await run.start('updateNetwork', liveChange())),
  },
  {
    name: 'updateNetwork.fail-addDhcpHost',
    workflow: 'updateNetwork',
    stubs: (host) => ({ ...withNetworks(host), fail: { addDhcpHost: { type: INJECTED, times: 1 } } }),
    run: async (run) => settle(await run.start('updateNetwork', liveChange())),
  },
  {
    name: 'updateNetwork.happy-redefine',
    workflow: 'updateNetwork',
    stubs: (host) => withNetworks(host),
    run: async (run) => settle(await run.start('updateNetwork', newSubnet())),
  },
  {
    name: 'updateNetwork.fail-redefine-start',
    workflow: 'updateNetwork',
    stubs: (host) => withNetworks(host, { redefineStartFails: true }),
    run: async (run) => settle(await run.start('updateNetwork', newSubnet())),
  },
  {
    name: 'deleteNetwork.happy',
    workflow: 'deleteNetwork',
    stubs: (host) => withNetworks(host),
    run: async (run) => settle(await run.start('deleteNetwork', { ...operationContext(), networkId: NET })),
  },
  {
    name: 'deleteNetwork.fail-undefineNetwork',
    workflow: 'deleteNetwork',
    stubs: (host) => ({ ...withNetworks(host), fail: { undefineNetwork: INJECTED } }),
    run: async (run) => settle(await run.start('deleteNetwork', { ...operationContext(), networkId: NET })),
  },
  {
    name: 'changeMachineNetwork.happy-running',
    workflow: 'changeMachineNetwork',
    stubs: (host) => ({ ...withNetworks(host), machines: [onNet(host, 'running')], domainState: 'running' }),
    run: async (run) => settle(await run.start('changeMachineNetwork', move())),
  },
  {
    name: 'changeMachineNetwork.fail-moveMachineInterface',
    workflow: 'changeMachineNetwork',
    stubs: (host) => ({
      ...withNetworks(host),
      machines: [onNet(host, 'off')],
      fail: { moveMachineInterface: { type: INJECTED, times: 1 } },
    }),
    run: async (run) => settle(await run.start('changeMachineNetwork', move())),
  },
];
