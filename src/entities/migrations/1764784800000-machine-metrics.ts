import { type MigrationInterface, type QueryRunner } from 'typeorm';

/** The value columns, shared by both tables (src/metrics/point.ts, METRIC_FIELDS). */
const VALUES =
  '`cpuPct` float NULL, `memAssignedBytes` double NULL, `memTotalBytes` double NULL, `memUsedBytes` double NULL, ' +
  '`hostRssBytes` double NULL, `diskReadBps` double NULL, `diskWriteBps` double NULL, `netRxBps` double NULL, ' +
  '`netTxBps` double NULL, `guestCpuPct` float NULL, `load1` float NULL, `swapUsedBytes` double NULL, ' +
  '`fsUsedBytes` double NULL, `fsTotalBytes` double NULL, `uptimeS` double NULL, `users` float NULL';

/**
 * VM metrics (docs/metrics.md): raw samples, kept briefly, and 1-minute rollups, kept longer; both keyed by
 * (machineId, time), the order every read takes, with an index on time alone for the retention purge. No
 * foreign key to `machine`: a batch insert must not fail for a VM deleted meanwhile; retention removes a
 * deleted VM's rows.
 */
export class MachineMetrics1764784800000 implements MigrationInterface {
  name = 'MachineMetrics1764784800000';

  public async up(q: QueryRunner): Promise<void> {
    await q.query(
      'CREATE TABLE `machine_metric_raw` (`machineId` char(36) NOT NULL, `at` datetime(3) NOT NULL, ' +
        `\`agent\` tinyint NOT NULL DEFAULT 0, ${VALUES}, ` +
        'PRIMARY KEY (`machineId`, `at`), INDEX `IDX_machine_metric_raw_at` (`at`)) ENGINE=InnoDB',
    );
    await q.query(
      'CREATE TABLE `machine_metric_minute` (`machineId` char(36) NOT NULL, `bucket` datetime NOT NULL, ' +
        '`samples` smallint unsigned NOT NULL, `agentSamples` smallint unsigned NOT NULL, `cpuPctMax` float NULL, ' +
        `${VALUES}, PRIMARY KEY (\`machineId\`, \`bucket\`), INDEX \`IDX_machine_metric_minute_bucket\` (\`bucket\`)) ENGINE=InnoDB`,
    );
  }

  public async down(q: QueryRunner): Promise<void> {
    await q.query('DROP TABLE `machine_metric_minute`');
    await q.query('DROP TABLE `machine_metric_raw`');
  }
}
