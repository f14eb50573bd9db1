/**
 * The zod schemas of the API: the request schemas validate every route, and the same objects generate
 * the OpenAPI document (src/api/openapi.ts), so the document cannot drift from what is enforced.
 * Request objects are strict: unknown fields are rejected.
 */
import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';
import { MACHINE_STATUSES } from '../entities/machine-status';
import {
  GuestHostname,
  GuestPassword,
  GuestUsername,
  ProductKey,
  SSH_KEYS_MAX,
  SshKeys,
  USER_DATA_MAX_BYTES,
  UserData,
} from '../guests/provisioning';
import { HARDWARE_LIMITS, MACHINE_NAME_MAX, POWER_ACTIONS } from '../workflows/shared';

extendZodWithOpenApi(z);

// Control characters (C0, DEL, C1), surrogates, private use, line/paragraph separators and the bidi
// overrides/isolates that can disguise a name.
const UNPRINTABLE = /[\p{Cc}\p{Cs}\p{Co}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** A display name: 1–max printable characters, not blank. */
export function displayName(max: number) {
  return z
    .string()
    .min(1)
    .max(max)
    .refine((s) => !UNPRINTABLE.test(s), { message: 'must not contain control characters' })
    .refine((s) => s.trim().length > 0, { message: 'must not be blank' });
}

const uuid = () => z.uuid();
const int = (min: number, max: number) => z.number().int().min(min).max(max);

/** Machine names (printable, 1–100 characters). */
export const MachineName = displayName(MACHINE_NAME_MAX).openapi({ example: 'build agent 7' });
/** vCPUs. */
export const Cpu = int(HARDWARE_LIMITS.cpu.min, HARDWARE_LIMITS.cpu.max).openapi({ description: 'vCPUs' });
/** Memory in MiB. */
export const MemoryMiB = int(HARDWARE_LIMITS.memoryMiB.min, HARDWARE_LIMITS.memoryMiB.max).openapi({
  description: 'memory in MiB',
});
/** Disk in GiB. */
export const StorageGiB = int(HARDWARE_LIMITS.storageGiB.min, HARDWARE_LIMITS.storageGiB.max).openapi({
  description: 'disk in GiB',
});

/** `:id` path parameter. */
export const IdParams = z.strictObject({ id: uuid().openapi({ param: { description: 'resource id' } }) });
/** `/departments/:id/members/:userId`. */
export const MemberParams = z.strictObject({ id: uuid(), userId: uuid() });

/** Keyset pagination: `limit` (1–100, default 50) and the opaque `cursor` of the previous page. */
const pageQuery = {
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(100)
    .optional()
    .openapi({ param: { description: 'page size (1–100, default 50)' } }),
  cursor: z
    .string()
    .min(1)
    .max(200)
    .optional()
    .openapi({ param: { description: 'opaque cursor from the previous page (nextCursor)' } }),
};
/** List query of users, departments and templates. */
export const PageQuery = z.strictObject(pageQuery);
/** List query of machines: filters and pagination. */
export const MachineListQuery = z.strictObject({
  status: z.enum(MACHINE_STATUSES).optional(),
  department: uuid()
    .optional()
    .openapi({ param: { description: 'department id' } }),
  owner: uuid()
    .optional()
    .openapi({ param: { description: 'owner user id' } }),
  ...pageQuery,
});
/** Event catch-up query. */
export const EventsQuery = z.strictObject({
  after: z.coerce
    .number()
    .int()
    .min(0)
    .max(Number.MAX_SAFE_INTEGER)
    .default(0)
    .openapi({ param: { description: 'last event id seen' } }),
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(1000)
    .optional()
    .openapi({ param: { description: 'at most this many events (default 500)' } }),
});
/** DELETE /machines/:id query. */
export const DestroyQuery = z.strictObject({
  shutdownTimeoutSec: z.coerce
    .number()
    .int()
    .min(0)
    .max(3600)
    .optional()
    .openapi({
      param: { description: 'seconds to wait for a graceful shutdown before forcing off' },
    }),
});

// ---- requests ----------------------------------------------------------------------------------------

/** POST /auth/login. */
export const LoginBody = z
  .strictObject({ email: z.email().max(254), password: z.string().min(1).max(200) })
  .openapi('LoginRequest');

const password = z.string().min(8).max(128);
const personName = displayName(100);

/** POST /users. */
export const CreateUserBody = z
  .strictObject({
    email: z.email().max(254),
    password,
    role: z.enum(['ADMIN', 'USER']).default('USER'),
    firstName: personName.optional(),
    lastName: personName.optional(),
  })
  .openapi('CreateUserRequest');
/** PATCH /users/:id (a user may change its own names and password; the rest is for admins). */
export const UpdateUserBody = z
  .strictObject({
    email: z.email().max(254).optional(),
    password: password.optional(),
    role: z.enum(['ADMIN', 'USER']).optional(),
    firstName: personName.optional(),
    lastName: personName.optional(),
  })
  .refine((b) => Object.keys(b).length > 0, { message: 'give at least one field' })
  .openapi('UpdateUserRequest');

const networkName = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a libvirt network name')
  .nullable();
/** POST /departments. */
export const CreateDepartmentBody = z
  .strictObject({ name: displayName(100), networkName: networkName.optional() })
  .openapi('CreateDepartmentRequest');
/** PATCH /departments/:id. */
export const UpdateDepartmentBody = z
  .strictObject({ name: displayName(100).optional(), networkName: networkName.optional() })
  .refine((b) => Object.keys(b).length > 0, { message: 'give at least one field' })
  .openapi('UpdateDepartmentRequest');
/** PUT /departments/:id/members/:userId. */
export const MemberBody = z.strictObject({ role: z.enum(['MEMBER', 'MANAGER']) }).openapi('MemberRequest');

const os = z.string().regex(/^[A-Za-z0-9_.+-]{1,40}$/, 'letters, digits and . _ + -');
const DiskModeSchema = z.enum(['linked', 'full']).openapi({
  description: 'linked: a qcow2 overlay on the image (nothing copied); full: a copy of the image',
});
/** POST /templates. */
export const CreateTemplateBody = z
  .strictObject({
    name: displayName(100),
    description: displayName(500).optional(),
    cpu: Cpu,
    memory: MemoryMiB,
    storage: StorageGiB,
    os,
    imageId: z
      .string()
      .uuid()
      .optional()
      .openapi({ description: 'the OS image its machines boot (a ready image)' }),
    diskMode: DiskModeSchema.optional(),
  })
  .openapi('CreateTemplateRequest');
/** PATCH /templates/:id. */
export const UpdateTemplateBody = z
  .strictObject({
    name: displayName(100).optional(),
    description: displayName(500).optional(),
    cpu: Cpu.optional(),
    memory: MemoryMiB.optional(),
    storage: StorageGiB.optional(),
    os: os.optional(),
    imageId: z
      .string()
      .uuid()
      .nullable()
      .optional()
      .openapi({ description: 'null: no image (an empty disk)' }),
    diskMode: DiskModeSchema.optional(),
  })
  .refine((b) => Object.keys(b).length > 0, { message: 'give at least one field' })
  .openapi('UpdateTemplateRequest');

/** POST /machines. */
export const CreateMachineBody = z
  .strictObject({
    name: MachineName,
    templateId: uuid(),
    departmentId: uuid(),
    cpu: Cpu.optional(),
    memory: MemoryMiB.optional(),
    storage: StorageGiB.optional(),
    start: z.boolean().optional(),
    networkId: uuid().optional().openapi({
      description:
        "a network the caller may use (shared, or of the machine's department); default: the department's, else the host's",
    }),
    ownerId: uuid()
      .optional()
      .openapi({ description: 'owner (default: the caller); managers and admins may create for a member' }),
    guestPassword: GuestPassword.optional().openapi({
      description: 'the older name of `password` (still accepted); sealed before it leaves the API',
    }),
    username: GuestUsername.optional().openapi({
      description:
        'user to create on first boot (Linux: a POSIX name, not a system account; Windows: a local administrator); checked against the image',
    }),
    password: GuestPassword.optional().openapi({
      description: "the user's password; sealed before it leaves the API, never stored or recorded in clear",
    }),
    sshKeys: SshKeys.optional().openapi({
      description: `OpenSSH public keys of the user (cloud-init images), at most ${SSH_KEYS_MAX}`,
    }),
    hostname: GuestHostname.optional().openapi({
      description: 'guest host name, an RFC 1123 label; default: derived from the name',
    }),
    productKey: ProductKey.optional().openapi({
      description: 'Windows product key (Windows images only); sealed before it leaves the API',
    }),
    userData: UserData.optional().openapi({
      description: `extra cloud-config (a YAML mapping, at most ${USER_DATA_MAX_BYTES} bytes) merged into the seed; must not set users, passwords, SSH keys or the host name; sealed`,
    }),
  })
  .openapi('CreateMachineRequest');
/** PATCH /machines/:id/hardware. */
export const HardwareBody = z
  .strictObject({ cpu: Cpu.optional(), memory: MemoryMiB.optional(), storage: StorageGiB.optional() })
  .refine((b) => b.cpu !== undefined || b.memory !== undefined || b.storage !== undefined, {
    message: 'give at least one of cpu, memory, storage',
  })
  .openapi('HardwareRequest');
/** POST /machines/:id/clone. */
export const CloneBody = z
  .strictObject({
    name: MachineName,
    linked: z.boolean().optional(),
    hostname: GuestHostname.optional().openapi({
      description: "the clone's guest host name, an RFC 1123 label; default: derived from its name",
    }),
  })
  .openapi('CloneRequest');
/** POST /machines/:id/power. */
export const PowerBody = z
  .strictObject({
    action: z.enum(POWER_ACTIONS),
    shutdownTimeoutSec: z
      .number()
      .int()
      .min(0)
      .max(3600)
      .optional()
      .openapi({ description: 'for shutdown: seconds to wait for the guest' }),
  })
  .openapi('PowerRequest');

// ---- responses ---------------------------------------------------------------------------------------

const isoDate = z.string().openapi({ format: 'date-time' });

/** A field error. */
export const FieldErrorSchema = z.object({ field: z.string(), message: z.string() });
/** application/problem+json. */
export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    errors: z.array(FieldErrorSchema).optional(),
  })
  .openapi('Problem');

/** A user (never its password hash). */
export const UserSchema = z
  .object({
    id: z.string(),
    email: z.string(),
    role: z.enum(['ADMIN', 'USER']),
    firstName: z.string(),
    lastName: z.string(),
    createdAt: isoDate,
    departments: z.array(z.object({ id: z.string(), role: z.enum(['MEMBER', 'MANAGER']) })).optional(),
  })
  .openapi('User');
/** POST /auth/login response. */
export const LoginResponse = z.object({ token: z.string(), user: UserSchema }).openapi('LoginResponse');

/** A department member. */
export const MemberSchema = z
  .object({ userId: z.string(), role: z.enum(['MEMBER', 'MANAGER']) })
  .openapi('DepartmentMember');
/** A department. */
export const DepartmentSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    networkName: z.string().nullable(),
    createdAt: isoDate,
    myRole: z
      .enum(['MEMBER', 'MANAGER'])
      .nullable()
      .openapi({ description: "the caller's role in it (null: not a member)" }),
    members: z.array(MemberSchema).optional().openapi({ description: 'for its managers and admins' }),
  })
  .openapi('Department');
/** A template (memory in MiB, storage in GiB). */
export const TemplateSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string(),
    cpu: z.number().int(),
    memory: z.number().int(),
    storage: z.number().int(),
    os: z.string(),
    imageId: z.string().nullable(),
    diskMode: z.enum(['linked', 'full']),
    createdAt: isoDate,
  })
  .openapi('Template');
/** A hypervisor host with its capacity and what its machines leave free. */
export const HostSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    libvirtUri: z.string(),
    cpus: z.number().int(),
    memoryMiB: z.number().int(),
    machines: z.number().int(),
    allocated: z.object({ cpu: z.number().int(), memoryMiB: z.number().int(), storageGiB: z.number().int() }),
    free: z
      .object({ cpu: z.number().int(), memoryMiB: z.number().int() })
      .openapi({ description: 'capacity minus allocation (negative when overcommitted)' }),
    lastSeenAt: isoDate,
  })
  .openapi('Host');
/** A VM. */
export const MachineSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    status: z.enum(MACHINE_STATUSES),
    ownerId: z.string(),
    departmentId: z.string(),
    templateId: z.string(),
    hostName: z.string().nullable(),
    cpu: z.number().int(),
    memoryMiB: z.number().int(),
    storageGiB: z.number().int(),
    os: z.string(),
    macAddress: z.string().nullable(),
    networkName: z.string().nullable(),
    linkedClone: z.boolean(),
    sourceMachineId: z.string().nullable(),
    pendingHardware: z
      .object({ cpu: z.number().int().optional(), memoryMiB: z.number().int().optional() })
      .nullable(),
    currentOperationId: z.string().nullable(),
    lastError: z.string().nullable(),
    ipAddresses: z
      .array(z.string())
      .openapi({ description: "the guest's addresses: from its guest agent, else from its DHCP lease" }),
    guestAgent: z
      .enum(['connected', 'absent'])
      .openapi({ description: "whether the guest's QEMU guest agent is connected" }),
    createdAt: isoDate.nullable(),
    updatedAt: isoDate.nullable(),
  })
  .openapi('Machine');
/** One recorded step of an operation. */
export const StepSchema = z.object({
  name: z.string(),
  status: z.enum(['started', 'completed', 'failed', 'compensating', 'compensated']),
  at: isoDate,
  error: z.string().optional(),
});
/** A machine operation (a workflow run). */
export const OperationSchema = z
  .object({
    id: z.string(),
    type: z.enum([
      'create',
      'clone',
      'destroy',
      'update_hardware',
      'power',
      'ping',
      'change_network',
      'change_department',
      'create_network',
      'update_network',
      'delete_network',
      'firewall',
      'flush_filters',
      'import_image',
      'register_image',
      'delete_image',
      'guest_exec',
      'guest_kill',
      'guest_service',
    ]),
    resource: z.enum(['vms', 'networks', 'firewall']),
    resourceId: z.string().nullable(),
    machineId: z.string().nullable(),
    status: z.enum(['running', 'succeeded', 'failed', 'cancelled']),
    steps: z.array(StepSchema),
    error: z.string().optional(),
    result: z.record(z.string(), z.unknown()).optional().openapi({
      description: 'what it gave: a guest command’s exit code and output (docs/guest-commands.md)',
    }),
    workflowId: z.string(),
    temporalUrl: z.string(),
    startedAt: isoDate.nullable(),
    finishedAt: isoDate.nullable(),
  })
  .openapi('Operation');
/** 202 of operations that create a machine. */
export const MachineOperationResponse = z
  .object({ machine: MachineSchema, operation: OperationSchema })
  .openapi('MachineOperationAccepted');
/** 202 of other operations. */
export const OperationResponse = z.object({ operation: OperationSchema }).openapi('OperationAccepted');
/** An event as pushed on the socket and returned by catch-up. */
export const EventSchema = z
  .object({
    eventId: z.number().int(),
    resource: z.string(),
    action: z.string(),
    resourceId: z.string().nullable(),
    data: z.record(z.string(), z.unknown()),
    triggeredBy: z.string().nullable(),
    timestamp: isoDate,
  })
  .openapi('Event');
/** GET /events. */
export const EventsResponse = z
  .object({
    events: z.array(EventSchema),
    lastEventId: z
      .number()
      .int()
      .openapi({ description: 'pass as `after` to continue (covers events scanned but not visible)' }),
    hasMore: z.boolean(),
  })
  .openapi('EventPage');

/** A page of a list. */
export function pageOf<T extends z.ZodType>(item: T, name: string) {
  return z.object({ items: z.array(item), nextCursor: z.string().nullable() }).openapi(name);
}
/** Health. */
export const HealthSchema = z.object({ status: z.literal('ok') }).openapi('Health');
/** Readiness: each dependency's state. */
export const ReadySchema = z
  .object({ status: z.enum(['ok', 'down']), checks: z.record(z.string(), z.string()) })
  .openapi('Readiness');
