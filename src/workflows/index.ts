// Every workflow the worker registers (workflowsPath points here).
export { pingHost } from './ping-host';
export { createMachine } from './create-machine';
export { cloneMachine } from './clone-machine';
export { destroyMachine } from './destroy-machine';
export { updateMachineHardware } from './update-machine-hardware';
export { powerMachine } from './power-machine';
