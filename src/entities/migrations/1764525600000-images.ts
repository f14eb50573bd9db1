import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * OS images (src/entities/image.ts), and the columns that tie templates and machines to them: a template's
 * optional image and disk mode (`linked`: a qcow2 overlay on the image; `full`: a copy), and the image a
 * machine was made from (indexed: deleting an image is refused while machines use it).
 */
export class Images1764525600000 implements MigrationInterface {
  name = 'Images1764525600000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(
      "CREATE TABLE `image` (`id` char(36) NOT NULL, `name` varchar(100) NOT NULL, `description` varchar(500) NOT NULL DEFAULT '', `osFamily` varchar(10) NOT NULL, `format` varchar(8) NOT NULL, `virtualSizeBytes` bigint NULL, `sizeBytes` bigint NULL, `sha256` char(64) NULL, `firmware` varchar(8) NOT NULL, `provisioning` varchar(20) NOT NULL, `origin` varchar(10) NOT NULL DEFAULT 'upload', `hostName` varchar(63) NOT NULL, `pool` varchar(64) NOT NULL, `volumeName` varchar(255) NOT NULL, `path` varchar(1024) NULL, `status` varchar(12) NOT NULL, `lastError` text NULL, `departmentIds` json NULL, `currentOperationId` char(36) NULL, `createdAt` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3), `updatedAt` datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), UNIQUE INDEX `IDX_image_name` (`name`), INDEX `IDX_image_status` (`status`), INDEX `IDX_image_created` (`createdAt`, `id`), PRIMARY KEY (`id`)) ENGINE=InnoDB",
    );
    await q.query(
      "ALTER TABLE `machine_template` ADD `imageId` char(36) NULL, ADD `diskMode` varchar(8) NOT NULL DEFAULT 'linked', ADD INDEX `IDX_template_image` (`imageId`)",
    );
    await q.query(
      'ALTER TABLE `machine` ADD `imageId` char(36) NULL, ADD INDEX `IDX_machine_image` (`imageId`)',
    );
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE `machine` DROP INDEX `IDX_machine_image`, DROP COLUMN `imageId`');
    await q.query(
      'ALTER TABLE `machine_template` DROP INDEX `IDX_template_image`, DROP COLUMN `diskMode`, DROP COLUMN `imageId`',
    );
    await q.query('DROP TABLE `image`');
  }
}
