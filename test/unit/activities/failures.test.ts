/** How activity failures are classified for Temporal's retries: permanent answers are non-retryable. */
import { ApplicationFailure } from '@temporalio/common';
import { QueryFailedError } from 'typeorm';
import { isDuplicate, permanent, refusedByHost } from '../../../src/activities/failures';
import { LibvirtError, LibvirtErrorCode } from '../../../src/libvirt/errors';
import { FailureType } from '../../../src/workflows/shared';

const libvirtError = (code: number) =>
  new LibvirtError(`libvirt says ${code}`, { code, domain: 0, level: 2 });

describe('activity failure classification', () => {
  it('permanent: a non-retryable ApplicationFailure with its type and details', () => {
    const f = permanent(FailureType.NotFound, 'machine not found', { field: 'machineId' });
    expect(f).toBeInstanceOf(ApplicationFailure);
    expect(f).toMatchObject({
      type: FailureType.NotFound,
      nonRetryable: true,
      details: [{ field: 'machineId' }],
    });
    expect(permanent(FailureType.Validation, 'no').details).toBeUndefined();
  });

  it.each([
    LibvirtErrorCode.INTERNAL_ERROR,
    LibvirtErrorCode.OPERATION_FAILED,
    LibvirtErrorCode.INVALID_ARG,
    LibvirtErrorCode.XML_ERROR,
    LibvirtErrorCode.XML_DETAIL,
    LibvirtErrorCode.CONFIG_UNSUPPORTED,
    LibvirtErrorCode.NETWORK_EXIST,
  ])('libvirt refusing the request itself (code %s) fails for good as Refused', (code) => {
    const f = refusedByHost(libvirtError(code), 'libvirt could not start n1');
    expect(f).toMatchObject({ type: FailureType.Refused, nonRetryable: true });
    expect((f as Error).message).toMatch(/^libvirt could not start n1: libvirt says/);
  });

  it.each([LibvirtErrorCode.NO_CONNECT, LibvirtErrorCode.SYSTEM_ERROR])(
    'any other libvirt error (code %s) is thrown as is, so Temporal retries it',
    (code) => {
      const e = libvirtError(code);
      expect(refusedByHost(e, 'x')).toBe(e);
    },
  );

  it('a plain error is thrown as is (retried)', () => {
    const e = new Error('socket closed');
    expect(refusedByHost(e, 'x')).toBe(e);
  });

  it('isDuplicate: only MariaDB duplicate-key errors', () => {
    const dup = Object.assign(new QueryFailedError('INSERT', [], new Error('Duplicate entry')), {
      code: 'ER_DUP_ENTRY',
    });
    const other = Object.assign(new QueryFailedError('INSERT', [], new Error('lock')), {
      code: 'ER_LOCK_DEADLOCK',
    });
    expect(isDuplicate(dup)).toBe(true);
    expect(isDuplicate(other)).toBe(false);
    expect(isDuplicate(Object.assign(new Error('x'), { code: 'ER_DUP_ENTRY' }))).toBe(false);
  });
});
