/** Request schemas, field errors, cursors and idempotency fingerprints (pure). */
import { zodFieldErrors } from '../../../src/api/errors';
import { requestHash } from '../../../src/api/idempotency';
import { decodeCursor, encodeCursor } from '../../../src/api/pagination';
import { CreateMachineBody, HardwareBody, MachineName } from '../../../src/api/schemas';

const ok = {
  name: 'web 1',
  templateId: '0b7b1c36-4a0c-4f7e-9a55-6a4d3c1f0e11',
  departmentId: '5f0b1c36-4a0c-4f7e-9a55-6a4d3c1f0e22',
};

describe('request schemas', () => {
  it.each(['a', 'web <01> & "quotes"', 'ünïcødé 名前 🚀', 'x'.repeat(100)])('accepts the name %j', (name) => {
    expect(MachineName.safeParse(name).success).toBe(true);
  });
  it.each([
    '',
    ' ',
    'x'.repeat(101),
    'a\nb',
    'a\tb',
    'a\u0000',
    'a\u001b[31m',
    'a\u007f',
    'a\u0085',
    'a\u202e',
    'a\u2028',
    'a\ud800',
  ])('refuses the name %j', (name) => {
    expect(MachineName.safeParse(name).success).toBe(false);
  });
  it('rejects unknown fields and names them', () => {
    const r = CreateMachineBody.safeParse({ ...ok, hostName: 'x', status: 'running' });
    expect(r.success).toBe(false);
    expect(zodFieldErrors(r.error!)).toEqual([{ field: 'hostName,status', message: expect.any(String) }]);
  });
  it('enforces hardware limits and at least one field', () => {
    expect(HardwareBody.safeParse({}).success).toBe(false);
    expect(HardwareBody.safeParse({ cpu: 64, memory: 1024 * 1024, storage: 16 * 1024 }).success).toBe(true);
    expect(zodFieldErrors(HardwareBody.safeParse({ cpu: 65 }).error!)).toEqual([
      { field: 'cpu', message: expect.any(String) },
    ]);
    expect(HardwareBody.safeParse({ storage: 1.5 }).success).toBe(false);
  });
});

describe('cursors and fingerprints', () => {
  it('round-trips a cursor and refuses forged ones', () => {
    const at = new Date('2026-01-02T03:04:05.678Z');
    const c = encodeCursor(at, ok.templateId);
    expect(decodeCursor(c)).toEqual({ createdAt: at, id: ok.templateId });
    expect(() => decodeCursor('garbage')).toThrow('invalid cursor');
    expect(() => decodeCursor(Buffer.from(JSON.stringify(['x', 'y'])).toString('base64url'))).toThrow(
      'invalid cursor',
    );
  });
  it('fingerprints ignore key order but not values, paths or methods', () => {
    const a = requestHash('POST', '/api/machines', { a: 1, b: { c: 2, d: [1, 2] } });
    expect(requestHash('post', '/api/machines', { b: { d: [1, 2], c: 2 }, a: 1 })).toBe(a);
    expect(requestHash('POST', '/api/machines', { a: 2, b: { c: 2, d: [1, 2] } })).not.toBe(a);
    expect(requestHash('POST', '/api/machines/x', { a: 1, b: { c: 2, d: [1, 2] } })).not.toBe(a);
    expect(requestHash('PATCH', '/api/machines', { a: 1, b: { c: 2, d: [1, 2] } })).not.toBe(a);
    // Keyed with the server's secret (a body may carry a user's secret): not the plain hash, not another
    // key's, still independent of key order.
    const body = { command: '/usr/sbin/chpasswd', stdin: 'root:pw' };
    const keyed = requestHash('POST', '/api/machines/m/guest/exec', body, 'server-secret');
    expect(keyed).not.toBe(requestHash('POST', '/api/machines/m/guest/exec', body));
    expect(keyed).not.toBe(requestHash('POST', '/api/machines/m/guest/exec', body, 'other-secret'));
    expect(
      requestHash(
        'POST',
        '/api/machines/m/guest/exec',
        { stdin: 'root:pw', command: '/usr/sbin/chpasswd' },
        'server-secret',
      ),
    ).toBe(keyed);
  });
});
