import { type NWFilter } from '../libvirt/connection';
import { isLibvirtError, LibvirtErrorCode } from '../libvirt/errors';
import { type LibvirtProvider } from '../libvirt/provider';
import { buildNWFilterXml } from '../libvirt/xml';
import { type FaultInjector } from './faults';

/** Dependencies of the nwfilter activities. */
export interface NwfilterActivityDeps {
  libvirt: LibvirtProvider;
  faults?: FaultInjector;
}

/**
 * Network-filter activities. A VM's interface carries one filterref, to its VM filter, which references
 * its department's filter, which references libvirt's `clean-traffic` (no MAC/IP spoofing). Run on the
 * host's task queue.
 */
export function createNwfilterActivities({ libvirt, faults }: NwfilterActivityDeps) {
  async function find(name: string): Promise<NWFilter | null> {
    const conn = await libvirt.get();
    try {
      return await conn.lookupNWFilterByName(name);
    } catch (e) {
      if (isLibvirtError(e, LibvirtErrorCode.NO_NWFILTER)) return null;
      throw e;
    }
  }

  return {
    /**
     * Defines the department's filter if the host does not have it yet. An existing one is left as it is:
     * its rules are the department's policy, owned by the firewall workflows.
     */
    async ensureDepartmentFilter(input: { name: string }): Promise<void> {
      await faults?.check('ensureDepartmentFilter', 'before');
      if (!(await find(input.name))) {
        const conn = await libvirt.get();
        await conn.defineNWFilter(
          buildNWFilterXml({ name: input.name, chain: 'root', filterrefs: [{ filter: 'clean-traffic' }] }),
        );
      }
      await faults?.check('ensureDepartmentFilter', 'after');
    },

    /** Defines (or redefines to the same content) the VM's own filter, referencing its department's. */
    async ensureVmFilter(input: { name: string; departmentFilter: string }): Promise<void> {
      await faults?.check('ensureVmFilter', 'before');
      const existing = await find(input.name);
      const conn = await libvirt.get();
      await conn.defineNWFilter(
        buildNWFilterXml({
          name: input.name,
          uuid: existing ? await existing.getUUID() : undefined,
          chain: 'root',
          filterrefs: [{ filter: input.departmentFilter }],
        }),
      );
      await faults?.check('ensureVmFilter', 'after');
    },

    /**
     * Removes a VM's filter and any binding still using it (a binding outlives its domain only when
     * libvirt was interrupted). No-op when already gone.
     */
    async removeVmFilter(input: { name: string }): Promise<void> {
      await faults?.check('removeVmFilter', 'before');
      const conn = await libvirt.get();
      for (const b of await conn.listAllNWFilterBindings()) {
        if ((await b.getFilterName()) === input.name) {
          await b.delete().catch((e: unknown) => {
            if (!isLibvirtError(e, LibvirtErrorCode.NO_NWFILTER_BINDING)) throw e;
          });
        }
      }
      const f = await find(input.name);
      if (f) {
        try {
          await f.undefine();
        } catch (e) {
          if (!isLibvirtError(e, LibvirtErrorCode.NO_NWFILTER)) throw e;
        }
      }
      await faults?.check('removeVmFilter', 'after');
    },
  };
}

export type NwfilterActivities = ReturnType<typeof createNwfilterActivities>;
