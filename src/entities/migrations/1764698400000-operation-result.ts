import { type MigrationInterface, type QueryRunner } from 'typeorm';

/** What an operation gave (a guest command's exit code and capped output: docs/guest-commands.md). */
export class OperationResult1764698400000 implements MigrationInterface {
  name = 'OperationResult1764698400000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE `operation` ADD `result` json NULL');
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE `operation` DROP COLUMN `result`');
  }
}
