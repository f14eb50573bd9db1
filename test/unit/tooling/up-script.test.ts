/**
 * `up.sh` prints the development admin and the exact login call (README): they must be the credentials
 * the API really creates on first start without ADMIN_EMAIL/ADMIN_PASSWORD (src/config.ts).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { DEV_ADMIN } from '../../../src/config';

const root = path.resolve(__dirname, '../../..');

describe('the development admin that up.sh and the README announce', () => {
  it.each(['scripts/up.sh', 'README.md', 'scripts/register-guest-image.mjs'])(
    '%s names the DEV_ADMIN e-mail and password',
    (file) => {
      const text = readFileSync(path.join(root, file), 'utf8');
      expect(text).toContain(DEV_ADMIN.email);
      expect(text).toContain(DEV_ADMIN.password);
      expect(text).toContain('/api/auth/login');
    },
  );
});
