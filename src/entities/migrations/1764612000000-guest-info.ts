import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * What the host knows of a running guest (src/worker/guest-info.ts): its IP addresses (from the QEMU guest
 * agent, else from the network's DHCP leases) and whether its guest agent is connected; and the clear part of
 * its first-boot provisioning (host name, user, SSH keys: src/guests/provisioning.ts), which a clone reuses.
 */
export class GuestInfo1764612000000 implements MigrationInterface {
  name = 'GuestInfo1764612000000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(
      "ALTER TABLE `machine` ADD `ipAddresses` json NULL, ADD `guestAgent` varchar(9) NOT NULL DEFAULT 'absent', " +
        'ADD `provisioning` json NULL',
    );
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query(
      'ALTER TABLE `machine` DROP COLUMN `provisioning`, DROP COLUMN `guestAgent`, DROP COLUMN `ipAddresses`',
    );
  }
}
