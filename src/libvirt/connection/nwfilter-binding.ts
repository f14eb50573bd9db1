/** A libvirt network-filter binding (`native/src/nwfilter.cc`). */
import { type NativeNWFilterBinding } from '../native';

/** A filter bound to one port (guest interface): the rules libvirt installed for it. */
export class NWFilterBinding {
  readonly #native: NativeNWFilterBinding;

  /** @internal Obtained from a {@link Connection}. */
  constructor(native: NativeNWFilterBinding) {
    this.#native = native;
  }

  /** The host-side port device (`vnet0`, ...). */
  getPortDev(): Promise<string> {
    return this.#native.getPortDev();
  }
  /** The name of the bound filter. */
  getFilterName(): Promise<string> {
    return this.#native.getFilterName();
  }
  /** The binding XML (owner, port device, MAC, filter and parameters). */
  getXML(): Promise<string> {
    return this.#native.getXML();
  }
  /** Removes the binding and its firewall rules. */
  delete(): Promise<void> {
    return this.#native.delete();
  }
}
