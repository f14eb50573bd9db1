/**
 * Every failure is a LibvirtError carrying libvirt's code, domain and level, with named codes that
 * callers match for idempotency ("already gone", "not found").
 */
import {
  Connection,
  LibvirtError,
  LibvirtErrorCode,
  isLibvirtError,
  type StoragePool,
} from '../../../src/libvirt/connection';
import { LibvirtErrorDomain, LibvirtErrorLevel } from '../../../src/libvirt/errors';
import {
  LIBVIRT_URI,
  createPool,
  domainType,
  domainXml,
  removeDomain,
  removePool,
  uniqueName,
} from './support';

async function failure(p: Promise<unknown>): Promise<LibvirtError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof LibvirtError) return e;
    throw new Error(`expected a LibvirtError, got ${String(e)}`);
  }
  throw new Error('expected a rejection');
}

describe('Typed libvirt errors (libvirt binding)', () => {
  let conn: Connection;
  let pool: StoragePool | undefined;

  beforeAll(async () => {
    conn = await Connection.open(LIBVIRT_URI);
    pool = await createPool(conn);
  });

  afterAll(async () => {
    await removePool(pool);
    await conn?.close();
  });

  it.each([
    ['domain', 'NO_DOMAIN', () => conn.lookupDomainByName(uniqueName('missing'))],
    ['domain by UUID', 'NO_DOMAIN', () => conn.lookupDomainByUUID('6c0a4f64-5e4c-4b1e-9d1e-000000000001')],
    ['network', 'NO_NETWORK', () => conn.lookupNetworkByName(uniqueName('missing'))],
    ['nwfilter', 'NO_NWFILTER', () => conn.lookupNWFilterByName(uniqueName('missing'))],
    ['nwfilter binding', 'NO_NWFILTER_BINDING', () => conn.lookupNWFilterBindingByPortDev('vmflow-nope')],
    ['pool', 'NO_STORAGE_POOL', () => conn.lookupPoolByName(uniqueName('missing'))],
    ['volume by path', 'NO_STORAGE_VOL', () => conn.lookupVolumeByPath('/var/lib/vmflow/no-such.qcow2')],
    ['volume by name', 'NO_STORAGE_VOL', () => pool!.lookupVolumeByName('no-such-volume.qcow2')],
  ] as const)('a missing %s rejects with %s', async (_what, codeName, lookup) => {
    const e = await failure(lookup());
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('LibvirtError');
    expect(e.codeName).toBe(codeName);
    expect(e.code).toBe(LibvirtErrorCode[codeName]);
    expect(e.level).toBe(LibvirtErrorLevel.ERROR);
    expect(e.domainName).not.toMatch(/^UNKNOWN/);
    expect(e.message.length).toBeGreaterThan(0);
    expect(isLibvirtError(e, LibvirtErrorCode[codeName])).toBe(true);
    expect(isLibvirtError(e, LibvirtErrorCode.INTERNAL_ERROR)).toBe(false);
  });

  it('reports the raising module (error domain)', async () => {
    const e = await failure(conn.lookupDomainByName(uniqueName('missing')));
    expect(e.domain).toBe(LibvirtErrorDomain.QEMU);
    expect(e.domainName).toBe('QEMU');
    const s = await failure(conn.lookupPoolByName(uniqueName('missing')));
    expect(s.domainName).toBe('STORAGE');
  });

  it('rejects malformed and invalid XML with a LibvirtError', async () => {
    const malformed = await failure(conn.defineDomain('<domain type="qemu"><name>x</name'));
    expect(malformed.codeName).toBe('XML_DETAIL'); // libxml2's parse error
    expect(malformed.domainName).toBe('DOMAIN'); // raised while parsing domain XML

    // Well-formed but not a valid domain: the schema check names the problem.
    const invalid = await failure(
      conn.defineDomain(`<domain type='qemu'><name>${uniqueName('bad')}</name><vcpu>many</vcpu></domain>`, {
        validate: true,
      }),
    );
    expect(invalid.codeName).toBe('XML_INVALID_SCHEMA');

    const badNet = await failure(conn.defineNetwork('<network><name></name></network>'));
    expect(isLibvirtError(badNet)).toBe(true);
    const badFilter = await failure(conn.defineNWFilter('<filter>'));
    expect(isLibvirtError(badFilter)).toBe(true);
  });

  it('rejects operations invalid in the current state with OPERATION_INVALID', async () => {
    const dom = await conn.defineDomain(domainXml({ name: uniqueName('err'), type: domainType() }));
    try {
      expect((await failure(dom.resume())).code).toBe(LibvirtErrorCode.OPERATION_INVALID);
      expect((await failure(dom.destroy())).code).toBe(LibvirtErrorCode.OPERATION_INVALID);
      expect((await failure(dom.qemuAgentCommand('{"execute":"guest-ping"}', 1))).code).toBe(
        LibvirtErrorCode.OPERATION_INVALID,
      );
    } finally {
      await removeDomain(dom);
    }
  });

  it('rejects calls on a closed connection and on its objects with INVALID_CONN', async () => {
    const other = await Connection.open(LIBVIRT_URI);
    const p = await other.lookupPoolByName(await pool!.getName());
    await other.close();
    expect((await failure(other.getHostname())).codeName).toBe('INVALID_CONN');
    expect((await failure(other.lookupPoolByName('x'))).codeName).toBe('INVALID_CONN');
    expect((await failure(p.getInfo())).codeName).toBe('INVALID_CONN');
  });
});
