import { Context } from '@temporalio/activity';

/**
 * Runs a long native call while heartbeating, so the server knows the activity is alive and the
 * activity learns of cancellation. A native libvirt call cannot be interrupted halfway; cancellation is
 * honoured before it starts and reported once it ends (the compensation then removes what it made).
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
