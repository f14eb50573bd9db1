import { defaultCpuUsable } from '../../../src/activities/libvirt';

// Excerpts of `virsh domcapabilities --virttype …` read off this project's machines.
const broken = `<domainCapabilities><cpu><mode name='custom' supported='yes'>
      <model usable='yes' vendor='unknown'>pentium3</model>
      <model usable='no' vendor='unknown'>qemu64</model>
      <model usable='no' vendor='unknown'>kvm64</model></mode></cpu></domainCapabilities>`;
const working = broken.replace("usable='no' vendor='unknown'>qemu64", "usable='yes' vendor='unknown'>qemu64");

describe('the kvm probe reads whether the default CPU model is usable', () => {
  it('refuses kvm where qemu64 is not usable (a nested KVM without SSE3: it does not boot Linux)', () => {
    expect(defaultCpuUsable(broken)).toBe(false);
  });
  it('accepts kvm where qemu64 is usable', () => {
    expect(defaultCpuUsable(working)).toBe(true);
  });
  it('refuses when the capabilities cannot be read', () => {
    expect(defaultCpuUsable('')).toBe(false);
  });
});
