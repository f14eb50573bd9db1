/**
 * How activities classify their failures. Temporal retries an activity that throws anything but a
 * non-retryable `ApplicationFailure`: a permanent answer (validation, a refused request, a missing
 * resource) must say so, or the saga would retry it until the activity's timeout.
 */
import { ApplicationFailure } from '@temporalio/common';
import { QueryFailedError } from 'typeorm';
import { isLibvirtError, LibvirtErrorCode } from '../libvirt/errors';
import { FailureType } from '../workflows/shared';

/** A failure retrying cannot fix: non-retryable, typed (a `FailureType`), details as its first entry. */
export function permanent(
  type: string,
  message: string,
  details?: Record<string, unknown>,
): ApplicationFailure {
  return ApplicationFailure.create({
    type,
    message,
    nonRetryable: true,
    details: details ? [details] : undefined,
  });
}

/** MariaDB's answer to an insert that breaks a unique key. */
export function isDuplicate(err: unknown): boolean {
  return err instanceof QueryFailedError && (err as unknown as { code?: string }).code === 'ER_DUP_ENTRY';
}

/**
 * libvirt's answers about a definition itself (its XML, a subnet or bridge the host already has, a qdisc the
 * kernel lacks): retrying cannot help, so they fail the step for good (RefusedError). Anything else (the
 * connection, the daemon) is thrown as is and retried.
 */
const REFUSED_BY_HOST = [
  LibvirtErrorCode.INTERNAL_ERROR,
  LibvirtErrorCode.OPERATION_FAILED,
  LibvirtErrorCode.INVALID_ARG,
  LibvirtErrorCode.XML_ERROR,
  LibvirtErrorCode.XML_DETAIL,
  LibvirtErrorCode.CONFIG_UNSUPPORTED,
  LibvirtErrorCode.NETWORK_EXIST,
];

/** `e` as a permanent Refused failure when libvirt refused the request itself; otherwise `e` (retried). */
export function refusedByHost(e: unknown, what: string): unknown {
  if (!REFUSED_BY_HOST.some((code) => isLibvirtError(e, code))) return e;
  return permanent(FailureType.Refused, `${what}: ${(e as Error).message}`);
}
