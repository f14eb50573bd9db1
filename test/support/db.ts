/** Test database helpers: a data source on the test DB and seed rows. */
import { randomUUID } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { type DataSource } from 'typeorm';
import { createDataSource } from '../../src/entities/data-source';
import { Department, DepartmentMember, type DepartmentRole } from '../../src/entities/department';
import { MachineTemplate } from '../../src/entities/machine-template';
import { User, type UserRole } from '../../src/entities/user';
import { libvirtNames } from '../../src/workflows/shared';

/** A data source on the test database (migrated by the global set-up). */
export async function openTestDataSource(): Promise<DataSource> {
  const url = process.env.DATABASE_URL;
  if (!url) throw new Error('DATABASE_URL unset: run through jest (global set-up)');
  const ds = createDataSource(url, { poolSize: 5 });
  await ds.initialize();
  return ds;
}

const tag = () => randomUUID().slice(0, 8);

/** Inserts a user. */
export async function seedUser(ds: DataSource, role: UserRole = 'USER'): Promise<User> {
  const u = ds.getRepository(User).create({
    id: randomUUID(),
    email: `u-${tag()}@test.vmflow.local`,
    passwordHash: await bcrypt.hash('test-password', 4),
    role,
    firstName: 'Test',
    lastName: role,
  });
  return ds.getRepository(User).save(u);
}

/** Inserts a department (and memberships). */
export async function seedDepartment(
  ds: DataSource,
  members: Array<[User, DepartmentRole]> = [],
): Promise<Department> {
  const id = randomUUID();
  const d = await ds.getRepository(Department).save({
    id,
    name: `dept-${tag()}`,
    filterName: libvirtNames.departmentFilter(id),
    networkName: null,
  });
  for (const [u, role] of members)
    await ds.getRepository(DepartmentMember).save({ departmentId: id, userId: u.id, role });
  return d;
}

/** Inserts a small template (64 MiB, 1 vCPU, 1 GiB disk: boots no OS under TCG, enough for lifecycle tests). */
export async function seedTemplate(
  ds: DataSource,
  over: Partial<MachineTemplate> = {},
): Promise<MachineTemplate> {
  return ds.getRepository(MachineTemplate).save({
    id: randomUUID(),
    name: `tpl-${tag()}`,
    description: '',
    cpu: 1,
    memoryMiB: 64,
    storageGiB: 1,
    os: 'none',
    ...over,
  });
}
