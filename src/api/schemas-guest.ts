/**
 * Schemas of the guest routes (src/api/routes/machine-guest.ts): what a running guest reports and the
 * guest commands' requests (docs/guest-commands.md). Requests are strict: unknown fields are rejected.
 */
import { z } from 'zod';
import {
  GUEST_EXEC_MAX_STDIN_BYTES,
  GUEST_EXEC_TIMEOUT_S,
  type GuestServiceAction,
} from '../workflows/shared';
import './schemas'; // extends zod with .openapi()

const uuid = () => z.uuid();

/** Characters no program path or argument may carry (NUL ends a C string: the guest would see less). */
const NO_NUL = /^[^\0]*$/;

/** `POST /machines/:id/guest/exec`. */
export const GuestExecBody = z
  .strictObject({
    command: z
      .string()
      .min(1)
      .max(4096)
      .regex(NO_NUL, 'no NUL characters')
      .openapi({ description: 'the program to run: its path in the guest (no shell)', example: '/bin/echo' }),
    args: z
      .array(z.string().max(4096).regex(NO_NUL, 'no NUL characters'))
      .max(256)
      .default([])
      .openapi({ description: 'its arguments, passed as they are', example: ['hi'] }),
    timeoutS: z
      .number()
      .int()
      .min(GUEST_EXEC_TIMEOUT_S.min)
      .max(GUEST_EXEC_TIMEOUT_S.max)
      .default(GUEST_EXEC_TIMEOUT_S.default)
      .openapi({ description: 'seconds before the program is killed (default 30)' }),
    stdin: z
      .string()
      .refine((s) => Buffer.byteLength(s) <= GUEST_EXEC_MAX_STDIN_BYTES, {
        message: `at most ${GUEST_EXEC_MAX_STDIN_BYTES} bytes`,
      })
      .optional()
      .openapi({
        description: 'standard input, treated as a secret: sealed, never recorded in the operation',
      }),
  })
  .openapi('GuestExecRequest');

/** `/machines/:id/guest/processes/:pid/kill`. */
export const GuestProcessParams = z.strictObject({
  id: uuid(),
  pid: z.coerce
    .number()
    .int()
    .min(2)
    .max(2 ** 31 - 1)
    .openapi({ param: { description: 'process id in the guest (not 1)' } }),
});
/** `POST /machines/:id/guest/processes/:pid/kill`. */
export const GuestKillBody = z
  .strictObject({ signal: z.enum(['TERM', 'KILL']).default('TERM') })
  .openapi('GuestKillRequest');

/** `/machines/:id/guest/services/:name`. */
export const GuestServiceParams = z.strictObject({
  id: uuid(),
  name: z
    .string()
    .min(1)
    .max(256)
    .regex(/^[A-Za-z0-9:_.@\\-]+$/, 'a service (systemd unit) name')
    .openapi({ param: { description: 'service name, e.g. `cron.service`' } }),
});
const SERVICE_ACTIONS = ['start', 'stop', 'restart'] as const satisfies readonly GuestServiceAction[];
/** `POST /machines/:id/guest/services/:name`. */
export const GuestServiceBody = z
  .strictObject({ action: z.enum(SERVICE_ACTIONS) })
  .openapi('GuestServiceRequest');

const address = z.object({ type: z.enum(['ipv4', 'ipv6']), address: z.string(), prefix: z.number() });

/** `GET /machines/:id/guest`. */
export const GuestInfoSchema = z
  .object({
    os: z
      .object({
        id: z.string().nullable(),
        name: z.string().nullable(),
        prettyName: z.string().nullable(),
        version: z.string().nullable(),
        versionId: z.string().nullable(),
        kernelRelease: z.string().nullable(),
        kernelVersion: z.string().nullable(),
        machine: z.string().nullable(),
      })
      .nullable(),
    hostname: z.string().nullable(),
    users: z.array(
      z.object({ name: z.string(), domain: z.string().nullable(), loginTime: z.string().nullable() }),
    ),
    timezone: z.object({ zone: z.string().nullable(), offsetS: z.number() }).nullable(),
    interfaces: z.array(
      z.object({ name: z.string(), hardwareAddress: z.string().nullable(), addresses: z.array(address) }),
    ),
    filesystems: z.array(
      z.object({
        name: z.string(),
        mountpoint: z.string(),
        type: z.string(),
        usedBytes: z.number().nullable(),
        totalBytes: z.number().nullable(),
        disks: z.array(z.string()),
      }),
    ),
    unavailable: z
      .array(z.string())
      .openapi({ description: 'parts the guest agent did not give (command unsupported or disabled)' }),
  })
  .openapi('GuestInfo');

/** `GET /machines/:id/processes`. */
export const GuestProcessesSchema = z
  .object({
    processes: z.array(
      z.object({
        pid: z.number(),
        ppid: z.number(),
        user: z.string(),
        name: z.string(),
        cmdline: z.string(),
        cpuPct: z.number(),
        rssBytes: z.number(),
        state: z.string(),
      }),
    ),
    truncated: z.boolean().optional(),
  })
  .openapi('GuestProcesses');

/** `GET /machines/:id/guest/services`. */
export const GuestServicesSchema = z
  .object({
    services: z.array(
      z.object({ name: z.string(), description: z.string(), state: z.string(), enabled: z.boolean() }),
    ),
  })
  .openapi('GuestServices');

/** `GET /machines/:id/applications`. */
export const GuestApplicationsSchema = z
  .object({
    applications: z.array(z.object({ name: z.string(), version: z.string(), arch: z.string() })),
  })
  .openapi('GuestApplications');
