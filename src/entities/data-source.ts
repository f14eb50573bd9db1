import 'reflect-metadata';
import { DataSource, type EntitySubscriberInterface } from 'typeorm';
import { User } from './user';
import { Department, DepartmentMember } from './department';
import { MachineTemplate } from './machine-template';
import { Host } from './host';
import { Machine } from './machine';
import { Operation } from './operation';
import { Event } from './event';
import { IdempotencyRecord } from './idempotency-record';
import { OperationRequest } from './operation-request';
import { Network } from './network';
import { Image } from './image';
import { FirewallFilter, FirewallRule, ServiceSetting } from './firewall';
import { migrations } from './migrations';

export const entities = [
  User,
  Department,
  DepartmentMember,
  MachineTemplate,
  Host,
  Machine,
  Operation,
  Event,
  IdempotencyRecord,
  OperationRequest,
  Network,
  FirewallFilter,
  FirewallRule,
  ServiceSetting,
  Image,
];

/**
 * A TypeORM data source for a mysql:// URL (MySQL 8 or MariaDB). Migrations, never synchronize.
 * `subscribers`: entity subscribers (the event wake-up publisher of src/events/wake.ts).
 */
export function createDataSource(
  url: string,
  opts: { poolSize?: number; subscribers?: Array<new () => EntitySubscriberInterface> } = {},
): DataSource {
  return new DataSource({
    type: 'mysql',
    url,
    entities,
    migrations,
    synchronize: false,
    migrationsRun: false,
    timezone: 'Z',
    charset: 'utf8mb4_unicode_ci',
    poolSize: opts.poolSize ?? 10,
    logging: ['error'],
    subscribers: opts.subscribers ?? [],
  });
}
