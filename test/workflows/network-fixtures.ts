/**
 * Fixtures of the network workflow tests (create-network, update-network, delete-network and
 * change-machine-network .test.ts): stub worlds with the host's default network, inputs, call labels.
 */
import { randomUUID } from 'node:crypto';
import type { NetworkView } from '../../src/activities/db-network';
import { type CreateNetworkInput, type UpdateNetworkInput } from '../../src/workflows/shared';
import { operationContext } from '../support/workflow-harness';
import { createStubs, type StubOptions, type Stubs } from '../support/workflow-stubs';
import {
  libvirtFixture,
  networkFixture,
  networkWorld,
  type NetworkStubOptions,
} from '../support/network-stubs';
import { uniqueId } from '../support/temporal';

/** Call labels, with the target status of setNetworkStatus (`setNetworkStatus:active`). */
export function labels(stubs: Stubs): string[] {
  return stubs.calls.map((c) =>
    c.name === 'setNetworkStatus' ? `setNetworkStatus:${(c.input as { status: string }).status}` : c.label,
  );
}

/** A stub world with the host's default network (10.250.0.0/24) and the given network rows. */
export function world(network: NetworkStubOptions = {}, more: Partial<StubOptions> = {}) {
  const hostName = uniqueId('host');
  const def = networkFixture(randomUUID(), hostName, {
    internalName: 'vmflow-default',
    cidr: '10.250.0.0/24',
  });
  const defaultLibvirt = {
    ...libvirtFixture({ ...def, gateway: '10.250.0.1', dhcpStart: null, dhcpEnd: null }),
  };
  defaultLibvirt.uuid = 'not-a-vmflow-network';
  const stubs = createStubs({
    hostName,
    ...more,
    network: { libvirtNetworks: [defaultLibvirt], ...network },
  });
  return { stubs, hostName, w: networkWorld(stubs) };
}

export function createInput(over: Partial<CreateNetworkInput> = {}): CreateNetworkInput {
  return {
    ...operationContext(),
    networkId: randomUUID(),
    name: `lab ${uniqueId('x')}`,
    mode: 'nat',
    cidr: '10.252.7.0/24',
    dhcpStart: '10.252.7.100',
    dhcpEnd: '10.252.7.200',
    ...over,
  };
}

export const CREATE = [
  'beginOperation',
  'planNetwork',
  'checkHostNetwork',
  'insertNetwork',
  'defineNetwork',
  'startNetwork',
  'setNetworkAutostart',
  'setNetworkStatus:active',
];

/** An active network (row and libvirt network) on a fresh stub host, plus machines. */
export function withNetwork(
  over: Partial<NetworkView> = {},
  opts: NetworkStubOptions = {},
  more: Partial<StubOptions> = {},
) {
  const hostName = uniqueId('host');
  const n = networkFixture(randomUUID(), hostName, over, 8);
  const stubs = createStubs({
    hostName,
    ...more,
    network: { networks: [n], libvirtNetworks: [libvirtFixture(n)], ...opts },
  });
  return { stubs, n, w: networkWorld(stubs), hostName };
}

export const update = (n: NetworkView, over: Partial<UpdateNetworkInput>): UpdateNetworkInput => ({
  ...operationContext(),
  networkId: n.id,
  ...over,
});
