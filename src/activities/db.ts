import { randomUUID } from 'node:crypto';
import { type DataSource } from 'typeorm';
import { Host } from '../entities/host';
import { type DbActivityDeps } from './db-types';
import { createMachineDbActivities } from './db-machines';
import { createOperationDbActivities } from './db-operations';
import { createPlanDbActivities } from './db-plans';

export type { CreatePlan, DbActivityDeps, DepartmentChangePlan, MachineView } from './db-types';
export { publicMachine } from './db-machines';
export { checkMachineName, DEPARTMENT_CHANGE_FROM } from './db-plans';

/** Registers (or refreshes) a hypervisor host; the worker calls it on start. */
export async function registerHost(
  ds: DataSource,
  h: Omit<Host, 'id' | 'lastSeenAt' | 'capabilities'> & { capabilities?: Host['capabilities'] },
): Promise<Host> {
  const repo = ds.getRepository(Host);
  const existing = await repo.findOne({ where: { name: h.name } });
  const row = repo.create({ ...existing, ...h, id: existing?.id ?? randomUUID() });
  return repo.save(row);
}

/**
 * Database and event activities of the machine workflows. Run on the control task queue. Each one is
 * idempotent. Composed of operation bookkeeping (`db-operations`), the plan validators (`db-plans`) and
 * the machine row writes (`db-machines`).
 */
export function createDbActivities(deps: DbActivityDeps) {
  return {
    ...createOperationDbActivities(deps),
    ...createPlanDbActivities(deps),
    ...createMachineDbActivities(deps),
  };
}

export type DbActivities = ReturnType<typeof createDbActivities>;
