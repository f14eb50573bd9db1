/**
 * GET /api/machines: the page of machines a caller may see (v0: the route's query, moved here as is).
 */
import { type DataSource } from 'typeorm';
import { Host } from '../entities/host';
import { Machine } from '../entities/machine';
import { type MachineStatus } from '../entities/machine-status';
import { keysetPage, type Page } from './pagination';
import { machineScope, type Principal } from './permissions';

const LIST_COLUMNS = [
  'id',
  'name',
  'status',
  'ownerId',
  'departmentId',
  'templateId',
  'hostId',
  'cpu',
  'memoryMiB',
  'storageGiB',
  'os',
  'macAddress',
  'networkName',
  'linkedClone',
  'sourceMachineId',
  'pendingHardware',
  'currentOperationId',
  'lastError',
  'createdAt',
  'updatedAt',
] as const;

/** The list's filters and page. */
export interface MachineListParams {
  status?: MachineStatus;
  department?: string;
  owner?: string;
  cursor?: string;
  limit?: number;
}

/** A listed row: the machine's listed columns and its host's name. */
export type MachineListRow = Machine & { hostName: string | null };

/** One page of the machines the caller may see, newest first. */
export async function listMachines(
  ds: DataSource,
  principal: Principal,
  query: MachineListParams,
): Promise<Page<MachineListRow>> {
  const qb = ds
    .createQueryBuilder()
    .select(LIST_COLUMNS.map((c) => `m.${c} AS ${c}`))
    .addSelect('h.name', 'hostName')
    .from(Machine, 'm')
    .leftJoin(Host, 'h', 'h.id = m.hostId');
  const scope = machineScope(principal);
  if (scope) qb.where(scope.where, scope.params);
  if (query.status) qb.andWhere('m.status = :status', { status: query.status });
  if (query.department) qb.andWhere('m.departmentId = :department', { department: query.department });
  if (query.owner) qb.andWhere('m.ownerId = :owner', { owner: query.owner });
  return keysetPage(qb, 'm', query, (q) => q.getRawMany<MachineListRow>());
}
