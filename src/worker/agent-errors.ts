/**
 * Errors of requests to a guest's vmflow agent (src/worker/agent-watcher.ts). Each maps to one HTTP answer
 * later: absent or busy → 503, timeout → 504, a command error → the agent's code.
 */

/** The VM has no agent the host can talk to (not running, not connected, or its agent lies about its id). */
export class AgentAbsentError extends Error {
  override readonly name = 'AgentAbsentError';
  constructor(
    public readonly machineId: string,
    public readonly reason: string,
  ) {
    super(`guest agent of machine ${machineId} is not available: ${reason}`);
  }
}

/** The agent already has as many requests in flight as the host allows. */
export class AgentBusyError extends Error {
  override readonly name = 'AgentBusyError';
  constructor(
    public readonly machineId: string,
    public readonly pending: number,
  ) {
    super(`guest agent of machine ${machineId} is busy (${pending} requests in flight)`);
  }
}

/** The agent did not answer in time (the request may still run in the guest). */
export class AgentTimeoutError extends Error {
  override readonly name = 'AgentTimeoutError';
  constructor(
    public readonly machineId: string,
    public readonly command: string,
    public readonly timeoutMs: number,
  ) {
    super(`guest agent of machine ${machineId} did not answer ${command} within ${timeoutMs} ms`);
  }
}

/**
 * The agent answered with an error (`not-found`, `denied`, `invalid`, `unsupported`, `failed`, or another
 * code a newer agent sends), or with a result that breaks the contract (`bad-response`).
 */
export class AgentCommandError extends Error {
  override readonly name = 'AgentCommandError';
  constructor(
    public readonly machineId: string,
    public readonly command: string,
    public readonly code: string,
    public readonly detail: string,
  ) {
    super(`guest agent of machine ${machineId}: ${command} failed (${code}): ${detail}`);
  }
}
