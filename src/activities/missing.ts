import { isLibvirtError } from '../libvirt/errors';

/**
 * What `call` returns, or null when it fails with libvirt error `code` (`NO_DOMAIN`, `NO_NETWORK`…): the
 * object is not there. Any other error is rethrown. How the host activities look before they act.
 */
export async function nullIfMissing<T>(code: number, call: () => Promise<T>): Promise<T | null> {
  try {
    return await call();
  } catch (e) {
    if (isLibvirtError(e, code)) return null;
    throw e;
  }
}
