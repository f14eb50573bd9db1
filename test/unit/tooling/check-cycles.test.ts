/**
 * The import-cycle check that `npm run lint` runs over src/: it must fail on a cycle (value or type-only,
 * direct or through an index) and pass on a tree without one.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const script = path.resolve(__dirname, '../../../scripts/check-cycles.mjs');

function check(files: Record<string, string>): { status: number | null; out: string } {
  const dir = mkdtempSync(path.join(tmpdir(), 'vmflow-cycles-'));
  try {
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      writeFileSync(path.join(dir, name), text);
    }
    const r = spawnSync(process.execPath, [script, dir], { encoding: 'utf8' });
    return { status: r.status, out: r.stdout + r.stderr };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('scripts/check-cycles.mjs', () => {
  it('passes on a tree without cycles', () => {
    const r = check({
      'a.ts': "import { b } from './b';\nexport const a = b;\n",
      'b.ts': "import { c } from './lib';\nexport const b = c;\n",
      'lib/index.ts': 'export const c = 1;\n',
    });
    expect(r.out).toContain('no import cycles among 3 modules');
    expect(r.status).toBe(0);
  });

  it('fails on a two-module cycle and names both modules', () => {
    const r = check({
      'routes/machines.ts': "import { n } from './networks';\nexport const m = () => n;\n",
      'routes/networks.ts': "import { m } from './machines';\nexport const n = () => m;\n",
    });
    expect(r.status).toBe(1);
    expect(r.out).toMatch(/routes\/machines\.ts -> .*routes\/networks\.ts/);
    expect(r.out).toMatch(/routes\/networks\.ts -> .*routes\/machines\.ts/);
  });

  it('fails on a longer cycle through an index module and a re-export', () => {
    const r = check({
      'a.ts': "import { b } from './b';\nexport const a = b;\n",
      'b.ts': "export { c as b } from './c';\n",
      'c/index.ts':
        "import type { A } from '../a';\nexport const c = 1 as unknown as A;\nexport type X = 1;\n",
    });
    expect(r.status).toBe(1);
    expect(r.out).toContain('3 modules');
  });
});
