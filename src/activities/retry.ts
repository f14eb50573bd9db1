import { Context } from '@temporalio/activity';

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
  ctx.heartbeat(details);
  const timer = setInterval(() => ctx!.heartbeat(details), everyMs);
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
