/**
 * Independent oracles for generated libvirt XML, used by the XML unit tests:
 *
 * - libvirt's RelaxNG schemas through `virt-xml-validate` (libvirt-clients + libxml2-utils);
 * - libvirt's own C parser through the in-process test driver (`virsh -c test:///default`), which
 *   needs no daemon and touches no shared state. It also hands back libvirt's re-formatted XML
 *   (KiB units, single quotes, defaults filled in), which the parsers must read.
 *
 * A missing tool fails the test with an explanation; it never skips.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { XmlSpecError } from '../../../src/libvirt/xml';

/** Schema names accepted by virt-xml-validate. */
export type SchemaKind = 'domain' | 'network' | 'nwfilter' | 'nwfilterbinding' | 'storagevol' | 'storagepool';

function which(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const candidate = join(dir, binary);
    if (dir && existsSync(candidate)) return candidate;
  }
  return undefined;
}

function requireTool(binary: string, pkg: string): string {
  const path = which(binary);
  if (!path) {
    throw new Error(
      `${binary} is not installed, so generated XML cannot be checked against libvirt. ` +
        `Install it (Debian: apt-get install --no-install-recommends ${pkg}) and run the tests again.`,
    );
  }
  return path;
}

const workDir = mkdtempSync(join(tmpdir(), 'vmflow-xml-'));
let fileCounter = 0;
// Imported by test files only: clean the temp folder when the importing file is done.
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

/** Writes `xml` to a fresh temporary file and returns its path. */
export function writeTemp(xml: string, ext = 'xml'): string {
  const file = join(workDir, `doc-${process.pid}-${++fileCounter}.${ext}`);
  writeFileSync(file, xml);
  return file;
}

/** Result of a schema validation. */
export interface SchemaResult {
  /** Exit status of virt-xml-validate (0 = valid). */
  status: number | null;
  /** Its combined output. */
  output: string;
}

/** Runs `virt-xml-validate FILE kind` on `xml` and returns the exit status and output. */
export function schemaValidate(xml: string, kind: SchemaKind): SchemaResult {
  const bin = requireTool('virt-xml-validate', 'libvirt-clients');
  requireTool('xmllint', 'libxml2-utils');
  const file = writeTemp(xml);
  const res = spawnSync(bin, [file, kind], { encoding: 'utf8', timeout: 30_000 });
  if (res.error) throw new Error(`could not run virt-xml-validate: ${res.error.message}`);
  return { status: res.status, output: `${res.stdout}${res.stderr}`.trim() };
}

/** Asserts that `xml` is valid against libvirt's `kind` schema, showing the XML when it is not. */
export function expectSchemaValid(xml: string, kind: SchemaKind): void {
  const { status, output } = schemaValidate(xml, kind);
  if (status !== 0) {
    throw new Error(
      `virt-xml-validate ${kind} failed (exit ${String(status)}):\n${output}\n--- XML ---\n${xml}`,
    );
  }
}

/**
 * Runs virsh commands against libvirt's in-process test driver (fresh state per call) and returns
 * stdout. `files` are written to temp files and substituted for `{0}`, `{1}`… in the commands.
 * Throws with virsh's error output when any command fails.
 */
export function virshTestDriver(commands: string[], files: string[] = []): string {
  const bin = requireTool('virsh', 'libvirt-clients');
  const paths = files.map((xml) => writeTemp(xml));
  const script = commands
    .map((c) => c.replace(/\{(\d+)\}/g, (_, i: string) => paths[Number(i)] ?? ''))
    .join('; ');
  const res = spawnSync(bin, ['-q', '-c', 'test:///default', script], { encoding: 'utf8', timeout: 30_000 });
  if (res.error) throw new Error(`could not run virsh: ${res.error.message}`);
  if (res.status !== 0)
    throw new Error(`virsh (test driver) failed: ${res.stderr.trim()}\ncommands: ${script}`);
  return res.stdout;
}

/** Runs `fn` and returns the {@link XmlSpecError} it throws (failing the test otherwise). */
export function specError(fn: () => unknown): XmlSpecError {
  try {
    fn();
  } catch (e) {
    if (e instanceof XmlSpecError) return e;
    throw new Error(`expected an XmlSpecError, got ${String(e)}`);
  }
  throw new Error('expected an XmlSpecError, but nothing was thrown');
}

/** Asserts that `fn` throws an {@link XmlSpecError} for `field`, whose message mentions `pattern`. */
export function expectSpecError(fn: () => unknown, field: string, pattern?: RegExp): void {
  const err = specError(fn);
  expect(err.name).toBe('XmlSpecError');
  expect(err.field).toBe(field);
  if (pattern) expect(err.message).toMatch(pattern);
}
