/** Firewall rows as the API shows them (responses and events). */
import { type FirewallFilter } from '../entities/firewall';

const iso = (d: Date | string) => new Date(d).toISOString();

/** A filter as lists show it (its row). */
export function filterView(f: FirewallFilter) {
  return {
    id: f.id,
    kind: f.kind,
    name: f.name,
    description: f.description,
    departmentId: f.departmentId,
    machineId: f.machineId,
    includes: f.includes ?? [],
    version: f.version,
    libvirtName: f.internalName,
    createdAt: iso(f.createdAt),
    updatedAt: iso(f.updatedAt),
  };
}
