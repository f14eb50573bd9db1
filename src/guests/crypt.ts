/**
 * SHA-512 crypt (`$6$`, Ulrich Drepper's "Unix crypt using SHA-256 and SHA-512", as glibc's crypt(3) and
 * `openssl passwd -6` implement it), in TypeScript over node:crypto: the seed carries the password's hash,
 * never the password, and no native dependency or child process sees the password either.
 */
import { createHash, randomBytes, type Hash } from 'node:crypto';

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
const ROUNDS_DEFAULT = 5000;
const SALT_MAX = 16;

/** The order in which the 64 digest bytes are encoded, three at a time (from the specification). */
const ORDER: ReadonlyArray<readonly [number, number, number]> = [
  [0, 21, 42],
  [22, 43, 1],
  [44, 2, 23],
  [3, 24, 45],
  [25, 46, 4],
  [47, 5, 26],
  [6, 27, 48],
  [28, 49, 7],
  [50, 8, 29],
  [9, 30, 51],
  [31, 52, 10],
  [53, 11, 32],
  [12, 33, 54],
  [34, 55, 13],
  [56, 14, 35],
  [15, 36, 57],
  [37, 58, 16],
  [59, 17, 38],
  [18, 39, 60],
  [40, 61, 19],
  [62, 20, 41],
];

function b64From24(b2: number, b1: number, b0: number, n: number): string {
  let w = (b2 << 16) | (b1 << 8) | b0;
  let out = '';
  for (let i = 0; i < n; i++) {
    out += ITOA64[w & 0x3f];
    w >>= 6;
  }
  return out;
}

/** `len` bytes of `block` repeated. */
function stretch(block: Buffer, len: number): Buffer {
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i += block.length) block.copy(out, i, 0, Math.min(block.length, len - i));
  return out;
}

const sha512 = (): Hash => createHash('sha512');

/** A random 16-character salt from crypt's alphabet. */
export function randomSalt(): string {
  return [...randomBytes(SALT_MAX)].map((b) => ITOA64[b & 0x3f]).join('');
}

/**
 * The SHA-512 crypt hash of `password` (`$6$<salt>$<86 characters>`, or `$6$rounds=N$…` when `rounds`
 * is not the default 5000). `salt` defaults to 16 random characters; longer salts are cut to 16 and
 * `$` is refused, as crypt(3) does.
 */
export function sha512Crypt(password: string, salt: string = randomSalt(), rounds = ROUNDS_DEFAULT): string {
  if (!Number.isInteger(rounds) || rounds < 1000 || rounds > 999_999_999)
    throw new RangeError('rounds must be an integer from 1000 to 999999999');
  if (salt.includes('$') || salt.includes('\n'))
    throw new RangeError('the salt must not contain $ or a newline');
  const s = Buffer.from(salt.slice(0, SALT_MAX), 'utf8');
  const p = Buffer.from(password, 'utf8');

  const b = sha512().update(p).update(s).update(p).digest();
  const a = sha512().update(p).update(s);
  let cnt: number;
  for (cnt = p.length; cnt > 64; cnt -= 64) a.update(b);
  a.update(b.subarray(0, cnt));
  for (cnt = p.length; cnt > 0; cnt >>= 1) a.update(cnt & 1 ? b : p);
  const aDigest = a.digest();

  const dp = sha512();
  for (let i = 0; i < p.length; i++) dp.update(p);
  const pSeq = stretch(dp.digest(), p.length);
  const ds = sha512();
  for (let i = 0; i < 16 + aDigest[0]!; i++) ds.update(s);
  const sSeq = stretch(ds.digest(), s.length);

  let c = aDigest;
  for (let i = 0; i < rounds; i++) {
    const h = sha512();
    h.update(i & 1 ? pSeq : c);
    if (i % 3) h.update(sSeq);
    if (i % 7) h.update(pSeq);
    h.update(i & 1 ? c : pSeq);
    c = h.digest();
  }

  let encoded = '';
  for (const [x, y, z] of ORDER) encoded += b64From24(c[x]!, c[y]!, c[z]!, 4);
  encoded += b64From24(0, 0, c[63]!, 2);
  const roundsPart = rounds === ROUNDS_DEFAULT ? '' : `rounds=${rounds}$`;
  return `$6$${roundsPart}${s.toString('utf8')}$${encoded}`;
}
