import { loadConfig } from '../../../src/config';
import { macFromId, SecretBox } from '../../../src/secrets';

describe('SecretBox', () => {
  const box = new SecretBox('unit-test-key-0123456789');

  it('seals so that the clear text does not appear, and opens what it sealed', () => {
    const secret = { password: 'hunter2-correct-horse', productKey: 'ABCDE-12345' };
    const sealed = box.seal(secret);
    expect(JSON.stringify(sealed)).not.toContain('hunter2');
    expect(JSON.stringify(sealed)).not.toContain('ABCDE');
    expect(box.open(sealed)).toEqual(secret);
    expect(box.seal(secret).data).not.toBe(sealed.data); // fresh IV each time
  });

  it('refuses a tampered secret and one sealed with another key', () => {
    const sealed = box.seal('x');
    const data = Buffer.from(sealed.data, 'base64');
    data[0] ^= 1;
    expect(() => box.open({ ...sealed, data: data.toString('base64') })).toThrow();
    expect(() => new SecretBox('another-key-0123456789').open(sealed)).toThrow();
  });

  it('derives an 8-character console password per machine, the same in every process with the key', () => {
    const a = box.consolePassword('m-1');
    expect(a).toMatch(/^[A-Za-z0-9_-]{8}$/);
    expect(new SecretBox('unit-test-key-0123456789').consolePassword('m-1')).toBe(a);
    expect(box.consolePassword('m-2')).not.toBe(a);
    expect(new SecretBox('other-key-0123456789').consolePassword('m-1')).not.toBe(a);
  });

  it('derives a stable, locally administered QEMU MAC', () => {
    expect(macFromId('m-1')).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(macFromId('m-1')).toBe(macFromId('m-1'));
    expect(macFromId('m-1')).not.toBe(macFromId('m-2'));
  });
});

describe('config', () => {
  it('uses loudly announced development defaults when secrets are unset', () => {
    const c = loadConfig({});
    expect(c.warnings.join('\n')).toMatch(/DEVELOPMENT-ONLY/);
    expect(c.jwtSecret).toMatch(/DEVELOPMENT-ONLY/);
    expect(c.hostTaskQueue).toBe('host-local');
  });

  it('refuses to start in production without secrets', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(/JWT_SECRET/);
    expect(() =>
      loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(32), SECRETS_KEY: 'y'.repeat(32) }),
    ).toThrow(/ADMIN_EMAIL/);
  });

  it('names every bad variable', () => {
    expect(() => loadConfig({ PORT: 'abc', HOST_NAME: 'Bad Name' })).toThrow(
      /PORT[\s\S]*HOST_NAME|HOST_NAME[\s\S]*PORT/,
    );
  });
});
