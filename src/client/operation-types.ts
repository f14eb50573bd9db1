/**
 * The one table of which operation type (`operation.type`, the memo's `type`, the API's `operation.type`)
 * each machine workflow records.
 */
import { type OperationType } from '../entities/operation';

/** The machine workflows (workflow id `vm-<machineId>`). */
export type MachineWorkflow =
  | 'createMachine'
  | 'cloneMachine'
  | 'destroyMachine'
  | 'updateMachineHardware'
  | 'powerMachine'
  | 'changeMachineNetwork'
  | 'changeMachineDepartment'
  | 'guestExec'
  | 'guestKillProcess'
  | 'guestServiceAction';

/** Workflow name → the operation type it records. */
export const MACHINE_OPERATION_TYPE: Readonly<Record<MachineWorkflow, OperationType>> = {
  createMachine: 'create',
  cloneMachine: 'clone',
  destroyMachine: 'destroy',
  updateMachineHardware: 'update_hardware',
  powerMachine: 'power',
  changeMachineNetwork: 'change_network',
  changeMachineDepartment: 'change_department',
  guestExec: 'guest_exec',
  guestKillProcess: 'guest_kill',
  guestServiceAction: 'guest_service',
};
