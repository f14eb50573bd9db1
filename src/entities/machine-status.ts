/**
 * The machine status state machine. Every transition happens in a workflow activity, and only the
 * transitions listed here are accepted (pure module: used by activities, the API and tests).
 *
 *   creating ──► off | running | failed
 *   off ──► starting | updating | cloning | destroying
 *   starting ──► running | off | failed
 *   running ──► stopping | suspended | updating | destroying | off (guest shut down / crashed) | starting (reboot)
 *   suspended ──► running | stopping (forced off) | updating | destroying | off
 *   stopping ──► off | running | suspended (back where it was: a stop that did not happen)
 *   updating ──► off | running | suspended (back to where it was)
 *   cloning ──► off (the source returns to off when the clone is done)
 *   destroying ──► destroying (re-run) | failed (could not finish; retry destroys again)
 *   failed ──► destroying
 */
export const MACHINE_STATUSES = [
  'creating',
  'off',
  'starting',
  'running',
  'suspended',
  'stopping',
  'updating',
  'cloning',
  'destroying',
  'failed',
] as const;
export type MachineStatus = (typeof MACHINE_STATUSES)[number];

const TRANSITIONS: Record<MachineStatus, readonly MachineStatus[]> = {
  creating: ['off', 'running', 'failed'],
  off: ['starting', 'running', 'updating', 'cloning', 'destroying'],
  starting: ['running', 'off', 'failed'],
  running: ['stopping', 'suspended', 'updating', 'destroying', 'off', 'starting'],
  suspended: ['running', 'stopping', 'destroying', 'off', 'updating'],
  stopping: ['off', 'running', 'suspended'],
  updating: ['off', 'running', 'suspended'],
  cloning: ['off'],
  destroying: ['destroying', 'failed'],
  failed: ['destroying'],
};

/** True when a machine may move from `from` to `to` (staying in the same status is always allowed). */
export function canTransition(from: MachineStatus, to: MachineStatus): boolean {
  return from === to || TRANSITIONS[from].includes(to);
}

/** The statuses a stable machine (no operation running) can be in. */
export const STABLE_STATUSES: readonly MachineStatus[] = ['off', 'running', 'suspended', 'failed'];
