/**
 * Guest reads and commands, on the machine's host (its task queue): the QEMU guest agent through libvirt
 * (`Domain.qemuAgentCommand`: information, `guest-exec`) and vmflow's own agent through the host worker's
 * agent watcher (src/worker/agent-watcher.ts: processes, services, packages, kill, service actions). Every
 * refusal is a typed, non-retryable failure the API maps to a status (docs/guest-commands.md): unavailable
 * (503), timeout (504), or the agent's own error.
 */
import { ZodError } from 'zod';
import { type AgentCommand, type CommandArgs, type CommandResult } from '../guests/agent-protocol';
import {
  execResultOf,
  execStatusSchema,
  GUEST_INFO_COMMANDS,
  guestInfoFrom,
  type GuestInfo,
  type GuestInfoPart,
} from '../guests/qemu-agent';
import { type Domain } from '../libvirt/connection';
import { isLibvirtError, LibvirtErrorCode } from '../libvirt/errors';
import { type LibvirtProvider } from '../libvirt/provider';
import { type SecretBox } from '../secrets';
import {
  AgentAbsentError,
  AgentBusyError,
  AgentCommandError,
  AgentTimeoutError,
} from '../worker/agent-errors';
import { type AgentWatcher } from '../worker/agent-watcher';
import { guestAgentState } from '../worker/guest-info';
import {
  FailureType,
  GUEST_EXEC_MAX_OUTPUT_BYTES,
  GuestFailureType,
  type GuestExecResult,
  type GuestReadOutcome,
  type ReadGuestInput,
  type SealedSecretRef,
} from '../workflows/shared';
import { permanent } from './failures';
import { lookupOwnDomain } from './libvirt';
import { pollUntil } from './retry';

/** Dependencies of the guest activities: libvirt, and this host's agent watcher (none: the watcher is off). */
export interface GuestActivityDeps {
  libvirt: LibvirtProvider;
  /** Opens a sealed standard input. */
  secrets: Pick<SecretBox, 'open'>;
  agents?: Pick<AgentWatcher, 'request'> | null;
}

/** A machine's domain on this host, as the activities address it. */
export interface GuestRef {
  internalName: string;
  machineId: string;
}

/** Seconds libvirt waits for each QEMU guest agent answer of a read. */
const READ_COMMAND_TIMEOUT_S = 5;

/**
 * A libvirt failure of a guest agent call as a typed failure: not running or not connected → unavailable;
 * connected but no answer in time → timeout; the agent's own error (libvirt's "unable to execute QEMU agent
 * command") → a command error. Anything else is returned as is (retried, where the step allows it).
 */
export function guestAgentFailure(e: unknown, machineId: string): unknown {
  const message = (e as Error)?.message ?? String(e);
  if (isLibvirtError(e, LibvirtErrorCode.NO_DOMAIN) || isLibvirtError(e, LibvirtErrorCode.OPERATION_INVALID))
    return permanent(GuestFailureType.Unavailable, `machine ${machineId} is not running on its host`);
  if (
    isLibvirtError(e, LibvirtErrorCode.AGENT_UNRESPONSIVE) ||
    isLibvirtError(e, LibvirtErrorCode.AGENT_UNSYNCED)
  )
    return /not connected/i.test(message)
      ? permanent(
          GuestFailureType.Unavailable,
          `the QEMU guest agent of machine ${machineId} is not connected`,
        )
      : permanent(
          GuestFailureType.Timeout,
          `the QEMU guest agent of machine ${machineId} did not answer in time`,
        );
  if (isLibvirtError(e) && /QEMU agent command/i.test(message))
    return permanent(GuestFailureType.Command, message, { code: 'failed' });
  return e;
}

/** A watcher error (src/worker/agent-errors.ts) as a typed failure. */
export function agentFailure(e: unknown): unknown {
  if (e instanceof AgentAbsentError || e instanceof AgentBusyError)
    return permanent(GuestFailureType.Unavailable, e.message);
  if (e instanceof AgentTimeoutError) return permanent(GuestFailureType.Timeout, e.message);
  if (e instanceof AgentCommandError)
    return permanent(GuestFailureType.Command, e.message, { code: e.code, detail: e.detail });
  if (e instanceof ZodError)
    return permanent(FailureType.Validation, `invalid arguments: ${e.issues[0]?.message}`);
  return e;
}

/** Guest activities. Run on the host's task queue. */
export function createGuestActivities({ libvirt, secrets, agents }: GuestActivityDeps) {
  /** The machine's running domain with its QEMU guest agent connected, else an unavailable failure. */
  async function agentDomain(ref: GuestRef): Promise<Domain> {
    let dom: Domain | null;
    let xml: string;
    try {
      dom = await lookupOwnDomain(await libvirt.get(), ref.internalName, ref.machineId);
      if (!dom || !(await dom.isActive()))
        throw permanent(GuestFailureType.Unavailable, `machine ${ref.machineId} is not running on its host`);
      xml = await dom.getXML();
    } catch (e) {
      throw guestAgentFailure(e, ref.machineId);
    }
    if (guestAgentState(xml) !== 'connected')
      throw permanent(
        GuestFailureType.Unavailable,
        `the QEMU guest agent of machine ${ref.machineId} is not connected`,
      );
    return dom;
  }

  /** One QEMU guest agent command's `return`. */
  async function qga(
    dom: Domain,
    ref: GuestRef,
    execute: string,
    args: object | undefined,
    timeoutS: number,
  ) {
    try {
      const raw = await dom.qemuAgentCommand(
        JSON.stringify(args ? { execute, arguments: args } : { execute }),
        timeoutS,
      );
      return (JSON.parse(raw) as { return?: unknown }).return;
    } catch (e) {
      throw guestAgentFailure(e, ref.machineId);
    }
  }

  const api = {
    /**
     * The QEMU guest agent's view of the guest: OS, host name, users, time zone, interfaces with addresses,
     * file systems. A command the guest does not answer (unsupported, disabled) leaves its part out; an
     * agent that is not connected, or does not answer at all, fails the read.
     */
    async readGuestInfo(ref: GuestRef): Promise<GuestInfo> {
      const dom = await agentDomain(ref);
      const raw: Partial<Record<GuestInfoPart, unknown>> = {};
      let answered = 0;
      for (const [part, command] of Object.entries(GUEST_INFO_COMMANDS) as Array<[GuestInfoPart, string]>) {
        try {
          raw[part] = await qga(dom, ref, command, undefined, READ_COMMAND_TIMEOUT_S);
          answered++;
        } catch (e) {
          // One command the agent refuses is a missing part; an agent gone or silent fails the whole read.
          const type = (e as { type?: string }).type;
          if (type !== GuestFailureType.Command) throw e;
        }
      }
      if (answered === 0)
        throw permanent(GuestFailureType.Unavailable, 'the QEMU guest agent answered no information command');
      return guestInfoFrom(raw);
    },

    /** A request to vmflow's agent in the guest, through this host's watcher. */
    async agentRequest<C extends AgentCommand>(input: {
      machineId: string;
      command: C;
      args: CommandArgs<C>;
      timeoutMs: number;
    }): Promise<CommandResult<C>> {
      if (!agents)
        throw permanent(
          GuestFailureType.Unavailable,
          'the agent watcher is off on this host (AGENT_WATCHER)',
        );
      try {
        return await agents.request(input.machineId, input.command, input.args, input.timeoutMs);
      } catch (e) {
        throw agentFailure(e);
      }
    },

    /**
     * Starts a program in the guest (`guest-exec`, output captured); its pid in the guest. Not idempotent: the
     * workflow runs it at most once.
     */
    async guestExecStart(
      input: GuestRef & { command: string; args: string[]; stdin?: SealedSecretRef },
    ): Promise<{ pid: number }> {
      const dom = await agentDomain(input);
      const stdin = input.stdin ? secrets.open<string>(input.stdin) : undefined;
      const r = (await qga(
        dom,
        input,
        'guest-exec',
        {
          path: input.command,
          arg: input.args,
          'capture-output': true,
          ...(stdin !== undefined ? { 'input-data': Buffer.from(stdin, 'utf8').toString('base64') } : {}),
        },
        30,
      )) as { pid?: unknown } | undefined;
      if (typeof r?.pid !== 'number' || !Number.isInteger(r.pid))
        throw permanent(GuestFailureType.Command, 'guest-exec answered without a pid', {
          code: 'bad-response',
        });
      return { pid: r.pid };
    },

    /**
     * Waits for a program started by {@link guestExecStart} until it exits or `deadlineAt` passes (then it is
     * killed, Linux guests: `kill -KILL`), and gives its exit code and output, each stream capped at
     * `maxOutputBytes`. Polls `guest-exec-status`, heartbeating; a retry after a worker crash polls on. The
     * agent forgets a program once it reported its exit: a retry that comes after that report was lost
     * fails (`result lost`), it never runs the program again.
     */
    async guestExecWait(
      input: GuestRef & { pid: number; deadlineAt: string; maxOutputBytes?: number },
    ): Promise<GuestExecResult> {
      const max = Math.min(input.maxOutputBytes ?? GUEST_EXEC_MAX_OUTPUT_BYTES, GUEST_EXEC_MAX_OUTPUT_BYTES);
      const dom = await agentDomain(input);
      const status = async () => {
        try {
          return execStatusSchema.parse(await qga(dom, input, 'guest-exec-status', { pid: input.pid }, 10));
        } catch (e) {
          if ((e as { type?: string }).type === GuestFailureType.Command)
            throw permanent(
              GuestFailureType.Command,
              `the result of guest pid ${input.pid} is lost: ${(e as Error).message}`,
              { code: 'result-lost' },
            );
          if (e instanceof ZodError)
            throw permanent(GuestFailureType.Command, 'guest-exec-status answer is malformed', {
              code: 'bad-response',
            });
          throw e;
        }
      };
      const left = Math.max(0, new Date(input.deadlineAt).getTime() - Date.now());
      const done = await pollUntil(
        async () => {
          const s = await status();
          return s.exited ? s : undefined;
        },
        { deadlineMs: left, intervalMs: 250 },
      );
      if (done) return execResultOf(done, false, max);
      // Out of time: kill it (best effort: a Linux guest), then collect what it wrote.
      await qga(dom, input, 'guest-exec', { path: '/bin/kill', arg: ['-KILL', String(input.pid)] }, 10).catch(
        () => undefined,
      );
      const last =
        (await pollUntil(
          async () => {
            const s = await status();
            return s.exited ? s : undefined;
          },
          { deadlineMs: 5_000, intervalMs: 250 },
        )) ?? (await status());
      return { ...execResultOf(last, true, max), exitCode: null };
    },
  };
  return {
    ...api,
    /**
     * A read for the API (readGuest): the QEMU guest agent's information, or a list from vmflow's agent. A
     * guest that cannot answer (unavailable, too slow, an agent's error) is an outcome, returned, not thrown:
     * routine 503s must not show up as failed activities. Anything else is thrown.
     */
    async readGuest(input: ReadGuestInput): Promise<GuestReadOutcome> {
      const ref = { internalName: input.internalName, machineId: input.machineId };
      const list = {
        processes: 'processes.list',
        services: 'services.list',
        applications: 'packages.list',
      } as const;
      try {
        const value =
          input.what === 'info'
            ? await api.readGuestInfo(ref)
            : await api.agentRequest({
                machineId: input.machineId,
                command: list[input.what],
                args: {},
                timeoutMs: input.timeoutMs,
              });
        return { ok: true, value };
      } catch (e) {
        const type = (e as { type?: string }).type;
        if (!Object.values(GuestFailureType).includes(type as never)) throw e;
        const code = ((e as { details?: unknown[] }).details?.[0] as { code?: string } | undefined)?.code;
        return { ok: false, type: type!, message: (e as Error).message, ...(code ? { code } : {}) };
      }
    },
  };
}

export type GuestActivities = ReturnType<typeof createGuestActivities>;
