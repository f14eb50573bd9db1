import { destroyIfPresent, seedWorld } from '../../support/machines';
import { startStack } from '../../support/stack';
import { bindings, createNetbootMachine, filterXml, tapOf, tapRules } from '../../support/firewall';
import { libvirtNames } from '../../../src/workflows/shared';
it('scratch', async () => {
  const stack = await startStack();
  const world = await seedWorld(stack.dataSource);
  const t0 = Date.now(); const m = await createNetbootMachine(stack, world); console.log('ready after', Date.now() - t0);
  try {
    const conn = await stack.libvirt.get();
    console.log((await (await conn.lookupDomainByName(libvirtNames.domain(m.machineId))).getXML()).slice(0, 4000));
    console.log(await filterXml(stack.libvirt, libvirtNames.vmFilter(m.machineId)));
    console.log(await filterXml(stack.libvirt, libvirtNames.departmentFilter(world.department.id)));
    const tap = await tapOf(stack.libvirt, m.machineId);
    for (let i = 0; i < 12; i++) {
      const r = await tapRules(tap);
      console.log(i, tap, r.iptables.length, r.ebtables.length, [...(await bindings(stack.libvirt)).entries()]);
      if (r.iptables.length) { console.log(r); break; }
      await new Promise((res) => setTimeout(res, 5000));
    }
  } finally {
    await destroyIfPresent(stack, m.machineId);
    await stack.stop();
  }
}, 300000);
