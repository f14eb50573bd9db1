import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * What the host knows of a running guest (src/worker/guest-info.ts): its IP addresses (from the QEMU guest
 * agent, else from the network's DHCP leases) and whether its guest agent is connected.
 */
export class GuestInfo1764612000000 implements MigrationInterface {
  name = 'GuestInfo1764612000000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(
      "ALTER TABLE `machine` ADD `ipAddresses` json NULL, ADD `guestAgent` varchar(9) NOT NULL DEFAULT 'absent'",
    );
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query('ALTER TABLE `machine` DROP COLUMN `guestAgent`, DROP COLUMN `ipAddresses`');
  }
}
