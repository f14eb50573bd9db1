import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Indexes for GET /api/machines (src/api/machine-list.ts), so that every scope reads its rows in order,
 * newest first, and stops after a page: machine(ownerId, createdAt, id) for a user's own machines (it
 * replaces the index on ownerId alone, its prefix) and machine(departmentId, createdAt, id) for a managed
 * department's. machine(createdAt, id) (Api1764180000000) serves admins.
 */
export class MachineListIndexes1764352800000 implements MigrationInterface {
  name = 'MachineListIndexes1764352800000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(
      'ALTER TABLE `machine` ADD INDEX `IDX_machine_owner_created` (`ownerId`, `createdAt`, `id`), ' +
        'ADD INDEX `IDX_machine_department_created` (`departmentId`, `createdAt`, `id`), ' +
        'DROP INDEX `IDX_e9e3c65b75ccacbdf2a96361e2`',
    );
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query(
      'ALTER TABLE `machine` ADD INDEX `IDX_e9e3c65b75ccacbdf2a96361e2` (`ownerId`), ' +
        'DROP INDEX `IDX_machine_department_created`, DROP INDEX `IDX_machine_owner_created`',
    );
  }
}
