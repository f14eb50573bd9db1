/**
 * At most one emission per key per window (the `vms:metrics` event: one per VM per 5 s). Holds one
 * timestamp per key and forgets keys idle for a window, so it stays as small as the set of keys in use.
 */
export class Throttle {
  private readonly last = new Map<string, number>();

  constructor(private readonly windowMs: number) {}

  /** True (and the window starts) when `key` has not been allowed within the last window. */
  allow(key: string, now: number = Date.now()): boolean {
    const prev = this.last.get(key);
    if (prev !== undefined && now - prev < this.windowMs && now >= prev) return false;
    this.last.set(key, now);
    return true;
  }

  /** Drops the keys whose window has passed. */
  sweep(now: number = Date.now()): void {
    for (const [k, t] of this.last) if (now - t >= this.windowMs || now < t) this.last.delete(k);
  }

  /** Keys held (for tests and gauges). */
  get size(): number {
    return this.last.size;
  }
}
