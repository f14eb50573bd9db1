/**
 * Windows `autounattend.xml`, pure, written with the XML library of the libvirt builders (@xmldom/xmldom):
 * names and keys are user input and only ever become escaped text nodes.
 *
 * Windows Setup reads `autounattend.xml` from the root of any removable medium, so the seed ISO's label
 * does not matter. The file answers the passes of a generalised (sysprepped) image's first boot —
 * `specialize` (computer name, product key) and `oobeSystem` (locale, the account and its password, OOBE
 * pages skipped) — and the `windowsPE` pass's language and EULA for an installation medium (disk layout
 * is not answered: installing from an ISO still asks for the disk).
 *
 * Passwords are stored the way Windows System Image Manager "hides" them (`PlainText` false: base64 of
 * UTF-16LE `password + "Password"`, or `+ "AdministratorPassword"`). That is obfuscation, not encryption:
 * the seed volume is private to the machine and removed with it.
 */
import { DOMImplementation, XMLSerializer, type Element } from '@xmldom/xmldom';
import { SeedSpecError } from './cloud-init';
import { windowsUserProblem } from './provisioning';

/** File name Windows Setup looks for on removable media. */
export const UNATTEND_FILE = 'autounattend.xml';
/** Volume label of the unattend ISO (any label works; this one says what it is). */
export const UNATTEND_LABEL = 'UNATTEND';
/** The answer file's namespace. */
export const UNATTEND_NS = 'urn:schemas-microsoft-com:unattend';
const WCM_NS = 'http://schemas.microsoft.com/WMIConfig/2002/State';

/** What the answer file is built from. The password is in clear here: only the seed activity holds it. */
export interface UnattendSpec {
  /** Becomes the computer name (NetBIOS rules: ≤ 15 characters, not all digits; see {@link computerName}). */
  hostname: string;
  /** Local account to create in the Administrators group; absent or `Administrator`: the built-in one. */
  username?: string;
  /** The account's password. */
  password?: string;
  /** Product key XXXXX-XXXXX-XXXXX-XXXXX-XXXXX. */
  productKey?: string;
  /** Locale for input, system, UI and user (default `en-US`). */
  locale?: string;
  /** Windows time zone id (default `UTC`). */
  timeZone?: string;
}

/**
 * The Windows computer name for a host name: its first 15 characters without a trailing `-`, upper case;
 * a name of digits only (which Windows refuses) gets a `VM-` prefix.
 */
export function computerName(hostname: string): string {
  let name = hostname.slice(0, 15).replace(/-+$/, '').toUpperCase();
  if (/^[0-9]*$/.test(name)) name = `VM-${name}`.slice(0, 15).replace(/-+$/, '');
  return name;
}

/** The obfuscated form Windows expects with `PlainText` false. */
export function hidePassword(password: string, element: 'Password' | 'AdministratorPassword'): string {
  return Buffer.from(password + element, 'utf16le').toString('base64');
}

const COMPONENT = {
  processorArchitecture: 'amd64',
  publicKeyToken: '31bf3856ad364e35',
  language: 'neutral',
  versionScope: 'nonSxS',
};

function el(parent: Element, name: string, text?: string, attrs: Record<string, string> = {}): Element {
  const doc = parent.ownerDocument!;
  const e = doc.createElementNS(UNATTEND_NS, name);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('wcm:')) e.setAttributeNS(WCM_NS, k, v);
    else e.setAttribute(k, v);
  }
  if (text !== undefined) e.appendChild(doc.createTextNode(text));
  parent.appendChild(e);
  return e;
}

function component(settings: Element, name: string): Element {
  return el(settings, 'component', undefined, { name, ...COMPONENT });
}

function locales(parent: Element, locale: string): void {
  el(parent, 'InputLocale', locale);
  el(parent, 'SystemLocale', locale);
  el(parent, 'UILanguage', locale);
  el(parent, 'UserLocale', locale);
}

/** Builds `autounattend.xml` (UTF-8, with its XML declaration). */
export function buildUnattendXml(spec: UnattendSpec): string {
  const locale = spec.locale ?? 'en-US';
  if (!/^[a-z]{2,3}-[A-Za-z0-9]{2,8}$/.test(locale))
    throw new SeedSpecError('locale', 'locale must look like en-US');
  const timeZone = spec.timeZone ?? 'UTC';
  if (!/^[A-Za-z0-9 ()+.-]{1,64}$/.test(timeZone))
    throw new SeedSpecError('timeZone', 'timeZone must be a Windows time zone id');
  if (spec.productKey !== undefined && !/^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$/.test(spec.productKey))
    throw new SeedSpecError('productKey', 'productKey must be XXXXX-XXXXX-XXXXX-XXXXX-XXXXX');
  const builtIn = spec.username === undefined || spec.username.toLowerCase() === 'administrator';
  if (!builtIn) {
    const problem = windowsUserProblem(spec.username!);
    if (problem) throw new SeedSpecError('username', `username ${problem}`);
  }

  const doc = new DOMImplementation().createDocument(UNATTEND_NS, 'unattend', null);
  const root = doc.documentElement!;
  root.setAttributeNS('http://www.w3.org/2000/xmlns/', 'xmlns:wcm', WCM_NS);

  const pe = el(root, 'settings', undefined, { pass: 'windowsPE' });
  const peIntl = component(pe, 'Microsoft-Windows-International-Core-WinPE');
  el(el(peIntl, 'SetupUILanguage'), 'UILanguage', locale);
  locales(peIntl, locale);
  const setup = component(pe, 'Microsoft-Windows-Setup');
  const userData = el(setup, 'UserData');
  el(userData, 'AcceptEula', 'true');
  if (spec.productKey) {
    const key = el(userData, 'ProductKey');
    el(key, 'Key', spec.productKey);
    el(key, 'WillShowUI', 'OnError');
  }

  const specialize = el(root, 'settings', undefined, { pass: 'specialize' });
  const shell = component(specialize, 'Microsoft-Windows-Shell-Setup');
  el(shell, 'ComputerName', computerName(spec.hostname));
  if (spec.productKey) el(shell, 'ProductKey', spec.productKey);
  el(shell, 'TimeZone', timeZone);

  const oobe = el(root, 'settings', undefined, { pass: 'oobeSystem' });
  locales(component(oobe, 'Microsoft-Windows-International-Core'), locale);
  const oobeShell = component(oobe, 'Microsoft-Windows-Shell-Setup');
  const pages = el(oobeShell, 'OOBE');
  el(pages, 'HideEULAPage', 'true');
  el(pages, 'HideOEMRegistrationScreen', 'true');
  el(pages, 'HideOnlineAccountScreens', 'true');
  el(pages, 'HideWirelessSetupInOOBE', 'true');
  el(pages, 'HideLocalAccountScreen', 'true');
  el(pages, 'NetworkLocation', 'Work');
  el(pages, 'ProtectYourPC', '3');
  el(pages, 'SkipMachineOOBE', 'true');
  el(pages, 'SkipUserOOBE', 'true');
  const accounts = el(oobeShell, 'UserAccounts');
  if (spec.password !== undefined) {
    const admin = el(accounts, 'AdministratorPassword');
    el(admin, 'Value', hidePassword(spec.password, 'AdministratorPassword'));
    el(admin, 'PlainText', 'false');
  }
  if (!builtIn) {
    const list = el(accounts, 'LocalAccounts');
    const account = el(list, 'LocalAccount', undefined, { 'wcm:action': 'add' });
    el(account, 'Name', spec.username!);
    el(account, 'DisplayName', spec.username!);
    el(account, 'Group', 'Administrators');
    if (spec.password !== undefined) {
      const pw = el(account, 'Password');
      el(pw, 'Value', hidePassword(spec.password, 'Password'));
      el(pw, 'PlainText', 'false');
    }
  }
  el(oobeShell, 'TimeZone', timeZone);

  return `<?xml version="1.0" encoding="utf-8"?>\n${new XMLSerializer().serializeToString(doc, { requireWellFormed: true })}\n`;
}
