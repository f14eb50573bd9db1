/**
 * Operations (read, cancel), event catch-up, hosts, and the health endpoints.
 */
import { type DataSource } from 'typeorm';
import { Host } from '../../entities/host';
import { Machine } from '../../entities/machine';
import { type ApiContext } from '../context';
import { loadVisibleEvents } from '../events';
import { forbidden, notFound, ProblemError, refused } from '../errors';
import { canOperateMachine, isAdmin, manages } from '../permissions';
import { acceptedAs, ok, routesFor, type RouteSpec } from '../route';
import {
  EventsQuery,
  EventsResponse,
  HealthSchema,
  HostSchema,
  IdParams,
  OperationResponse,
  OperationSchema,
  ReadySchema,
} from '../schemas';

/** Resolves `p` or rejects after `ms` with a timeout error naming `what`. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
    }),
  ]);
}

async function dbUp(ds: DataSource): Promise<void> {
  await ds.query('SELECT 1');
}

/** The operation, event, host and health routes. */
export function systemRoutes(ctx: ApiContext): RouteSpec[] {
  const operationsApi = routesFor('operations');
  const eventsApi = routesFor('events');
  const hostsApi = routesFor('hosts');
  const healthApi = routesFor('health');
  return [
    operationsApi.get(
      '/api/operations/:id',
      'An operation: status, steps, error and its Temporal Web UI link',
      { params: IdParams, problems: [404], responses: ok('the operation', OperationSchema) },
      async ({ principal, params }) => {
        const ref = await ctx.operations.visible(principal, params.id);
        if (!ref) throw notFound('operation');
        const view = await ctx.operations.view(params.id);
        if (!view) throw notFound('operation');
        // A guest command's output (what `cat` of a secret file printed) is for those who may run commands
        // (admins, the department's managers), not for every user who may see the machine.
        if (
          view.result &&
          !isAdmin(principal) &&
          !(ref.departmentId && manages(principal, ref.departmentId))
        ) {
          const { result: _withheld, ...rest } = view;
          return { status: 200, body: rest };
        }
        return { status: 200, body: view };
      },
    ),
    operationsApi.post(
      '/api/operations/:id/cancel',
      'Cancel a running operation (Temporal cancellation: its compensations run)',
      {
        params: IdParams,
        problems: [403, 404, 422],
        responses: acceptedAs('cancellation requested', OperationResponse),
      },
      async ({ principal, params }) => {
        const owner = await ctx.operations.visible(principal, params.id);
        if (!owner) throw notFound('operation');
        if (!isAdmin(principal) && !canOperateMachine(principal, owner)) throw forbidden();
        if (!(await ctx.operations.cancel(params.id))) throw refused('the operation is not running');
        return { status: 202, body: { operation: (await ctx.operations.view(params.id))! } };
      },
    ),
    eventsApi.get(
      '/api/events',
      "The caller's events after an id, in order (catch-up without a socket)",
      { query: EventsQuery, responses: ok('events the caller may see', EventsResponse) },
      async ({ principal, query }) => {
        // Only up to the relay's watermark: past it a lower id may still commit, and `after` would skip it.
        const pg = await loadVisibleEvents(
          ctx.ds,
          ctx.relay.router,
          principal,
          query.after,
          ctx.relay.watermark,
          query.limit ?? 500,
        );
        return {
          status: 200,
          body: {
            events: pg.events.map((e) => e.event),
            lastEventId: Math.max(pg.lastEventId, query.after),
            hasMore: pg.hasMore,
          },
        };
      },
    ),
    hostsApi.get(
      '/api/hosts',
      'Hypervisor hosts with capacity, allocation and free resources (admins)',
      { problems: [403], responses: ok('the hosts', HostSchema.array()) },
      async ({ principal }) => {
        if (!isAdmin(principal)) throw forbidden('only admins may list hosts');
        const hosts = await ctx.ds.getRepository(Host).find({ order: { name: 'ASC' } });
        const sums = await ctx.ds
          .getRepository(Machine)
          .createQueryBuilder('m')
          .select('m.hostId', 'hostId')
          .addSelect('COUNT(*)', 'machines')
          .addSelect('COALESCE(SUM(m.cpu), 0)', 'cpu')
          .addSelect('COALESCE(SUM(m.memoryMiB), 0)', 'memoryMiB')
          .addSelect('COALESCE(SUM(m.storageGiB), 0)', 'storageGiB')
          .where("m.status <> 'failed'")
          .groupBy('m.hostId')
          .getRawMany<{
            hostId: string;
            machines: string;
            cpu: string;
            memoryMiB: string;
            storageGiB: string;
          }>();
        const by = new Map(sums.map((s) => [s.hostId, s]));
        return {
          status: 200,
          body: hosts.map((h) => {
            const s = by.get(h.id);
            const allocated = {
              cpu: Number(s?.cpu ?? 0),
              memoryMiB: Number(s?.memoryMiB ?? 0),
              storageGiB: Number(s?.storageGiB ?? 0),
            };
            return {
              id: h.id,
              name: h.name,
              libvirtUri: h.libvirtUri,
              cpus: h.cpus,
              memoryMiB: Number(h.memoryMiB),
              machines: Number(s?.machines ?? 0),
              allocated,
              free: { cpu: h.cpus - allocated.cpu, memoryMiB: Number(h.memoryMiB) - allocated.memoryMiB },
              lastSeenAt: new Date(h.lastSeenAt).toISOString(),
            };
          }),
        };
      },
    ),
    healthApi.get(
      '/healthz',
      'Liveness: the process answers',
      { auth: false, responses: ok('alive', HealthSchema) },
      async () => {
        return { status: 200, body: { status: 'ok' } };
      },
    ),
    healthApi.get(
      '/readyz',
      'Readiness: the database, Temporal and libvirt answer (503 naming what is down)',
      { auth: false, problems: [503], responses: ok('ready', ReadySchema) },
      async () => {
        const checks: Record<string, string> = {};
        const probe = async (name: string, fn: () => Promise<unknown>) => {
          try {
            await within(fn(), 3_000, name);
            checks[name] = 'ok';
          } catch (err) {
            ctx.logger.warn({ err, dependency: name }, 'readiness check failed');
            checks[name] = 'down';
          }
        };
        await Promise.all([
          probe('database', () => dbUp(ctx.ds)),
          probe('temporal', () => ctx.temporal.connection.workflowService.getSystemInfo({})),
          probe('libvirt', async () => {
            const conn = await ctx.libvirt.get();
            if (!(await conn.isAlive())) throw new Error('libvirt connection is not alive');
          }),
        ]);
        const down = Object.keys(checks)
          .filter((k) => checks[k] !== 'ok')
          .sort();
        if (down.length)
          throw new ProblemError(503, `not ready: ${down.join(', ')} down`, {
            title: 'Not ready',
            checks,
            down,
          });
        return { status: 200, body: { status: 'ok', checks } };
      },
    ),
  ];
}
