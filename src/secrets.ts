/**
 * Secrets that must never appear in clear text in logs, events or workflow history.
 * - Guest credentials (the user's password, a product key) are sealed (AES-256-GCM) by whoever starts
 *   the workflow; the workflow carries only the sealed form, and the machine row stores it.
 * - Console (VNC) passwords are derived (HMAC) from the machine id: never stored, never in history, and
 *   the same in every process that holds the key. VNC itself only uses 8 characters.
 * The key comes only from SECRETS_KEY; without it a loudly-announced development key is used.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from 'node:crypto';

/** Development-only key material, used when SECRETS_KEY is unset. */
export const DEV_SECRETS_KEY = 'vmflow-DEVELOPMENT-ONLY-secrets-key-do-not-use-in-production';

/** A sealed secret: safe to put in workflow inputs, events and rows. */
export interface SealedSecret {
  v: 1;
  iv: string;
  tag: string;
  data: string;
}

/** Seals and opens secrets with one key. */
export class SecretBox {
  private readonly key: Buffer;

  constructor(keyMaterial: string) {
    this.key = createHash('sha256').update(keyMaterial).digest();
  }

  /** Seals a JSON value. */
  seal(value: unknown): SealedSecret {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const data = Buffer.concat([cipher.update(JSON.stringify(value), 'utf8'), cipher.final()]);
    return {
      v: 1,
      iv: iv.toString('base64'),
      tag: cipher.getAuthTag().toString('base64'),
      data: data.toString('base64'),
    };
  }

  /** Opens a sealed value; throws when it was tampered with or sealed with another key. */
  open<T>(sealed: SealedSecret): T {
    const decipher = createDecipheriv('aes-256-gcm', this.key, Buffer.from(sealed.iv, 'base64'));
    decipher.setAuthTag(Buffer.from(sealed.tag, 'base64'));
    const plain = Buffer.concat([decipher.update(Buffer.from(sealed.data, 'base64')), decipher.final()]);
    return JSON.parse(plain.toString('utf8')) as T;
  }

  /** The console (VNC) password of a machine: 8 URL-safe characters derived from its id. */
  consolePassword(machineId: string): string {
    return createHmac('sha256', this.key).update(`console:${machineId}`).digest('base64url').slice(0, 8);
  }
}

/** A deterministic, locally administered MAC (52:54:00 is QEMU's prefix) derived from a machine id. */
export function macFromId(machineId: string): string {
  const h = createHash('sha256').update(`mac:${machineId}`).digest();
  return ['52', '54', '00', ...[h[0], h[1], h[2]].map((b) => b.toString(16).padStart(2, '0'))].join(':');
}
