/**
 * Typed errors of the libvirt XML layer.
 *
 * Builders throw {@link XmlSpecError} for invalid input before any XML reaches libvirt, so the API
 * can answer HTTP 400 naming the offending field. Parsers throw {@link XmlParseError} for XML that
 * is malformed or is not the expected kind of document.
 */

/**
 * A spec handed to an XML builder holds an invalid value.
 *
 * Thrown before anything is sent to libvirt. `field` is the path of the offending value inside the
 * spec (for example `interfaces[0].mac` or `rules[2].dstPortEnd`) so the API layer can map it to an
 * HTTP 400 problem that names the field; `message` says what is wrong in plain words.
 */
export class XmlSpecError extends Error {
  public override readonly name = 'XmlSpecError';

  /**
   * @param field - path of the offending value inside the spec (`interfaces[0].mac`).
   * @param reason - what is wrong with it, in words an API client can act on
   *   (`must be a MAC address like 52:54:00:12:34:56, got "zz"`). The error's `message` is
   *   `"<field>: <reason>"`, readable on its own in logs and workflow failures.
   */
  constructor(
    public readonly field: string,
    public readonly reason: string,
  ) {
    super(field ? `${field}: ${reason}` : reason);
    Object.setPrototypeOf(this, new.target.prototype);
  }
}

/**
 * A document handed to an XML parser is not well-formed, declares a DOCTYPE, or is not the kind of
 * document expected (for example a `<network>` given to the domain parser).
 *
 * Parsers read what libvirt returns, so this usually means a bug or a libvirt version mismatch;
 * it is not a client error.
 */
export class XmlParseError extends Error {
  public override readonly name = 'XmlParseError';

  /**
   * @param message - what is wrong with the document.
   * @param cause - the underlying parser error, when there is one.
   */
  constructor(message: string, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    Object.setPrototypeOf(this, new.target.prototype);
  }
}
