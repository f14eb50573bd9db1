import { type MigrationInterface, type QueryRunner } from 'typeorm';

/** The initial schema: users, departments, templates, hosts, machines, operations and events. */
export class Initial1764093600000 implements MigrationInterface {
  name = 'Initial1764093600000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE TABLE \`user\` (\`id\` char(36) NOT NULL, \`email\` varchar(254) NOT NULL, \`passwordHash\` varchar(100) NOT NULL, \`role\` varchar(10) NOT NULL DEFAULT 'USER', \`firstName\` varchar(100) NOT NULL DEFAULT '', \`lastName\` varchar(100) NOT NULL DEFAULT '', \`createdAt\` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), \`updatedAt\` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), UNIQUE INDEX \`IDX_e12875dfb3b1d92d7d7c5377e2\` (\`email\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await q.query(
      `CREATE TABLE \`department\` (\`id\` char(36) NOT NULL, \`name\` varchar(100) NOT NULL, \`filterName\` varchar(64) NOT NULL, \`networkName\` varchar(64) NULL, \`createdAt\` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), UNIQUE INDEX \`IDX_471da4b90e96c1ebe0af221e07\` (\`name\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await q.query(
      `CREATE TABLE \`department_member\` (\`departmentId\` char(36) NOT NULL, \`userId\` char(36) NOT NULL, \`role\` varchar(10) NOT NULL DEFAULT 'MEMBER', PRIMARY KEY (\`departmentId\`, \`userId\`)) ENGINE=InnoDB`,
    );
    await q.query(
      `CREATE TABLE \`machine_template\` (\`id\` char(36) NOT NULL, \`name\` varchar(100) NOT NULL, \`description\` varchar(500) NOT NULL DEFAULT '', \`cpu\` int NOT NULL, \`memoryMiB\` int NOT NULL, \`storageGiB\` int NOT NULL, \`os\` varchar(40) NOT NULL, \`createdAt\` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), UNIQUE INDEX \`IDX_a530d0c566e7102d49e5d661f0\` (\`name\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await q.query(
      `CREATE TABLE \`host\` (\`id\` char(36) NOT NULL, \`name\` varchar(63) NOT NULL, \`libvirtUri\` varchar(255) NOT NULL, \`taskQueue\` varchar(100) NOT NULL, \`cpus\` int NOT NULL, \`memoryMiB\` bigint NOT NULL, \`storagePool\` varchar(64) NOT NULL, \`defaultNetwork\` varchar(64) NOT NULL, \`lastSeenAt\` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), UNIQUE INDEX \`IDX_d93daa8d96a567c9904ba53025\` (\`name\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await q.query(
      `CREATE TABLE \`machine\` (\`id\` char(36) NOT NULL, \`name\` varchar(100) NOT NULL, \`internalName\` varchar(64) NOT NULL, \`libvirtUuid\` char(36) NULL, \`status\` varchar(12) NOT NULL, \`ownerId\` char(36) NOT NULL, \`departmentId\` char(36) NOT NULL, \`templateId\` char(36) NOT NULL, \`hostId\` char(36) NOT NULL, \`cpu\` int NOT NULL, \`memoryMiB\` int NOT NULL, \`storageGiB\` int NOT NULL, \`os\` varchar(40) NOT NULL, \`macAddress\` varchar(17) NULL, \`networkName\` varchar(64) NULL, \`diskPath\` varchar(255) NULL, \`filterName\` varchar(64) NOT NULL, \`sourceMachineId\` char(36) NULL, \`linkedClone\` tinyint NOT NULL DEFAULT 0, \`pendingHardware\` json NULL, \`lastError\` text NULL, \`currentOperationId\` char(36) NULL, \`guestSecrets\` json NULL, \`createdAt\` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), \`updatedAt\` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), UNIQUE INDEX \`IDX_021e4bcffd66790594b977de28\` (\`internalName\`), INDEX \`IDX_62106c5537bc2105b982ce8594\` (\`status\`), INDEX \`IDX_e9e3c65b75ccacbdf2a96361e2\` (\`ownerId\`), UNIQUE INDEX \`IDX_3ce93d45f1d7e15621e56d9da5\` (\`departmentId\`, \`name\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await q.query(
      `CREATE TABLE \`operation\` (\`id\` char(36) NOT NULL, \`workflowId\` varchar(100) NOT NULL, \`type\` varchar(20) NOT NULL, \`machineId\` char(36) NULL, \`actorId\` char(36) NULL, \`idempotencyKey\` varchar(200) NULL, \`status\` varchar(10) NOT NULL, \`steps\` json NOT NULL, \`input\` json NULL, \`error\` text NULL, \`startedAt\` datetime(3) NOT NULL, \`finishedAt\` datetime(3) NULL, INDEX \`IDX_2a558f5f9593abb1861c6646bc\` (\`workflowId\`), INDEX \`IDX_daeddc18eafc0debf0c2a952fc\` (\`machineId\`), UNIQUE INDEX \`IDX_da55f9c4ad4b73c8c1c94ebb6f\` (\`idempotencyKey\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
    await q.query(
      `CREATE TABLE \`event\` (\`id\` bigint NOT NULL AUTO_INCREMENT, \`resource\` varchar(40) NOT NULL, \`action\` varchar(40) NOT NULL, \`resourceId\` varchar(64) NULL, \`payload\` json NOT NULL, \`actorId\` char(36) NULL, \`workflowId\` varchar(100) NULL, \`ownerId\` char(36) NULL, \`departmentId\` char(36) NULL, \`dedupeKey\` varchar(200) NULL, \`createdAt\` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), INDEX \`IDX_2ddaf7beb0f75d60241d89de0b\` (\`resourceId\`), UNIQUE INDEX \`IDX_cadec63393149bcecf0cb9a30a\` (\`dedupeKey\`), PRIMARY KEY (\`id\`)) ENGINE=InnoDB`,
    );
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX \`IDX_cadec63393149bcecf0cb9a30a\` ON \`event\``);
    await q.query(`DROP INDEX \`IDX_2ddaf7beb0f75d60241d89de0b\` ON \`event\``);
    await q.query(`DROP TABLE \`event\``);
    await q.query(`DROP INDEX \`IDX_da55f9c4ad4b73c8c1c94ebb6f\` ON \`operation\``);
    await q.query(`DROP INDEX \`IDX_daeddc18eafc0debf0c2a952fc\` ON \`operation\``);
    await q.query(`DROP INDEX \`IDX_2a558f5f9593abb1861c6646bc\` ON \`operation\``);
    await q.query(`DROP TABLE \`operation\``);
    await q.query(`DROP INDEX \`IDX_3ce93d45f1d7e15621e56d9da5\` ON \`machine\``);
    await q.query(`DROP INDEX \`IDX_e9e3c65b75ccacbdf2a96361e2\` ON \`machine\``);
    await q.query(`DROP INDEX \`IDX_62106c5537bc2105b982ce8594\` ON \`machine\``);
    await q.query(`DROP INDEX \`IDX_021e4bcffd66790594b977de28\` ON \`machine\``);
    await q.query(`DROP TABLE \`machine\``);
    await q.query(`DROP INDEX \`IDX_d93daa8d96a567c9904ba53025\` ON \`host\``);
    await q.query(`DROP TABLE \`host\``);
    await q.query(`DROP INDEX \`IDX_a530d0c566e7102d49e5d661f0\` ON \`machine_template\``);
    await q.query(`DROP TABLE \`machine_template\``);
    await q.query(`DROP TABLE \`department_member\``);
    await q.query(`DROP INDEX \`IDX_471da4b90e96c1ebe0af221e07\` ON \`department\``);
    await q.query(`DROP TABLE \`department\``);
    await q.query(`DROP INDEX \`IDX_e12875dfb3b1d92d7d7c5377e2\` ON \`user\``);
    await q.query(`DROP TABLE \`user\``);
  }
}
