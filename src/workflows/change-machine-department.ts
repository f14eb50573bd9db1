import { db, dbUndo, hostActivities, hostUndo, markMachineStatus, runMachineOperation } from './saga';
import {
  DEPARTMENT_CHANGE_FROM,
  type ChangeMachineDepartmentInput,
  type MachineOperationResult,
} from './shared';

/**
 * Moves a VM to another department (workflow id `vm-<machineId>`): validate (the target exists, the owner is a
 * member or an admin, the name is free there), mark it `updating`, make sure the target department's filter
 * is on the host, redefine the VM's filter to reference it (libvirt re-instantiates a running interface),
 * write the department (the VM's own rules and service settings stay; its effective services now follow the
 * new department), prune the old department's filter if nothing on the host uses it, and put the status
 * back. A failure puts the VM filter, the department filters and the row back as they were.
 */
export async function changeMachineDepartment(
  input: ChangeMachineDepartmentInput,
): Promise<MachineOperationResult> {
  return runMachineOperation('change_department', input, async (saga) => {
    const plan = await saga.step('validate', () => db.planDepartmentChange(input));
    const m = plan.machine;
    if (plan.noop) return { machineId: m.id, status: m.status, outcome: 'noop' as const };
    const base = { operationId: input.operationId, actorId: input.actorId, machineId: m.id };
    const previous = m.status;
    await markMachineStatus(saga, { base, status: 'updating', from: DEPARTMENT_CHANGE_FROM, previous });
    const host = hostActivities(m.hostName);
    const undo = hostUndo(m.hostName);
    const shared = plan.departmentFilterSpecs;
    const before = await saga.step('snapshot', () =>
      host.readFilters({ names: [...shared.map((s) => s.name), plan.vmFilterSpec.name] }),
    );
    const previousOf = (name: string) => before.find((b) => b.name === name)!;
    await saga.step(
      'ensureDepartmentFilter',
      () => host.ensureDepartmentFilter({ name: plan.departmentFilterName, specs: shared }),
      // Only what this step defined goes (what existed is put back as it was: unchanged).
      () => undo.restoreFilters({ filters: shared.map((s) => previousOf(s.name)).reverse() }),
    );
    await saga.step(
      'redefineVmFilter',
      () =>
        host.ensureVmFilter({
          name: plan.vmFilterSpec.name,
          departmentFilter: plan.departmentFilterName,
          spec: plan.vmFilterSpec,
          requires: shared,
        }),
      () => undo.restoreFilters({ filters: [previousOf(plan.vmFilterSpec.name)] }),
    );
    await saga.step(
      'writeDepartment',
      () => db.setMachineDepartment({ ...base, departmentId: input.departmentId }),
      () =>
        dbUndo.setMachineDepartment({
          ...base,
          departmentId: m.departmentId,
          onlyIfHeldBy: input.operationId,
        }),
    );
    const doomed = await saga.step('planPrune', () =>
      host.planPrune({ candidates: plan.pruneCandidates, cascade: true }),
    );
    if (doomed.length > 0) {
      await saga.step(
        'pruneOldDepartment',
        () => host.pruneFilters({ candidates: doomed.map((d) => d.name), cascade: false }),
        () => undo.restoreFilters({ filters: [...doomed].reverse() }),
      );
    }
    await saga.step('finalize', () => db.setMachineStatus({ ...base, status: previous }));
    return { machineId: m.id, status: previous };
  });
}
