/**
 * SingleFlight, what keeps a burst of identical guest reads to one workflow per VM and kind: callers of one
 * key share one run while it runs (its value or its error), other keys run apart, and a settled key starts
 * afresh (nothing cached).
 */
import { SingleFlight } from '../../../src/api/single-flight';

/** Work that settles when told to, counting its starts. */
function gated<T>() {
  let starts = 0;
  let settle: { resolve: (v: T) => void; reject: (e: Error) => void } | undefined;
  const start = () => {
    starts += 1;
    return new Promise<T>((resolve, reject) => (settle = { resolve, reject }));
  };
  return { start, starts: () => starts, settle: () => settle! };
}

describe('SingleFlight', () => {
  it('runs the work of a key once for every caller that asks while it runs, and afresh after', async () => {
    const flight = new SingleFlight<string>();
    const work = gated<string>();
    const callers = Array.from({ length: 50 }, () => flight.run('vm-1:info', work.start));
    expect(work.starts()).toBe(1);
    expect(flight.size).toBe(1);
    work.settle().resolve('the answer');
    await expect(Promise.all(callers)).resolves.toEqual(Array(50).fill('the answer'));
    expect(flight.size).toBe(0);
    const next = flight.run('vm-1:info', work.start);
    expect(work.starts()).toBe(2);
    work.settle().resolve('a new answer');
    await expect(next).resolves.toBe('a new answer');
  });

  it('gives every joined caller the error, and forgets the key', async () => {
    const flight = new SingleFlight<string>();
    const work = gated<string>();
    const a = flight.run('k', work.start);
    const b = flight.run('k', work.start);
    work.settle().reject(new Error('agent absent'));
    await expect(a).rejects.toThrow('agent absent');
    await expect(b).rejects.toThrow('agent absent');
    expect(flight.size).toBe(0);
  });

  it('runs different keys apart', async () => {
    const flight = new SingleFlight<number>();
    const one = gated<number>();
    const two = gated<number>();
    const a = flight.run('vm-1:info', one.start);
    const b = flight.run('vm-1:processes', two.start);
    expect([one.starts(), two.starts(), flight.size]).toEqual([1, 1, 2]);
    two.settle().resolve(2);
    one.settle().resolve(1);
    await expect(Promise.all([a, b])).resolves.toEqual([1, 2]);
  });
});
