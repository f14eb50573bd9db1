import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * The API's own tables: idempotency records and accepted operation requests; and an index on
 * machine(createdAt, id) for the machine list's keyset pagination (newest first).
 */
export class Api1764180000000 implements MigrationInterface {
  name = 'Api1764180000000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE \`idempotency_record\` (\`userId\` char(36) NOT NULL, \`idempotencyKey\` varchar(100) NOT NULL, \`method\` varchar(10) NOT NULL, \`path\` varchar(300) NOT NULL, \`requestHash\` char(64) NOT NULL, \`state\` varchar(10) NOT NULL, \`ids\` json NOT NULL, \`responseStatus\` int NULL, \`responseBody\` json NULL, \`lockedUntil\` datetime(3) NOT NULL, \`createdAt\` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), PRIMARY KEY (\`userId\`, \`idempotencyKey\`)) ENGINE=InnoDB`,
    );
    await q.query(
      `CREATE TABLE \`operation_request\` (\`id\` char(36) NOT NULL, \`workflowId\` varchar(100) NOT NULL, \`type\` varchar(20) NOT NULL, \`machineId\` char(36) NOT NULL, \`actorId\` char(36) NULL, \`ownerId\` char(36) NOT NULL, \`departmentId\` char(36) NOT NULL, \`createdAt\` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), INDEX \`IDX_d190a792917edcd6cdc0402704\` (\`machineId\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await q.query(`CREATE INDEX \`IDX_b975f700c0501b4e08a04a59f3\` ON \`machine\` (\`createdAt\`, \`id\`)`);
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX \`IDX_b975f700c0501b4e08a04a59f3\` ON \`machine\``);
    await q.query(`DROP INDEX \`IDX_d190a792917edcd6cdc0402704\` ON \`operation_request\``);
    await q.query(`DROP TABLE \`operation_request\``);
    await q.query(`DROP TABLE \`idempotency_record\``);
  }
}
