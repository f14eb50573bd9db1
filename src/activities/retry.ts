import { Context } from '@temporalio/activity';

/** The progress each running activity last reported ({@link reportProgress}). */
const progress = new WeakMap<Context, unknown>();

/**
 * Records how far a resumable activity got (e.g. `{ offset }`) and heartbeats it. Every later heartbeat of
 * the activity (the worker's periodic one included) carries it, so a retry after a crash finds it in
 * `Context.current().info.heartbeatDetails` and resumes from there. Outside an activity: nothing.
 */
export function reportProgress(details: unknown): void {
  let ctx: Context;
  try {
    ctx = Context.current();
  } catch {
    return;
  }
  progress.set(ctx, details);
  if (!ctx.info.isLocal) ctx.heartbeat(details);
}

/**
 * Runs `fn` while heartbeating every `everyMs`, so the server knows the activity is alive and the activity
 * learns of its cancellation (the server answers a heartbeat with it). It does not act on a cancellation
 * itself, neither before `fn` starts nor after it ends: a native libvirt call cannot be interrupted halfway,
 * so `fn` runs to its end and its result (or error) is returned as is. Code that can stop early does so
 * through `Context.sleep`, `Context.cancelled` or `cancellationSignal` ({@link pollUntil}, a hung fault);
 * a step whose cancellation comes too late is undone by the saga's compensation, registered before it.
 */
export async function withHeartbeat<T>(fn: () => Promise<T>, details?: unknown, everyMs = 1000): Promise<T> {
  let ctx: Context | null = null;
  try {
    ctx = Context.current();
  } catch {
    return fn(); // called outside an activity (scripts, benches)
  }
  if (ctx.info.isLocal) return fn(); // local activities have no heartbeats
  const beat = () => ctx!.heartbeat(details ?? progress.get(ctx!));
  // No beat at the start: the server times the heartbeat from the activity's start anyway, and a beat
  // right away is a server call racing the completion of every short activity (docs/performance.md).
  const timer = setInterval(beat, everyMs);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

/** Polls `check` until it returns a value other than undefined, heartbeating, or until the deadline. */
export async function pollUntil<T>(
  check: () => Promise<T | undefined>,
  opts: { deadlineMs: number; intervalMs?: number },
): Promise<T | undefined> {
  const end = Date.now() + opts.deadlineMs;
  let ctx: Context | null = null;
  try {
    ctx = Context.current();
  } catch {
    ctx = null;
  }
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() >= end) return undefined;
    ctx?.heartbeat();
    await (ctx
      ? ctx.sleep(opts.intervalMs ?? 250)
      : new Promise((r) => setTimeout(r, opts.intervalMs ?? 250)));
  }
}
