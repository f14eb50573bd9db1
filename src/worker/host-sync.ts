/**
 * Keeps the database equal to the hypervisor for what happens outside vmflow's workflows: a guest that
 * shuts itself down, a crash, a VM started or paused with virsh. libvirt's lifecycle events update the
 * machine's status and emit the matching event; on start and periodically, statuses are reconciled with
 * libvirt. A machine an operation is working on is left to that operation.
 */
import { type DataSource } from 'typeorm';
import { createDbActivities, registerHost } from '../activities/db';
import { setGuestInfo } from '../activities/db-machines';
import { type Config } from '../config';
import { type Host } from '../entities/host';
import { Machine } from '../entities/machine';
import { type MachineStatus } from '../entities/machine-status';
import { isLibvirtError, LibvirtErrorCode } from '../libvirt/errors';
import { type LibvirtProvider } from '../libvirt/provider';
import { probeQos } from '../networks/qos';
import { type GuestInfo, readGuestInfo } from './guest-info';

interface SyncDeps {
  libvirt: LibvirtProvider;
  dataSource: DataSource;
}

const DOMAIN_NAME = /^vmflow-([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;

/** Machine status for each libvirt domain state (others: no opinion). */
const STATUS_OF_STATE: Record<string, MachineStatus> = {
  running: 'running',
  blocked: 'running',
  paused: 'suspended',
  pmsuspended: 'suspended',
  shutoff: 'off',
  shutdown: 'off',
  crashed: 'off',
};

/** Machine status for each libvirt lifecycle event (others: no opinion). */
const STATUS_OF_EVENT: Record<string, MachineStatus> = {
  started: 'running',
  resumed: 'running',
  suspended: 'suspended',
  pmsuspended: 'suspended',
  stopped: 'off',
  crashed: 'off',
};

const lookup = (table: Record<string, MachineStatus>, word: string): { status: MachineStatus } | null =>
  Object.hasOwn(table, word) ? { status: table[word]! } : null;

/** Machine status for a libvirt domain state. */
export const statusForState = (state: string) => lookup(STATUS_OF_STATE, state);

/** Machine status for a libvirt lifecycle event. */
export const statusForEvent = (event: string) => lookup(STATUS_OF_EVENT, event);

/**
 * The event a change of status reads as. Taken from the transition, not from libvirt's event name: a
 * start reaches us as `resumed` then `started` (QEMU starts paused), and must read as power_on.
 */
export function actionFor(from: MachineStatus, to: MachineStatus): string {
  if (to === 'running') return from === 'suspended' ? 'resume' : 'power_on';
  if (to === 'suspended') return 'suspend';
  if (to === 'off') return 'power_off';
  return 'update';
}

/**
 * Registers this worker's host with the capacity libvirt reports and what its kernel can do (QoS,
 * probed once here: src/networks/qos.ts). A host without QoS is logged with the reason.
 */
export async function registerThisHost(deps: SyncDeps, config: Config): Promise<Host> {
  const conn = await deps.libvirt.get();
  const node = await conn.getNodeInfo();
  const capabilities = await probeQos(conn);
  if (!capabilities.qos)
    console.warn(`host ${config.HOST_NAME}: bandwidth limits (QoS) are off: ${capabilities.qosReason}`);
  return registerHost(deps.dataSource, {
    name: config.HOST_NAME,
    libvirtUri: config.LIBVIRT_URI,
    taskQueue: config.hostTaskQueue,
    cpus: node.cpus,
    memoryMiB: Math.floor(node.memoryKiB / 1024),
    storagePool: config.STORAGE_POOL,
    defaultNetwork: config.DEFAULT_NETWORK,
    capabilities,
  });
}

/** Follows the host's lifecycle events and reconciles now and every `intervalMs`. */
export async function startHypervisorWatch(
  deps: SyncDeps,
  hostId: string,
  opts: { intervalMs?: number; guestIntervalMs?: number } = {},
): Promise<{ stop(): Promise<void>; reconcile(): Promise<number>; refreshGuests(): Promise<number> }> {
  const db = createDbActivities({ dataSource: deps.dataSource });
  let seq = 0;
  const apply = async (machineId: string, target: { status: MachineStatus }, why: string) => {
    try {
      const row = await deps.dataSource.getRepository(Machine).findOneBy({ id: machineId });
      if (!row) return;
      await db.setMachineStatus({
        operationId: null,
        machineId,
        status: target.status,
        action: actionFor(row.status, target.status),
        idleOnly: true,
        eventKey: `hv:${machineId}:${why}:${Date.now()}:${seq++}`,
      });
    } catch (err) {
      // An illegal transition (e.g. a destroyed machine's last event) is not ours to force.
      console.warn(`host-sync: ${machineId} → ${target.status} skipped: ${(err as Error).message}`);
    }
  };

  const reconcile = async (): Promise<number> => {
    const conn = await deps.libvirt.get();
    const machines = await deps.dataSource.getRepository(Machine).find({ where: { hostId } });
    let changed = 0;
    for (const m of machines) {
      if (m.currentOperationId || !['off', 'running', 'suspended'].includes(m.status)) continue;
      let state: string;
      try {
        state = (await (await conn.lookupDomainByName(m.internalName)).getState()).state;
      } catch (e) {
        if (isLibvirtError(e, LibvirtErrorCode.NO_DOMAIN)) continue; // reported by the drift check, not guessed at
        throw e;
      }
      const target = statusForState(state);
      if (target && target.status !== m.status) {
        await apply(m.id, target, `reconcile-${state}`);
        changed++;
      }
    }
    return changed;
  };

  /**
   * Guest agent state and addresses of this host's machines (src/worker/guest-info.ts): read from libvirt
   * for running ones; a machine that is not running has no agent and no address. Writes only changes.
   */
  const refreshGuests = async (): Promise<number> => {
    const conn = await deps.libvirt.get();
    const machines = await deps.dataSource.getRepository(Machine).find({ where: { hostId } });
    let changed = 0;
    for (const m of machines) {
      let info: GuestInfo = { guestAgent: 'absent', ipAddresses: [] };
      if (m.status === 'running') {
        try {
          info = await readGuestInfo(await conn.lookupDomainByName(m.internalName));
        } catch (e) {
          if (!isLibvirtError(e, LibvirtErrorCode.NO_DOMAIN)) throw e;
        }
      }
      if (await setGuestInfo(deps.dataSource, { machineId: m.id, ...info }, m)) changed++;
    }
    return changed;
  };

  const conn = await deps.libvirt.get();
  let queue: Promise<void> = Promise.resolve();
  const unsubscribe = await conn.onDomainLifecycle((ev) => {
    const match = DOMAIN_NAME.exec(ev.domainName);
    const target = statusForEvent(ev.event);
    if (!match || !target) return;
    // One at a time, in libvirt's order.
    queue = queue.then(() => apply(match[1], target, ev.event));
  });
  await reconcile();
  const timer = setInterval(() => {
    reconcile().catch((err) => console.warn(`host-sync: reconcile failed: ${(err as Error).message}`));
  }, opts.intervalMs ?? 60_000);
  timer.unref();
  let refreshing = false;
  const guestTimer = setInterval(() => {
    if (refreshing) return; // a slow libvirt: never two refreshes at once
    refreshing = true;
    refreshGuests()
      .catch((err) => console.warn(`host-sync: guest refresh failed: ${(err as Error).message}`))
      .finally(() => (refreshing = false));
  }, opts.guestIntervalMs ?? 5_000);
  guestTimer.unref();
  return {
    reconcile,
    refreshGuests,
    async stop() {
      clearInterval(timer);
      clearInterval(guestTimer);
      await unsubscribe().catch(() => undefined);
      await queue;
    },
  };
}
