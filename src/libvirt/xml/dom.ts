/**
 * Tiny DOM helpers shared by the libvirt XML builders and parsers, on top of `@xmldom/xmldom`.
 *
 * Builders create nodes through the DOM API and serialise with `requireWellFormed`, so user text
 * is always escaped by the serializer and can never become markup. Parsers refuse malformed
 * documents and DOCTYPEs (no entity tricks) and throw {@link XmlParseError}.
 */
import { DOMImplementation, DOMParser, XMLSerializer, type Document, type Element } from '@xmldom/xmldom';
import { XmlParseError } from './errors';

/** Attribute values accepted by {@link addElement}; `undefined` means "leave the attribute out". */
export type AttrValue = string | number | undefined;

/**
 * Creates an empty document whose root element is `rootName` (in namespace `ns` when given, with
 * a prefixed qualified name such as `vmflow:machine`), and returns that root.
 */
export function createRoot(rootName: string, ns: string | null = null): Element {
  const doc = new DOMImplementation().createDocument(ns, rootName, null);
  const root = doc.documentElement;
  if (!root) throw new Error(`could not create <${rootName}>`);
  return root;
}

/** The document owning `node` (xmldom types it as nullable; only a Document itself has none). */
function ownerDoc(node: Element): Document {
  const doc = node.ownerDocument;
  if (!doc) throw new Error(`<${node.nodeName}> has no owner document`);
  return doc;
}

/** Sets the attributes in `attrs` on `el`, skipping `undefined` values. */
export function setAttrs(el: Element, attrs: Record<string, AttrValue>): Element {
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined) el.setAttribute(name, String(value));
  }
  return el;
}

/**
 * Appends `<name attrs…>text</name>` to `parent` and returns the new element. `text` is added as a
 * text node (escaped on serialisation), never parsed as markup.
 */
export function addElement(
  parent: Element,
  name: string,
  attrs: Record<string, AttrValue> = {},
  text?: string | number,
): Element {
  const doc = ownerDoc(parent);
  const el = doc.createElement(name);
  setAttrs(el, attrs);
  if (text !== undefined) el.appendChild(doc.createTextNode(String(text)));
  parent.appendChild(el);
  return el;
}

/** Like {@link addElement} for an element in namespace `ns` (qualified name `prefix:local`). */
export function addElementNS(parent: Element, ns: string, qualifiedName: string, text?: string): Element {
  const doc = ownerDoc(parent);
  const el = doc.createElementNS(ns, qualifiedName);
  if (text !== undefined) el.appendChild(doc.createTextNode(text));
  parent.appendChild(el);
  return el;
}

/**
 * Indents element-only content with whitespace text nodes, two spaces per level, so generated XML
 * is readable in logs and diffs. Elements holding text (titles, descriptions, metadata values) are
 * left alone, so their content is byte-for-byte what the caller gave.
 */
function indent(el: Element, depth: number): void {
  const kids = Array.from(el.childNodes);
  if (kids.length === 0 || kids.some((k) => k.nodeType !== k.ELEMENT_NODE)) return;
  const doc = ownerDoc(el);
  const pad = '\n' + '  '.repeat(depth + 1);
  for (const kid of kids) {
    el.insertBefore(doc.createTextNode(pad), kid);
    indent(kid as Element, depth + 1);
  }
  el.appendChild(doc.createTextNode('\n' + '  '.repeat(depth)));
}

/**
 * Serialises the document that owns `root` to a string (no XML declaration, indented).
 * `requireWellFormed` makes the serializer throw rather than emit ill-formed XML, a second line of
 * defence behind the validators.
 */
export function serialize(root: Element): string {
  indent(root, 0);
  return new XMLSerializer().serializeToString(root, { requireWellFormed: true }) + '\n';
}

/**
 * Parses `xml` and returns its root element, which must be named `rootName`.
 * Throws {@link XmlParseError} for malformed XML, a DOCTYPE, or another root element.
 */
export function parseRoot(xml: string, rootName: string): Element {
  if (typeof xml !== 'string')
    throw new XmlParseError(`expected <${rootName}> XML as a string, got ${typeof xml}`);
  // A DOCTYPE can only sit in the prolog, before the root element: refuse it (no entity tricks).
  const rootStart = xml.search(/<[A-Za-z_]/);
  const prolog = rootStart < 0 ? xml : xml.slice(0, rootStart);
  if (/<!DOCTYPE/i.test(prolog)) throw new XmlParseError(`<${rootName}> XML must not contain a DOCTYPE`);
  let doc: Document;
  try {
    doc = new DOMParser({
      // xmldom is lenient (it only warns about unquoted attributes, for instance): libvirt writes
      // well-formed XML, so anything it reports means the input is not what libvirt wrote.
      onError: (_level, message) => {
        throw new Error(message);
      },
    }).parseFromString(xml, 'text/xml');
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new XmlParseError(`malformed <${rootName}> XML: ${detail.split('\n')[0]}`, err);
  }
  if (doc.doctype) throw new XmlParseError(`<${rootName}> XML must not contain a DOCTYPE`);
  const root = doc.documentElement;
  if (!root) throw new XmlParseError(`malformed <${rootName}> XML: no root element`);
  if (root.nodeName !== rootName) {
    throw new XmlParseError(`expected a <${rootName}> document, got <${root.nodeName}>`);
  }
  return root;
}

/** Child elements of `el`, optionally only those named `name` (no namespace). */
export function children(el: Element, name?: string): Element[] {
  const out: Element[] = [];
  for (const node of Array.from(el.childNodes)) {
    if (node.nodeType === node.ELEMENT_NODE && (name === undefined || node.nodeName === name)) {
      out.push(node as Element);
    }
  }
  return out;
}

/** The first child element of `el` named `name`, if any. */
export function child(el: Element, name: string): Element | undefined {
  return children(el, name)[0];
}

/** Follows a path of child element names (`child(child(el, a), b)…`). */
export function descend(el: Element | undefined, ...names: string[]): Element | undefined {
  let cur = el;
  for (const name of names) {
    if (!cur) return undefined;
    cur = child(cur, name);
  }
  return cur;
}

/** The value of attribute `name`, or `undefined` when absent. */
export function attr(el: Element | undefined, name: string): string | undefined {
  if (!el || !el.hasAttribute(name)) return undefined;
  return el.getAttribute(name) ?? undefined;
}

/** The concatenated text content of `el`, or `undefined` when `el` is absent. */
export function textOf(el: Element | undefined): string | undefined {
  return el ? (el.textContent ?? '') : undefined;
}

/** Text of child `name`, trimmed (for numbers and identifiers, not free text). */
export function childText(el: Element, name: string): string | undefined {
  return textOf(child(el, name))?.trim();
}

/** Parses a decimal integer from `text`; throws {@link XmlParseError} mentioning `what` if it is not one. */
export function parseIntStrict(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  const trimmed = text.trim();
  if (!/^-?[0-9]+$/.test(trimmed))
    throw new XmlParseError(`${what} is not an integer: ${JSON.stringify(text)}`);
  return Number(trimmed);
}

/** Integer attribute `name` of `el`, or `undefined`. */
export function intAttr(el: Element | undefined, name: string, what = name): number | undefined {
  return parseIntStrict(attr(el, name), what);
}

/**
 * Copies the entries of `values` that are not `undefined` onto `target`, so parsed objects carry
 * only the optional fields that the XML actually has (and compare equal to the spec they came from).
 */
export function assignDefined<T extends object>(target: T, values: Partial<T>): T {
  for (const [key, value] of Object.entries(values)) {
    if (value !== undefined) (target as Record<string, unknown>)[key] = value;
  }
  return target;
}

/** A required string: throws {@link XmlParseError} when `value` is `undefined`. */
export function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new XmlParseError(`missing ${what}`);
  return value;
}

/**
 * libvirt's size units (`scaledInteger`): bytes, KB=1000, KiB/k/K=1024, MB, MiB/M, …
 * Used to read `<memory unit=…>` and `<capacity unit=…>`, which libvirt reports in KiB/bytes.
 */
const UNIT_FACTORS: Record<string, number> = {
  b: 1,
  bytes: 1,
  kb: 1e3,
  k: 2 ** 10,
  kib: 2 ** 10,
  mb: 1e6,
  m: 2 ** 20,
  mib: 2 ** 20,
  gb: 1e9,
  g: 2 ** 30,
  gib: 2 ** 30,
  tb: 1e12,
  t: 2 ** 40,
  tib: 2 ** 40,
  pb: 1e15,
  p: 2 ** 50,
  pib: 2 ** 50,
  eb: 1e18,
  e: 2 ** 60,
  eib: 2 ** 60,
};

/** Reads a libvirt scaled integer element (`<memory unit='KiB'>65536</memory>`) in bytes. */
export function scaledBytes(el: Element | undefined, defaultUnit: string, what: string): number | undefined {
  if (!el) return undefined;
  const value = required(parseIntStrict(textOf(el), what), what);
  const unit = (attr(el, 'unit') ?? defaultUnit).toLowerCase();
  const factor = UNIT_FACTORS[unit];
  if (factor === undefined) throw new XmlParseError(`${what} has an unknown unit '${unit}'`);
  return value * factor;
}
