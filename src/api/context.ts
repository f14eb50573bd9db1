/** What route handlers share: the process's long-lived dependencies, built once by `createApp`. */
import { type Client } from '@temporalio/client';
import { type Logger } from 'pino';
import { type DataSource } from 'typeorm';
import { type Config } from '../config';
import { type LibvirtProvider } from '../libvirt/provider';
import { type SecretBox } from '../secrets';
import { type PrincipalCache } from './auth';
import { type Operations } from './operations';
import { type EventRelay } from './relay';

/** The dependencies of the route handlers. */
export interface ApiContext {
  ds: DataSource;
  temporal: Client;
  config: Pick<Config, 'jwtSecret' | 'TEMPORAL_UI_URL' | 'TEMPORAL_NAMESPACE'>;
  libvirt: LibvirtProvider;
  secrets: SecretBox;
  relay: EventRelay;
  operations: Operations;
  /** Drop entries after changing users or memberships. */
  principals: PrincipalCache;
  logger: Logger;
  /** Host new machines are placed on (default: the workflow's choice). */
  placementHost?: string;
  /** Image uploads: the staging folder (readable by the host workers) and the size limit. */
  images: { stagingDir: string; maxBytes: number };
  /** Default graceful-shutdown deadline of DELETE /machines/:id. */
  destroyShutdownTimeoutSec?: number;
}
