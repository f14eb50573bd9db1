/**
 * Single flight: concurrent callers of the same key share one run of the work instead of starting one each.
 * The key is forgotten once the run settles, so the next caller starts a fresh one (nothing is cached).
 */
export class SingleFlight<T> {
  readonly #running = new Map<string, Promise<T>>();

  /** The running work of `key`, or `start()` run now for it and for whoever asks before it settles. */
  run(key: string, start: () => Promise<T>): Promise<T> {
    let work = this.#running.get(key);
    if (!work) {
      work = start().finally(() => this.#running.delete(key));
      this.#running.set(key, work);
    }
    return work;
  }

  /** How many keys have work running (for tests and metrics). */
  get size(): number {
    return this.#running.size;
  }
}
