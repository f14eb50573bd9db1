import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Networks, firewall filters and rules, service toggles, the department firewall preset, and operations
 * on resources other than machines. Backfills the filter row of every existing department and machine.
 */
export class NetworksFirewall1764266400000 implements MigrationInterface {
  name = 'NetworksFirewall1764266400000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(
      'CREATE TABLE `network` (`id` char(36) NOT NULL, `name` varchar(64) NOT NULL, `description` varchar(500) NULL, `internalName` varchar(64) NOT NULL, `bridgeName` varchar(15) NOT NULL, `hostId` char(36) NOT NULL, `mode` varchar(10) NOT NULL, `cidr` varchar(43) NULL, `gateway` varchar(39) NULL, `dhcpStart` varchar(39) NULL, `dhcpEnd` varchar(39) NULL, `staticHosts` json NULL, `forwardDev` varchar(15) NULL, `departmentId` char(36) NULL, `vlanId` int NULL, `bandwidth` json NULL, `qosApplied` tinyint NOT NULL DEFAULT 0, `status` varchar(12) NOT NULL, `lastError` text NULL, `currentOperationId` char(36) NULL, `createdAt` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), `updatedAt` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), UNIQUE INDEX `IDX_8152c1df5adc4846b705ddde6d` (`name`), UNIQUE INDEX `IDX_d2e673c7a899e72d4d1c851410` (`internalName`), UNIQUE INDEX `IDX_7e9d2d0873bbf8390dbeff5dd3` (`bridgeName`), INDEX `IDX_2cb14fbf2e842c5a50b3087bfe` (`departmentId`), INDEX `IDX_6e170c452f8727f56f09ef2167` (`status`), PRIMARY KEY (`id`)) ENGINE=InnoDB',
    );
    await q.query(
      'CREATE TABLE `firewall_filter` (`id` char(36) NOT NULL, `kind` varchar(10) NOT NULL, `name` varchar(100) NOT NULL, `description` varchar(500) NULL, `internalName` varchar(64) NOT NULL, `departmentId` char(36) NULL, `machineId` char(36) NULL, `includes` json NOT NULL, `version` int NOT NULL DEFAULT 1, `createdAt` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), `updatedAt` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), UNIQUE INDEX `IDX_61a67298db9273eb5f652b1ca3` (`internalName`), INDEX `IDX_1f3c7d5c77387afd95cddb4789` (`departmentId`), UNIQUE INDEX `IDX_36a09268006e6c942cb0637590` (`machineId`), PRIMARY KEY (`id`)) ENGINE=InnoDB',
    );
    await q.query(
      'CREATE TABLE `firewall_rule` (`id` char(36) NOT NULL, `filterId` char(36) NOT NULL, `spec` json NOT NULL, `createdAt` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), `updatedAt` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), INDEX `IDX_a1d8e01e522557ca0102590b05` (`filterId`, `createdAt`), PRIMARY KEY (`id`)) ENGINE=InnoDB',
    );
    await q.query(
      'CREATE TABLE `service_setting` (`scope` varchar(10) NOT NULL, `scopeId` char(36) NOT NULL, `serviceId` varchar(40) NOT NULL, `action` varchar(10) NOT NULL, `enabled` tinyint NOT NULL, `updatedAt` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), PRIMARY KEY (`scope`, `scopeId`, `serviceId`, `action`)) ENGINE=InnoDB',
    );
    await q.query('ALTER TABLE `host` ADD `capabilities` json NULL');
    await q.query("ALTER TABLE `department` ADD `firewallPolicy` varchar(20) NOT NULL DEFAULT 'ALLOW_ALL'");
    await q.query("ALTER TABLE `operation` ADD `resource` varchar(20) NOT NULL DEFAULT 'vms'");
    await q.query('ALTER TABLE `operation` ADD `resourceId` char(36) NULL');
    await q.query('CREATE INDEX `IDX_cc618a382903d35004857945cc` ON `operation` (`resourceId`)');
    await q.query("ALTER TABLE `operation_request` ADD `resource` varchar(20) NOT NULL DEFAULT 'vms'");
    await q.query('ALTER TABLE `operation_request` ADD `resourceId` char(36) NULL');
    await q.query('ALTER TABLE `operation_request` MODIFY `machineId` char(36) NULL');
    await q.query('ALTER TABLE `operation_request` MODIFY `ownerId` char(36) NULL');
    await q.query('ALTER TABLE `operation_request` MODIFY `departmentId` char(36) NULL');
    // Every department and machine has its filter row (the libvirt names were already deterministic).
    await q.query(
      "INSERT INTO `firewall_filter` (`id`, `kind`, `name`, `internalName`, `departmentId`, `machineId`, `includes`) SELECT UUID(), 'department', LEFT(CONCAT('department ', `name`), 100), `filterName`, `id`, NULL, '[]' FROM `department`",
    );
    await q.query(
      "INSERT INTO `firewall_filter` (`id`, `kind`, `name`, `internalName`, `departmentId`, `machineId`, `includes`) SELECT UUID(), 'vm', LEFT(CONCAT('machine ', `name`), 100), `filterName`, NULL, `id`, '[]' FROM `machine`",
    );
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE `operation_request` DROP COLUMN `resourceId`');
    await q.query('ALTER TABLE `operation_request` DROP COLUMN `resource`');
    await q.query('DROP INDEX `IDX_cc618a382903d35004857945cc` ON `operation`');
    await q.query('ALTER TABLE `operation` DROP COLUMN `resourceId`');
    await q.query('ALTER TABLE `operation` DROP COLUMN `resource`');
    await q.query('ALTER TABLE `department` DROP COLUMN `firewallPolicy`');
    await q.query('ALTER TABLE `host` DROP COLUMN `capabilities`');
    await q.query('DROP TABLE `service_setting`');
    await q.query('DROP TABLE `firewall_rule`');
    await q.query('DROP TABLE `firewall_filter`');
    await q.query('DROP TABLE `network`');
  }
}
