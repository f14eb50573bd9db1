import { guestAgentState, reachableAddress } from '../../../src/worker/guest-info';

const live = (state?: string) => `<domain type='qemu' id='7'>
  <name>vmflow-x</name>
  <devices>
    <channel type='unix'>
      <source mode='bind' path='/run/libvirt/qemu/channel/7-vmflow-x/org.vmflow.agent.0'/>
      <target type='virtio' name='org.vmflow.agent.0' state='connected'/>
    </channel>
    <channel type='unix'>
      <source mode='bind' path='/run/libvirt/qemu/channel/7-vmflow-x/org.qemu.guest_agent.0'/>
      <target type='virtio' name='org.qemu.guest_agent.0'${state ? ` state='${state}'` : ''}/>
    </channel>
  </devices>
</domain>`;

describe('guest agent state from the live domain XML', () => {
  it('is connected only when libvirt says the QEMU agent channel is', () => {
    expect(guestAgentState(live('connected'))).toBe('connected');
    expect(guestAgentState(live('disconnected'))).toBe('absent');
    expect(guestAgentState(live())).toBe('absent');
  });

  it("does not take vmflow's own channel for the QEMU agent's", () => {
    const onlyOurs = live('disconnected');
    expect(onlyOurs).toContain("name='org.vmflow.agent.0' state='connected'");
    expect(guestAgentState(onlyOurs)).toBe('absent');
  });

  it('is absent for a domain without the channel', () => {
    expect(guestAgentState("<domain type='qemu'><devices/></domain>")).toBe('absent');
  });
});

describe('reachable addresses', () => {
  it.each([
    ['10.250.0.17', true],
    ['fd00::5', true],
    ['127.0.0.1', false],
    ['::1', false],
    ['fe80::5054:ff:fe00:1', false],
    ['169.254.3.4', false],
  ])('%s → %s', (address, expected) => {
    expect(reachableAddress(address)).toBe(expected);
  });
});
