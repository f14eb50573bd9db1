// Every workflow the worker registers (workflowsPath points here).
export { pingHost } from './ping-host';
export { createMachine } from './create-machine';
export { cloneMachine } from './clone-machine';
export { destroyMachine } from './destroy-machine';
export { updateMachineHardware } from './update-machine-hardware';
export { powerMachine } from './power-machine';
export { createNetwork } from './create-network';
export { updateNetwork } from './update-network';
export { deleteNetwork } from './delete-network';
export { changeMachineNetwork } from './change-machine-network';
export { firewallChange } from './firewall-change';
export { flushFilters } from './flush-filters';
export { changeMachineDepartment } from './change-machine-department';
export { importImage } from './import-image';
export { registerImage } from './register-image';
export { deleteImage } from './delete-image';
export { readGuest, guestExec, guestKillProcess, guestServiceAction } from './guest-commands';
