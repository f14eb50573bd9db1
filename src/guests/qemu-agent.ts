/**
 * The QEMU guest agent's answers, as vmflow reads them (docs/guest-commands.md): the information commands
 * behind `GET /api/machines/:id/guest` and the output of `guest-exec`. Pure: the host activity sends the
 * commands (src/activities/guest.ts); this module checks and shapes what came back. The guest is untrusted:
 * every answer is validated and bounded, and an answer that breaks its schema is dropped (reported as
 * unavailable), never passed on.
 */
import { z } from 'zod';
import { GUEST_EXEC_MAX_OUTPUT_BYTES, type GuestExecResult } from '../workflows/shared';

const text = (max: number) => z.string().max(max);
const bytes = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
const LIST_MAX = 256;

/** The QEMU guest agent commands behind the guest information, and what each gives. */
export const GUEST_INFO_COMMANDS = {
  os: 'guest-get-osinfo',
  hostname: 'guest-get-host-name',
  users: 'guest-get-users',
  timezone: 'guest-get-timezone',
  interfaces: 'guest-network-get-interfaces',
  filesystems: 'guest-get-fsinfo',
} as const;
export type GuestInfoPart = keyof typeof GUEST_INFO_COMMANDS;

const osSchema = z
  .object({
    id: text(256).optional(),
    name: text(256).optional(),
    'pretty-name': text(512).optional(),
    version: text(256).optional(),
    'version-id': text(256).optional(),
    'kernel-release': text(256).optional(),
    'kernel-version': text(512).optional(),
    machine: text(64).optional(),
  })
  .transform((o) => ({
    id: o.id ?? null,
    name: o.name ?? null,
    prettyName: o['pretty-name'] ?? null,
    version: o.version ?? null,
    versionId: o['version-id'] ?? null,
    kernelRelease: o['kernel-release'] ?? null,
    kernelVersion: o['kernel-version'] ?? null,
    machine: o.machine ?? null,
  }));

const hostnameSchema = z.object({ 'host-name': text(255) }).transform((h) => h['host-name']);

const usersSchema = z
  .array(z.object({ user: text(256), domain: text(256).optional(), 'login-time': z.number().finite() }))
  .max(LIST_MAX)
  .transform((us) =>
    us.map((u) => ({
      name: u.user,
      domain: u.domain ?? null,
      // Seconds since the epoch, as the guest's clock says.
      loginTime: Number.isFinite(new Date(u['login-time'] * 1000).getTime())
        ? new Date(u['login-time'] * 1000).toISOString()
        : null,
    })),
  );

const timezoneSchema = z
  .object({ zone: text(128).optional(), offset: z.number().int().min(-86_400).max(86_400) })
  .transform((t) => ({ zone: t.zone ?? null, offsetS: t.offset }));

const interfacesSchema = z
  .array(
    z.object({
      name: text(64),
      'hardware-address': text(64).optional(),
      'ip-addresses': z
        .array(
          z.object({
            'ip-address-type': z.enum(['ipv4', 'ipv6']),
            'ip-address': text(64),
            prefix: z.number().int().min(0).max(128),
          }),
        )
        .max(LIST_MAX)
        .optional(),
    }),
  )
  .max(LIST_MAX)
  .transform((is) =>
    is.map((i) => ({
      name: i.name,
      hardwareAddress: i['hardware-address'] ?? null,
      addresses: (i['ip-addresses'] ?? []).map((a) => ({
        type: a['ip-address-type'],
        address: a['ip-address'],
        prefix: a.prefix,
      })),
    })),
  );

const filesystemsSchema = z
  .array(
    z.object({
      name: text(256),
      mountpoint: text(4096),
      type: text(64),
      'used-bytes': bytes.optional(),
      'total-bytes': bytes.optional(),
      disk: z
        .array(z.object({ dev: text(256).optional(), serial: text(256).optional() }))
        .max(LIST_MAX)
        .optional(),
    }),
  )
  .max(LIST_MAX)
  .transform((fs) =>
    fs.map((f) => ({
      name: f.name,
      mountpoint: f.mountpoint,
      type: f.type,
      usedBytes: f['used-bytes'] ?? null,
      totalBytes: f['total-bytes'] ?? null,
      disks: (f.disk ?? []).flatMap((d) => (d.dev ? [d.dev] : [])),
    })),
  );

/** Each part's schema (the `return` of its command). */
export const guestInfoSchemas = {
  os: osSchema,
  hostname: hostnameSchema,
  users: usersSchema,
  timezone: timezoneSchema,
  interfaces: interfacesSchema,
  filesystems: filesystemsSchema,
} as const;

/** What `GET /api/machines/:id/guest` answers. */
export interface GuestInfo {
  os: z.output<typeof osSchema> | null;
  hostname: string | null;
  users: z.output<typeof usersSchema>;
  timezone: z.output<typeof timezoneSchema> | null;
  interfaces: z.output<typeof interfacesSchema>;
  filesystems: z.output<typeof filesystemsSchema>;
  /** The parts the agent did not give (command unsupported or disabled in the guest, or a malformed answer). */
  unavailable: GuestInfoPart[];
}

/**
 * Builds the guest information from the raw answers (each one's `return`, or undefined when its command
 * failed). A part whose answer is missing or breaks its schema is null (lists: empty) and named in
 * `unavailable`.
 */
export function guestInfoFrom(raw: Partial<Record<GuestInfoPart, unknown>>): GuestInfo {
  const unavailable: GuestInfoPart[] = [];
  const part = <K extends GuestInfoPart>(k: K): z.output<(typeof guestInfoSchemas)[K]> | null => {
    const parsed = raw[k] === undefined ? null : guestInfoSchemas[k].safeParse(raw[k]);
    if (parsed?.success) return parsed.data as z.output<(typeof guestInfoSchemas)[K]>;
    unavailable.push(k);
    return null;
  };
  return {
    os: part('os'),
    hostname: part('hostname'),
    users: part('users') ?? [],
    timezone: part('timezone'),
    interfaces: part('interfaces') ?? [],
    filesystems: part('filesystems') ?? [],
    unavailable,
  };
}

/** `guest-exec-status`'s answer. */
export const execStatusSchema = z.object({
  exited: z.boolean(),
  exitcode: z.number().int().optional(),
  signal: z.number().int().optional(),
  'out-data': z.string().optional(),
  'err-data': z.string().optional(),
  'out-truncated': z.boolean().optional(),
  'err-truncated': z.boolean().optional(),
});
export type ExecStatus = z.infer<typeof execStatusSchema>;

/** A base64 output stream decoded and cut to `max` bytes (UTF-8; a character cut in two is replaced). */
export function capOutput(
  b64: string | undefined,
  max = GUEST_EXEC_MAX_OUTPUT_BYTES,
): { text: string; truncated: boolean } {
  const buf = b64 ? Buffer.from(b64, 'base64') : Buffer.alloc(0);
  return { text: buf.subarray(0, max).toString('utf8'), truncated: buf.length > max };
}

/** The result of a finished (or timed-out) exec, with each stream capped. */
export function execResultOf(
  s: ExecStatus,
  timedOut: boolean,
  max = GUEST_EXEC_MAX_OUTPUT_BYTES,
): GuestExecResult {
  const out = capOutput(s['out-data'], max);
  const err = capOutput(s['err-data'], max);
  return {
    exitCode: s.exited && s.exitcode !== undefined ? s.exitcode : null,
    signal: s.exited && s.signal !== undefined ? s.signal : null,
    timedOut,
    stdout: out.text,
    stderr: err.text,
    stdoutTruncated: out.truncated || s['out-truncated'] === true,
    stderrTruncated: err.truncated || s['err-truncated'] === true,
  };
}
