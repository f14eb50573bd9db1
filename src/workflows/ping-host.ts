import { proxyActivities } from '@temporalio/workflow';
import type { HostActivities } from '../activities/host';
import { hostTaskQueue, type HostReport, type PingHostInput } from './shared';

/**
 * Reads a host's identity and capacity through its worker: the smallest durable path
 * API/test → Temporal → worker (host queue) → libvirt.
 */
export async function pingHost(input: PingHostInput): Promise<HostReport> {
  const host = proxyActivities<HostActivities>({
    taskQueue: hostTaskQueue(input.hostName),
    startToCloseTimeout: '30 seconds',
    scheduleToCloseTimeout: '2 minutes',
    retry: { maximumAttempts: 5 },
  });
  return host.describeHost();
}
