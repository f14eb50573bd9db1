/** A libvirt network filter (`native/src/nwfilter.cc`). */
import { type NativeNWFilter } from '../native';

/** A libvirt network filter (ebtables/iptables rules applied to guest interfaces). */
export class NWFilter {
  readonly #native: NativeNWFilter;

  /** @internal Obtained from a {@link Connection}. */
  constructor(native: NativeNWFilter) {
    this.#native = native;
  }

  /** The filter's name. */
  getName(): Promise<string> {
    return this.#native.getName();
  }
  /** The filter's UUID string. */
  getUUID(): Promise<string> {
    return this.#native.getUUID();
  }
  /** The filter XML. */
  getXML(): Promise<string> {
    return this.#native.getXML();
  }
  /** Removes the filter (fails while a binding or another filter uses it). */
  undefine(): Promise<void> {
    return this.#native.undefine();
  }
}
