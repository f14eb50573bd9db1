import type { HostReport } from '../workflows/shared';
import type { LibvirtProvider } from '../libvirt/provider';

/** Dependencies of the host activities: the host's libvirt connection. */
export interface HostActivityDeps {
  libvirt: LibvirtProvider;
}

/** Activities that read the hypervisor host itself. Run on the host's task queue. */
export function createHostActivities({ libvirt }: HostActivityDeps) {
  return {
    /** Identity and capacity of this host, as libvirt reports them. Read-only, so trivially idempotent. */
    async describeHost(): Promise<HostReport> {
      const conn = await libvirt.get();
      const [hostname, uri, libvirtVersion, node, free] = await Promise.all([
        conn.getHostname(),
        conn.getURI(),
        conn.getLibVersion(),
        conn.getNodeInfo(),
        conn.getFreeMemory(),
      ]);
      return {
        hostname,
        uri,
        libvirtVersion,
        cpus: node.cpus,
        memoryMiB: Math.floor(node.memoryKiB / 1024),
        freeMemoryMiB: Math.floor(free / 1024 / 1024),
      };
    },
  };
}

export type HostActivities = ReturnType<typeof createHostActivities>;
