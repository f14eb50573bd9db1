/**
 * vmflow's guest agent protocol, version 1 (the contract is `docs/guest-agent.md`): schemas of every
 * message in both directions, a line decoder with a hard per-line cap, a validating parser and the
 * encoder of host→guest messages. Pure: no I/O, nothing thrown at a caller for anything a guest sends.
 *
 * The guest is untrusted, so the schemas are stricter than the prose of the contract where it is silent:
 * - every number is finite; counters, sizes, pids and times are non-negative;
 * - CPU percentages (`cpu.totalPct`, `cpu.perCorePct`) must lie in 0..100; an overshoot up to
 *   {@link PCT_TOLERANCE} (rounding of an agent's own arithmetic) is clamped to 100, anything further out is
 *   rejected (the message is malformed). A process's `cpuPct` may exceed 100 (several cores) and is only
 *   required to be non-negative;
 * - lists are bounded as the contract says (≤ 64 filesystems, nics, disks, users; ≤ 5 top processes;
 *   ≤ 1000 processes) and so are strings and the lists the contract leaves open (cores, capabilities,
 *   services, packages); a message beyond a bound is malformed, never truncated;
 * - unknown fields are dropped (forward compatibility), unknown `type`s and a higher `v` are ignored.
 */
import { z } from 'zod';

/** The protocol version this module speaks. */
export const PROTOCOL_VERSION = 1;
/** The longest line accepted, in bytes, without its `\n`. */
export const MAX_LINE_BYTES = 65_536;
/** How far above 100 a CPU percentage may be and still be clamped to 100 rather than rejected. */
export const PCT_TOLERANCE = 1;
/** The longest request id (contract: ≤ 64 chars). */
export const MAX_ID_CHARS = 64;

const LIST_MAX = 64;
const TOP_MAX = 5;
const PROCESSES_MAX = 1000;
/** Not bounded by the contract; generous bounds so a guest cannot make the host hold more. */
const CORES_MAX = 1024;
const CAPABILITIES_MAX = 64;
const SERVICES_MAX = 4096;
const PACKAGES_MAX = 20_000;

const text = (max: number) => z.string().max(max);
const count = z.number().finite().nonnegative();
const uint = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER);
/** A machine-wide CPU percentage: 0..100, small overshoot clamped. */
const pct = z
  .number()
  .finite()
  .min(0)
  .max(100 + PCT_TOLERANCE)
  .transform((n) => Math.min(n, 100));
const id = z.string().min(1).max(MAX_ID_CHARS);

// ---- guest → host ----------------------------------------------------------------------------------

/** Operating-system families the contract knows. */
export const OS_FAMILIES = ['linux', 'windows'] as const;

/** `hello`: who the agent is; sent on start, on (re)opening the port and in answer to `sync`. */
export const helloSchema = z.object({
  v: z.literal(1),
  type: z.literal('hello'),
  sync: id.optional(),
  /** What the guest read from SMBIOS: a claim, checked against the domain's machine id. */
  machineId: z.string().min(1).max(128),
  agentVersion: text(64),
  os: z.object({
    family: z.enum(OS_FAMILIES),
    name: text(256),
    version: text(128),
    kernel: text(256),
    arch: text(32),
  }),
  hostname: text(255),
  capabilities: z.array(text(64)).max(CAPABILITIES_MAX),
  intervalS: z.number().int().min(1).max(300).default(10),
});
export type Hello = z.infer<typeof helloSchema>;

const processSample = z.object({ pid: uint, name: text(256), cpuPct: count, rssBytes: count });

/** `metrics`: a sample every `intervalS` seconds. Counters are cumulative since the guest's boot. */
export const metricsSchema = z.object({
  v: z.literal(1),
  type: z.literal('metrics'),
  seq: uint,
  uptimeS: count,
  cpu: z.object({ totalPct: pct, perCorePct: z.array(pct).max(CORES_MAX) }),
  load: z.tuple([count, count, count]),
  memory: z.object({
    totalBytes: count,
    availableBytes: count,
    usedBytes: count,
    swapTotalBytes: count,
    swapUsedBytes: count,
  }),
  filesystems: z
    .array(z.object({ mount: text(4096), fsType: text(64), totalBytes: count, usedBytes: count }))
    .max(LIST_MAX),
  nics: z
    .array(z.object({ name: text(64), rxBytes: count, txBytes: count, rxPackets: count, txPackets: count }))
    .max(LIST_MAX),
  disks: z
    .array(z.object({ name: text(64), readBytes: count, writeBytes: count, reads: count, writes: count }))
    .max(LIST_MAX),
  users: z
    .array(z.object({ name: text(256), tty: text(64), since: z.iso.datetime({ offset: true }) }))
    .max(LIST_MAX),
  topCpu: z.array(processSample).max(TOP_MAX),
  topMemory: z.array(processSample).max(TOP_MAX),
});
export type Metrics = z.infer<typeof metricsSchema>;

/** Error codes the contract defines (an agent may send others; they are kept as strings). */
export const AGENT_ERROR_CODES = ['not-found', 'denied', 'invalid', 'unsupported', 'failed'] as const;

/** `response`: the answer to a `request`, same id. `result` is checked per command by the caller. */
export const responseSchema = z.discriminatedUnion('ok', [
  z.object({
    v: z.literal(1),
    type: z.literal('response'),
    id,
    ok: z.literal(true),
    result: z.record(z.string(), z.unknown()),
  }),
  z.object({
    v: z.literal(1),
    type: z.literal('response'),
    id,
    ok: z.literal(false),
    error: z.object({ code: text(64), message: text(4096).default('') }),
  }),
]);
export type Response = z.infer<typeof responseSchema>;

/** Every guest → host message this version knows. */
export type GuestMessage = Hello | Metrics | Response;

const GUEST_SCHEMAS = { hello: helloSchema, metrics: metricsSchema, response: responseSchema } as const;

// ---- host → guest ----------------------------------------------------------------------------------

/** `sync`: sent on each connect; the agent answers with a `hello` carrying this id. */
export const syncSchema = z.object({ v: z.literal(1), type: z.literal('sync'), id });
export type Sync = z.infer<typeof syncSchema>;

const unitName = z
  .string()
  .min(1)
  .max(256)
  .regex(/^[A-Za-z0-9:_.@\\-]+$/, 'systemd unit name characters only');

/** Arguments of each command (contract, "Host → guest"). */
export const commandArgsSchemas = {
  'processes.list': z.object({}),
  'process.kill': z.object({ pid: z.number().int().min(1), signal: z.enum(['TERM', 'KILL']) }),
  'services.list': z.object({}),
  'service.start': z.object({ name: unitName }),
  'service.stop': z.object({ name: unitName }),
  'service.restart': z.object({ name: unitName }),
  'packages.list': z.object({}),
} as const;
export type AgentCommand = keyof typeof commandArgsSchemas;
export const AGENT_COMMANDS = Object.keys(commandArgsSchemas) as AgentCommand[];
export type CommandArgs<C extends AgentCommand> = z.input<(typeof commandArgsSchemas)[C]>;

const serviceState = z.object({ state: text(64) });

/** What each command's `result` must look like. */
export const commandResultSchemas = {
  'processes.list': z.object({
    processes: z
      .array(
        z.object({
          pid: uint,
          ppid: uint,
          user: text(256),
          name: text(256),
          cmdline: text(4096),
          cpuPct: count,
          rssBytes: count,
          state: text(32),
        }),
      )
      .max(PROCESSES_MAX),
  }),
  'process.kill': z.object({}),
  'services.list': z.object({
    services: z
      .array(z.object({ name: text(256), description: text(1024), state: text(64), enabled: z.boolean() }))
      .max(SERVICES_MAX),
  }),
  'service.start': serviceState,
  'service.stop': serviceState,
  'service.restart': serviceState,
  'packages.list': z.object({
    packages: z.array(z.object({ name: text(512), version: text(256), arch: text(64) })).max(PACKAGES_MAX),
  }),
} as const;
export type CommandResult<C extends AgentCommand> = z.output<(typeof commandResultSchemas)[C]>;

/** `request`: a command for the agent. */
export const requestSchema = z.object({
  v: z.literal(1),
  type: z.literal('request'),
  id,
  command: z.string().min(1).max(64),
  args: z.record(z.string(), z.unknown()),
});
export type Request = z.infer<typeof requestSchema>;

/** A host → guest message as a line (`\n`-terminated). Throws on a message that breaks the contract. */
export function encodeHostMessage(message: Sync | Request): string {
  const checked = message.type === 'sync' ? syncSchema.parse(message) : requestSchema.parse(message);
  const line = `${JSON.stringify(checked)}\n`;
  if (Buffer.byteLength(line) - 1 > MAX_LINE_BYTES) throw new RangeError('message longer than a line');
  return line;
}

/** The `sync` line for `id`. */
export const encodeSync = (syncId: string) => encodeHostMessage({ v: 1, type: 'sync', id: syncId });

/** The `request` line of a command, its arguments checked against the command's schema. */
export function encodeRequest<C extends AgentCommand>(
  reqId: string,
  command: C,
  args: CommandArgs<C>,
): string {
  const checked = commandArgsSchemas[command].parse(args) as Record<string, unknown>;
  return encodeHostMessage({ v: 1, type: 'request', id: reqId, command, args: checked });
}

// ---- parsing ---------------------------------------------------------------------------------------

/** What one line turned out to be. */
export type ParsedLine =
  | { kind: 'message'; message: GuestMessage }
  | { kind: 'unknown'; type: string }
  | { kind: 'malformed'; reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * Parses and validates one line (without its `\n`). Never throws: a line that is not UTF-8, not a JSON
 * object, has no `v`/`type` or breaks its type's schema is `malformed`; an unknown `type` or a higher `v`
 * is `unknown` (ignored, not an error).
 */
export function parseGuestLine(line: Uint8Array | string): ParsedLine {
  let raw: unknown;
  try {
    const body = typeof line === 'string' ? line : utf8.decode(line);
    if (body.length > MAX_LINE_BYTES) return { kind: 'malformed', reason: 'line too long' };
    raw = JSON.parse(body);
  } catch {
    return { kind: 'malformed', reason: 'not UTF-8 JSON' };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return { kind: 'malformed', reason: 'not a JSON object' };
  const { v, type } = raw as { v?: unknown; type?: unknown };
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    return { kind: 'malformed', reason: 'no valid protocol version' };
  if (typeof type !== 'string' || type.length === 0 || type.length > 64)
    return { kind: 'malformed', reason: 'no valid type' };
  if (v > PROTOCOL_VERSION) return { kind: 'unknown', type: `v${v}:${type}` };
  if (!Object.hasOwn(GUEST_SCHEMAS, type)) return { kind: 'unknown', type };
  const parsed = GUEST_SCHEMAS[type as keyof typeof GUEST_SCHEMAS].safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { kind: 'malformed', reason: `${type}: ${issue?.path.join('.') || '(root)'}: ${issue?.message}` };
  }
  return { kind: 'message', message: parsed.data };
}

/**
 * Splits a byte stream into lines. Holds at most {@link MAX_LINE_BYTES} bytes: a line that grows past
 * the cap is dropped as it arrives and skipped up to its `\n`, then reported once through `onOverlong`.
 * A `\r` before the `\n` is not removed (JSON.parse accepts it as whitespace).
 */
export class LineDecoder {
  private parts: Buffer[] = [];
  private size = 0;
  private skipping = false;

  constructor(private readonly maxLineBytes = MAX_LINE_BYTES) {}

  /** Bytes held for an incomplete line (never more than the cap). */
  get buffered(): number {
    return this.size;
  }

  /**
   * Feeds a chunk; calls `onLine` for each complete line and `onOverlong` for each line over the cap.
   * `onLine` may return `false` to stop (the rest of the chunk is dropped, e.g. the peer was cut off).
   */
  push(chunk: Buffer, onLine: (line: Buffer) => boolean | void, onOverlong: () => boolean | void): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(10, start);
      const end = nl === -1 ? chunk.length : nl;
      if (this.skipping) {
        if (nl === -1) return;
        this.skipping = false;
        start = nl + 1;
        if (onOverlong() === false) return;
        continue;
      }
      if (this.size + (end - start) > this.maxLineBytes) {
        this.parts = [];
        this.size = 0;
        if (nl === -1) {
          this.skipping = true;
          return;
        }
        start = nl + 1;
        if (onOverlong() === false) return;
        continue;
      }
      if (nl === -1) {
        // A copy: a view would pin the whole socket chunk.
        this.parts.push(Buffer.from(chunk.subarray(start)));
        this.size += chunk.length - start;
        return;
      }
      let line = chunk.subarray(start, nl);
      if (this.size > 0) {
        this.parts.push(line);
        line = Buffer.concat(this.parts, this.size + line.length);
        this.parts = [];
        this.size = 0;
      }
      start = nl + 1;
      if (onLine(line) === false) return;
    }
  }

  /** Forgets a partial line (the connection closed). */
  reset(): void {
    this.parts = [];
    this.size = 0;
    this.skipping = false;
  }
}
