/**
 * Pure builders and parsers for libvirt XML (domain, network, nwfilter, nwfilter binding, storage
 * volume and pool), with the shared validators and typed errors. No I/O: activities pass the
 * strings to the libvirt binding.
 *
 * Builders validate their whole input first and throw {@link XmlSpecError} naming the offending
 * field (mapped to HTTP 400 by the API); user text only ever becomes escaped text nodes.
 */
export * from './errors';
export * from './validate';
export * from './common';
export * from './domain';
export * from './network';
export * from './nwfilter';
export * from './storage';
/** Parses any libvirt XML document strictly (no DOCTYPE) and returns its root element. */
export { parseRoot as parseXmlRoot } from './dom';
