import {
  encodeRequest,
  encodeSync,
  LineDecoder,
  MAX_LINE_BYTES,
  parseGuestLine,
} from '../../../src/guests/agent-protocol';
import { hello, metrics } from '../../support/fake-agent';

const line = (o: unknown) => JSON.stringify(o);
const kind = (o: unknown) => parseGuestLine(line(o)).kind;

describe('guest → host messages', () => {
  it('accepts the contract examples of hello, metrics and both responses', () => {
    expect(parseGuestLine(line(hello({ sync: 'abc' })))).toMatchObject({
      kind: 'message',
      message: { type: 'hello', sync: 'abc', hostname: 'web-1' },
    });
    expect(parseGuestLine(line(metrics()))).toMatchObject({ kind: 'message', message: { seq: 1 } });
    expect(kind({ v: 1, type: 'response', id: 'r1', ok: true, result: { processes: [] } })).toBe('message');
    expect(
      parseGuestLine(
        line({ v: 1, type: 'response', id: 'r1', ok: false, error: { code: 'denied', message: 'pid 1' } }),
      ),
    ).toMatchObject({ kind: 'message', message: { ok: false, error: { code: 'denied' } } });
  });

  it('drops unknown fields and defaults intervalS', () => {
    const parsed = parseGuestLine(line({ ...hello(), intervalS: undefined, extra: { deep: 1 } }));
    expect(parsed.kind).toBe('message');
    const message = (parsed as { message: Record<string, unknown> }).message;
    expect(message.extra).toBeUndefined();
    expect(message.intervalS).toBe(10);
  });

  it('ignores unknown types and higher versions without calling them malformed', () => {
    expect(parseGuestLine(line({ v: 1, type: 'event', what: 'x' }))).toEqual({
      kind: 'unknown',
      type: 'event',
    });
    expect(parseGuestLine(line({ ...metrics(), v: 2 }))).toEqual({ kind: 'unknown', type: 'v2:metrics' });
    // a type named like an Object.prototype member is just unknown
    expect(kind({ v: 1, type: 'constructor' })).toBe('unknown');
    expect(kind({ v: 1, type: '__proto__' })).toBe('unknown');
  });

  it.each([
    ['invalid JSON', '{"v":1,"type":"hello"'],
    ['a JSON array', '[1,2]'],
    ['a JSON string', '"hello"'],
    ['null', 'null'],
    ['no version', line({ type: 'hello' })],
    ['version 0', line({ ...hello(), v: 0 })],
    ['version as string', line({ ...hello(), v: '1' })],
    ['no type', line({ v: 1 })],
    ['type not a string', line({ v: 1, type: 7 })],
  ])('rejects %s as malformed', (_what, text) => {
    expect(parseGuestLine(text).kind).toBe('malformed');
  });

  it('rejects a number that overflows to Infinity', () => {
    expect(parseGuestLine(line(metrics()).replace('"uptimeS":12.5', '"uptimeS":1e400')).kind).toBe(
      'malformed',
    );
  });

  it('rejects invalid UTF-8 and binary junk', () => {
    expect(parseGuestLine(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])).kind).toBe('malformed');
    expect(parseGuestLine(Buffer.from([0, 1, 2, 3, 0x80, 0x81])).kind).toBe('malformed');
  });

  it('survives deeply nested JSON', () => {
    expect(parseGuestLine('['.repeat(MAX_LINE_BYTES)).kind).toBe('malformed');
    expect(parseGuestLine(`${'['.repeat(30_000)}${']'.repeat(30_000)}`).kind).toBe('malformed');
  });

  it.each([
    ['a negative counter', { memory: { ...metrics().memory, usedBytes: -1 } }],
    ['a NaN-like string counter', { memory: { ...metrics().memory, usedBytes: 'NaN' } }],
    ['CPU above 100 by more than the tolerance', { cpu: { totalPct: 101.5, perCorePct: [] } }],
    ['a negative core percentage', { cpu: { totalPct: 1, perCorePct: [-0.1] } }],
    ['a fractional seq', { seq: 1.5 }],
    ['a load with 2 values', { load: [1, 2] }],
    ['a load with 4 values', { load: [1, 2, 3, 4] }],
    ['65 filesystems', { filesystems: Array(65).fill(metrics().filesystems[0]) }],
    ['65 nics', { nics: Array(65).fill(metrics().nics[0]) }],
    ['65 disks', { disks: Array(65).fill(metrics().disks[0]) }],
    ['65 users', { users: Array(65).fill(metrics().users[0]) }],
    ['6 top processes', { topCpu: Array(6).fill(metrics().topCpu[0]) }],
    ['a user since that is not RFC 3339', { users: [{ name: 'a', tty: 'x', since: 'yesterday' }] }],
    ['a process with a negative pid', { topMemory: [{ pid: -1, name: 'x', cpuPct: 0, rssBytes: 0 }] }],
  ])('rejects metrics with %s', (_what, over) => {
    expect(kind(metrics(over))).toBe('malformed');
  });

  it('accepts the bounds themselves and clamps a rounding overshoot of CPU to 100', () => {
    const at = metrics({
      filesystems: Array(64).fill(metrics().filesystems[0]),
      topCpu: Array(5).fill(metrics().topCpu[0]),
      cpu: { totalPct: 100.4, perCorePct: [100, 0] },
    });
    const parsed = parseGuestLine(line(at));
    expect(parsed).toMatchObject({ kind: 'message', message: { cpu: { totalPct: 100 } } });
  });

  it.each([
    ['a hello without machineId', hello({ machineId: undefined })],
    ['a hello with an unknown os family', hello({ os: { ...hello().os, family: 'plan9' } })],
    ['a hello with intervalS 0', hello({ intervalS: 0 })],
    ['a hello with intervalS 301', hello({ intervalS: 301 })],
    ['a hello with a 65-char sync id', hello({ sync: 'x'.repeat(65) })],
    ['a response with a 65-char id', { v: 1, type: 'response', id: 'x'.repeat(65), ok: true, result: {} }],
    ['a response ok without result', { v: 1, type: 'response', id: 'a', ok: true }],
    ['a response not ok without error', { v: 1, type: 'response', id: 'a', ok: false }],
    ['a response with ok as a string', { v: 1, type: 'response', id: 'a', ok: 'yes', result: {} }],
  ])('rejects %s', (_what, msg) => {
    expect(kind(msg)).toBe('malformed');
  });
});

describe('host → guest messages', () => {
  it('encodes sync and requests as single lines', () => {
    expect(encodeSync('s1')).toBe('{"v":1,"type":"sync","id":"s1"}\n');
    expect(encodeRequest('r1', 'process.kill', { pid: 42, signal: 'TERM' })).toBe(
      '{"v":1,"type":"request","id":"r1","command":"process.kill","args":{"pid":42,"signal":"TERM"}}\n',
    );
  });

  it('refuses arguments the contract forbids', () => {
    expect(() => encodeRequest('r', 'service.start', { name: 'ssh; rm -rf /' })).toThrow();
    expect(() => encodeRequest('r', 'process.kill', { pid: 0, signal: 'TERM' })).toThrow();
    expect(() => encodeSync('x'.repeat(65))).toThrow();
  });
});

describe('line decoder', () => {
  const collect = (chunks: Buffer[], max?: number) => {
    const d = new LineDecoder(max);
    const out: string[] = [];
    let overlong = 0;
    let peak = 0;
    for (const c of chunks) {
      d.push(
        c,
        (l) => void out.push(l.toString()),
        () => void overlong++,
      );
      peak = Math.max(peak, d.buffered);
    }
    return { out, overlong, peak, buffered: d.buffered };
  };

  it('splits lines across and within chunks', () => {
    const r = collect([Buffer.from('a\nbc'), Buffer.from('d'), Buffer.from('e\n\nf\n'), Buffer.from('g')]);
    expect(r.out).toEqual(['a', 'bcde', '', 'f']);
    expect(r.buffered).toBe(1);
  });

  it('accepts a line of exactly the cap and drops one byte more, without holding more than the cap', () => {
    const exact = collect([Buffer.from(`${'x'.repeat(MAX_LINE_BYTES)}\nok\n`)]);
    expect(exact.out.map((l) => l.length)).toEqual([MAX_LINE_BYTES, 2]);
    const long = 'y'.repeat(MAX_LINE_BYTES + 1);
    const over = collect([Buffer.from(`${long}\nok\n`)]);
    expect(over).toMatchObject({ out: ['ok'], overlong: 1 });
  });

  it('skips a huge line that arrives in many chunks up to its newline, counting it once', () => {
    const chunks = Array.from({ length: 200 }, () => Buffer.alloc(4096, 0x41));
    chunks.push(Buffer.from('tail-of-long\n{"next":1}\n'));
    const r = collect(chunks);
    expect(r.out).toEqual(['{"next":1}']);
    expect(r.overlong).toBe(1);
    expect(r.peak).toBeLessThanOrEqual(MAX_LINE_BYTES);
  });

  it('stops a chunk when the listener says so', () => {
    const d = new LineDecoder();
    const out: string[] = [];
    d.push(
      Buffer.from('a\nb\nc\n'),
      (l) => {
        out.push(l.toString());
        return out.length < 2;
      },
      () => undefined,
    );
    expect(out).toEqual(['a', 'b']);
  });
});
