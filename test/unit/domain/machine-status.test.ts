import { canTransition, MACHINE_STATUSES, type MachineStatus } from '../../../src/entities/machine-status';
import { HARDWARE_FROM, POWER_FROM } from '../../../src/workflows/shared';
import { actionFor, statusForEvent, statusForState } from '../../../src/worker/host-sync';

describe('machine status state machine', () => {
  it('accepts the documented transitions and refuses others', () => {
    expect(canTransition('creating', 'off')).toBe(true);
    expect(canTransition('creating', 'running')).toBe(true);
    expect(canTransition('off', 'starting')).toBe(true);
    expect(canTransition('suspended', 'stopping')).toBe(true);
    expect(canTransition('failed', 'destroying')).toBe(true);
    expect(canTransition('off', 'suspended')).toBe(false);
    expect(canTransition('destroying', 'running')).toBe(false);
    expect(canTransition('cloning', 'running')).toBe(false);
    expect(canTransition('failed', 'running')).toBe(false);
  });

  it('always allows staying in the same status', () => {
    for (const s of MACHINE_STATUSES) expect(canTransition(s, s)).toBe(true);
  });

  it('lets every power action and hardware change leave each of its start statuses', () => {
    const via: Record<string, MachineStatus> = {
      start: 'starting',
      shutdown: 'stopping',
      poweroff: 'stopping',
    };
    for (const [action, froms] of Object.entries(POWER_FROM)) {
      for (const from of froms) {
        const next = via[action] ?? (action === 'suspend' ? 'suspended' : 'running');
        expect({ action, from, ok: canTransition(from, next) }).toEqual({ action, from, ok: true });
      }
    }
    for (const from of HARDWARE_FROM) {
      expect(canTransition(from, 'updating')).toBe(true);
      expect(canTransition('updating', from)).toBe(true);
    }
  });

  it('lets every status that a destroy may find reach destroying', () => {
    for (const s of ['off', 'running', 'suspended', 'failed', 'destroying'] as const)
      expect(canTransition(s, 'destroying')).toBe(true);
  });
});

describe('hypervisor state mapping', () => {
  it('maps libvirt states and events to statuses', () => {
    expect(statusForState('running')).toEqual({ status: 'running' });
    expect(statusForState('paused')).toEqual({ status: 'suspended' });
    expect(statusForState('shutoff')).toEqual({ status: 'off' });
    expect(statusForState('crashed')).toEqual({ status: 'off' });
    expect(statusForState('nostate')).toBeNull();
    expect(statusForEvent('started')).toEqual({ status: 'running' });
    expect(statusForEvent('resumed')).toEqual({ status: 'running' });
    expect(statusForEvent('stopped')).toEqual({ status: 'off' });
    expect(statusForEvent('defined')).toBeNull();
  });

  it('names the event after the transition, not after libvirt (a start arrives as resumed first)', () => {
    expect(actionFor('off', 'running')).toBe('power_on');
    expect(actionFor('suspended', 'running')).toBe('resume');
    expect(actionFor('running', 'suspended')).toBe('suspend');
    expect(actionFor('running', 'off')).toBe('power_off');
  });
});
