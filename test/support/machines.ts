/** Helpers for integration suites that run machine operations on the real stack. */
import { randomUUID } from 'node:crypto';
import { type DataSource } from 'typeorm';
import { runMachineOperation, startMachineOperation } from '../../src/client/machine-operations';
import { Event } from '../../src/entities/event';
import { Machine } from '../../src/entities/machine';
import { type Department } from '../../src/entities/department';
import { type MachineTemplate } from '../../src/entities/machine-template';
import { type User } from '../../src/entities/user';
import { libvirtNames } from '../../src/workflows/shared';
import { seedDepartment, seedTemplate, seedUser } from './db';
import { type Stack } from './stack';

/** An owner, a department and a template to create machines with. */
export interface World {
  owner: User;
  department: Department;
  template: MachineTemplate;
}

/** Seeds an owner who is a member of a fresh department, and a small template. */
export async function seedWorld(ds: DataSource): Promise<World> {
  const owner = await seedUser(ds);
  const department = await seedDepartment(ds, [[owner, 'MEMBER']]);
  const template = await seedTemplate(ds);
  return { owner, department, template };
}

/** The createMachine request for a world (override anything). */
export function createRequest(stack: Stack, world: World, over: Record<string, unknown> = {}) {
  return {
    machineId: randomUUID(),
    name: `vm ${randomUUID().slice(0, 6)}`,
    templateId: world.template.id,
    departmentId: world.department.id,
    ownerId: world.owner.id,
    actorId: world.owner.id,
    hostName: stack.hostName,
    ...over,
  };
}

/** Creates a machine and waits for it. */
export async function createMachine(stack: Stack, world: World, over: Record<string, unknown> = {}) {
  const req = createRequest(stack, world, over);
  const result = await runMachineOperation(stack.env.client, 'createMachine', req as never);
  return { ...req, result };
}

/** Destroys a machine if its row still exists (afterAll clean-up). */
export async function destroyIfPresent(stack: Stack, machineId: string): Promise<void> {
  const row = await stack.dataSource.getRepository(Machine).findOne({ where: { id: machineId } });
  if (!row) return;
  await runMachineOperation(stack.env.client, 'destroyMachine', {
    machineId,
    actorId: null,
    shutdownTimeoutSec: 1,
  });
}

/** The libvirt domain of a machine. */
export async function domainOf(stack: Stack, machineId: string) {
  const conn = await stack.libvirt.get();
  return conn.lookupDomainByName(libvirtNames.domain(machineId));
}

/** The events of a resource, in order. */
export async function eventsOf(ds: DataSource, machineId: string): Promise<Event[]> {
  return ds.getRepository(Event).find({ where: { resourceId: machineId }, order: { id: 'ASC' } });
}

/** Waits for a condition with a deadline (no sleeps as synchronisation). */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false>,
  what: string,
  deadlineMs = 30_000,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export { startMachineOperation, runMachineOperation };
