/**
 * A running guest, seen and commanded from the API (docs/guest-commands.md). Reads (`GET …/guest`,
 * `…/processes`, `…/guest/services`, `…/applications`) run the `readGuest` workflow, whose activity runs on
 * the machine's host (its task queue): the API never talks to libvirt or to a guest itself. Commands (exec,
 * kill, service actions) are machine operations (`vm-<id>`: one at a time with power, destroy…), audited
 * with their actor, their result stored on the operation. A guest that cannot answer is a 503, one too slow
 * a 504.
 */
import { randomUUID } from 'node:crypto';
import { TimeoutFailure, WorkflowFailedError } from '@temporalio/client';
import { type Machine } from '../../entities/machine';
import {
  CONTROL_TASK_QUEUE,
  GuestFailureType,
  type GuestReadOutcome,
  type GuestReadKind,
  type ReadGuestInput,
} from '../../workflows/shared';
import { type ApiContext } from '../context';
import { ProblemError } from '../errors';
import { hostNames, visibleMachine } from '../lookups';
import { idleMachine, startOnMachine } from '../machine-start';
import { manages, type Principal } from '../permissions';
import { ACCEPTED, ok, routesFor, type RouteSpec } from '../route';
import { IdParams } from '../schemas';
import {
  GuestApplicationsSchema,
  GuestExecBody,
  GuestInfoSchema,
  GuestKillBody,
  GuestProcessesSchema,
  GuestProcessParams,
  GuestServiceBody,
  GuestServiceParams,
  GuestServicesSchema,
} from '../schemas-guest';
import { SingleFlight } from '../single-flight';

/** How long a read waits for the guest (then 504). */
export const GUEST_READ_TIMEOUT_MS = 30_000;

const GUEST_COMMANDERS = 'only managers of the department and admins may run commands in a guest';

/** 503: the guest cannot answer (not running, no agent). */
const unavailable = (detail: string) =>
  new ProblemError(503, detail, {
    title: 'Guest unavailable',
    type: 'https://vmflow.dev/problems/guest-unavailable',
  });
/** 504: the guest (or its host) did not answer in time. */
const tooSlow = (detail: string) =>
  new ProblemError(504, detail, {
    title: 'Guest timeout',
    type: 'https://vmflow.dev/problems/guest-timeout',
  });

/** A guest read that got no answer (readGuest's `ok: false`) as the problem it answers. */
export function guestReadProblem(outcome: Extract<GuestReadOutcome, { ok: false }>): ProblemError {
  switch (outcome.type) {
    case GuestFailureType.Unavailable:
      return unavailable(outcome.message);
    case GuestFailureType.Timeout:
      return tooSlow(outcome.message);
    default:
      return new ProblemError(502, outcome.message, {
        title: 'Guest command failed',
        code: outcome.code ?? 'failed',
      });
  }
}

/** The machine's host name, with the machine running (else 503). */
async function runningOn(ctx: ApiContext, m: Machine): Promise<string> {
  if (m.status !== 'running') throw unavailable(`the machine is ${m.status}, not running`);
  const host = (await hostNames(ctx)).get(m.hostId);
  if (!host) throw unavailable('the machine has no host');
  return host;
}

/**
 * The guest reads in flight in this API process, by machine and kind: a read asked for while the same one
 * runs joins it instead of starting another workflow and host activity (each may take the whole read
 * timeout), so however many clients ask, a VM has at most one read of each kind in flight per API process
 * and a burst of reads cannot fill its host's task queue ahead of the sagas' steps.
 */
const readsInFlight = new WeakMap<ApiContext, SingleFlight<GuestReadOutcome>>();

/** Reads `what` from the guest of a machine the caller may see, on its host, within the read timeout. */
async function readGuest(ctx: ApiContext, p: Principal, id: string, what: GuestReadKind): Promise<unknown> {
  const m = await visibleMachine(ctx, p, id);
  const input: ReadGuestInput = {
    hostName: await runningOn(ctx, m),
    machineId: m.id,
    internalName: m.internalName,
    what,
    timeoutMs: GUEST_READ_TIMEOUT_MS,
  };
  let reads = readsInFlight.get(ctx);
  if (!reads) readsInFlight.set(ctx, (reads = new SingleFlight()));
  const outcome = await reads.run(`${m.id}:${what}`, () => startRead(ctx, input));
  if (!outcome.ok) throw guestReadProblem(outcome);
  return outcome.value;
}

/** Runs one guest read (the `readGuest` workflow, whose one activity runs on the machine's host). */
async function startRead(ctx: ApiContext, input: ReadGuestInput): Promise<GuestReadOutcome> {
  try {
    return await ctx.temporal.workflow.execute('readGuest', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: `guest-read-${input.machineId}-${randomUUID()}`,
      args: [input],
      // A backstop for a control worker that is not running: the activity's own bound ends a read sooner.
      workflowExecutionTimeout: GUEST_READ_TIMEOUT_MS + 15_000,
    });
  } catch (err) {
    if (err instanceof WorkflowFailedError && err.cause instanceof TimeoutFailure)
      throw tooSlow('the read was not run in time (is the worker running?)');
    throw err;
  }
}

/** A machine the caller may command in (404 unseen, 403 not a manager), idle (409) and running (503). */
async function commandable(ctx: ApiContext, p: Principal, id: string): Promise<Machine> {
  const m = await idleMachine(
    ctx,
    p,
    id,
    (caller, found) => manages(caller, found.departmentId),
    GUEST_COMMANDERS,
  );
  await runningOn(ctx, m);
  return m;
}

/** The guest routes. */
export function machineGuestRoutes(ctx: ApiContext): RouteSpec[] {
  const api = routesFor('guest');
  const read = {
    params: IdParams,
    problems: [404, 503, 504],
  };
  const processes = (path: string) =>
    api.get(
      path,
      "The guest's processes, live from vmflow's agent (busiest first)",
      { ...read, responses: ok('the processes', GuestProcessesSchema) },
      async ({ principal, params }) => ({
        status: 200,
        body: await readGuest(ctx, principal, params.id, 'processes'),
      }),
    );
  const applications = (path: string) =>
    api.get(
      path,
      "The guest's installed packages, live from vmflow's agent",
      { ...read, responses: ok('the packages', GuestApplicationsSchema) },
      async ({ principal, params }) => {
        const r = (await readGuest(ctx, principal, params.id, 'applications')) as { packages: unknown[] };
        return { status: 200, body: { applications: r.packages } };
      },
    );
  return [
    api.get(
      '/api/machines/:id/guest',
      "The QEMU guest agent's view of the guest: OS, host name, users, time zone, interfaces, file systems",
      { ...read, responses: ok('the guest', GuestInfoSchema) },
      async ({ principal, params }) => ({
        status: 200,
        body: await readGuest(ctx, principal, params.id, 'info'),
      }),
    ),
    processes('/api/machines/:id/processes'),
    processes('/api/machines/:id/guest/processes'),
    api.get(
      '/api/machines/:id/guest/services',
      "The guest's services and their state, live from vmflow's agent (`/services` is the VM's firewall services)",
      { ...read, responses: ok('the services', GuestServicesSchema) },
      async ({ principal, params }) => ({
        status: 200,
        body: await readGuest(ctx, principal, params.id, 'services'),
      }),
    ),
    applications('/api/machines/:id/applications'),
    applications('/api/machines/:id/guest/applications'),
    api.post(
      '/api/machines/:id/guest/exec',
      'Run a program in the guest (QEMU guest agent): an operation whose result is its exit code and output',
      { params: IdParams, body: GuestExecBody, problems: [403, 404, 409, 503], responses: ACCEPTED },
      async ({ principal: p, params, body: b, ids, idempotencyKey }) => {
        const m = await commandable(ctx, p, params.id);
        return startOnMachine(ctx, { p, m, ids, idempotencyKey }, 'guestExec', {
          command: b.command,
          args: b.args,
          timeoutS: b.timeoutS,
          ...(b.stdin !== undefined ? { stdin: ctx.secrets.seal(b.stdin) } : {}),
        });
      },
    ),
    api.post(
      '/api/machines/:id/guest/processes/:pid/kill',
      "Signal a process in the guest (vmflow's agent; TERM by default)",
      {
        params: GuestProcessParams,
        body: GuestKillBody,
        problems: [403, 404, 409, 503],
        responses: ACCEPTED,
      },
      async ({ principal: p, params, body: b, ids, idempotencyKey }) => {
        const m = await commandable(ctx, p, params.id);
        return startOnMachine(ctx, { p, m, ids, idempotencyKey }, 'guestKillProcess', {
          pid: params.pid,
          signal: b.signal,
        });
      },
    ),
    api.post(
      '/api/machines/:id/guest/services/:name',
      "Start, stop or restart a service in the guest (vmflow's agent)",
      {
        params: GuestServiceParams,
        body: GuestServiceBody,
        problems: [403, 404, 409, 503],
        responses: ACCEPTED,
      },
      async ({ principal: p, params, body: b, ids, idempotencyKey }) => {
        const m = await commandable(ctx, p, params.id);
        return startOnMachine(ctx, { p, m, ids, idempotencyKey }, 'guestServiceAction', {
          name: params.name,
          action: b.action,
        });
      },
    ),
  ];
}
