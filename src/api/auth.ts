/**
 * Authentication: bcrypt password hashes, HS256 JWTs signed with the configured secret, the bearer
 * middleware (the caller is reloaded from the database on every request, so a deleted user or a changed
 * role takes effect at once), and the first admin created on first start.
 */
import { createSecretKey, type KeyObject, randomUUID } from 'node:crypto';
import bcrypt from 'bcryptjs';
import { type NextFunction, type Request, type Response } from 'express';
import jwt from 'jsonwebtoken';
import { type Logger } from 'pino';
import { type DataSource } from 'typeorm';
import { User } from '../entities/user';
import { publishEvent } from '../events/publish';
import { unauthorized } from './errors';
import { loadPrincipal, type Principal } from './permissions';

/** bcrypt cost for stored passwords. */
export const BCRYPT_ROUNDS = 10;
/** Lifetime of issued tokens. */
export const TOKEN_TTL = '12h';

/** What a token carries. */
interface TokenClaims {
  sub: string;
  role: string;
}

/** Hashes a password for storage. */
export function hashPassword(password: string, rounds = BCRYPT_ROUNDS): Promise<string> {
  return bcrypt.hash(password, rounds);
}

// Compared against when the e-mail is unknown, so that a login takes as long either way.
const DUMMY_HASH = bcrypt.hashSync('vmflow-no-such-user', 4);

/** Checks credentials; returns the user or null (same timing whether or not the e-mail exists). */
export async function verifyCredentials(
  ds: DataSource,
  email: string,
  password: string,
): Promise<User | null> {
  const user = await ds.getRepository(User).findOne({ where: { email: email.toLowerCase() } });
  const ok = await bcrypt.compare(password, user?.passwordHash ?? DUMMY_HASH);
  return user && ok ? user : null;
}

// jsonwebtoken turns a string secret into a KeyObject on every call; do it once per secret.
const keys = new Map<string, KeyObject>();
function keyOf(secret: string): KeyObject {
  let key = keys.get(secret);
  if (!key) keys.set(secret, (key = createSecretKey(Buffer.from(secret, 'utf8'))));
  return key;
}

/** Signs a token for a user. */
export function signToken(
  secret: string,
  user: Pick<User, 'id' | 'role'>,
  expiresIn: string = TOKEN_TTL,
): string {
  return jwt.sign({ role: user.role } satisfies Omit<TokenClaims, 'sub'>, keyOf(secret), {
    algorithm: 'HS256',
    subject: user.id,
    expiresIn: expiresIn as jwt.SignOptions['expiresIn'],
  });
}

/** Verifies a token; returns the user id, or null when it is missing, malformed, expired or forged. */
export function verifyToken(secret: string, token: string | undefined | null): string | null {
  if (!token) return null;
  try {
    const claims = jwt.verify(token, keyOf(secret), { algorithms: ['HS256'] }) as Partial<TokenClaims>;
    return typeof claims.sub === 'string' ? claims.sub : null;
  } catch {
    return null;
  }
}

/** The token of an `Authorization: Bearer …` header. */
export function bearerToken(header: string | undefined): string | null {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return m ? m[1]! : null;
}

/** The principal a route handler runs for (set by {@link authenticate}). */
export function principalOf(req: Request): Principal {
  const p = (req as Request & { principal?: Principal }).principal;
  if (!p) throw unauthorized();
  return p;
}

/**
 * Principals by user id, cached briefly. Entries are dropped as soon as this process's relay sees a
 * `users:*` or `departments:*` event (role, membership or deletion changed), and the API's own writes
 * drop them at once; `ttlMs` bounds staleness for changes made behind the API's back.
 */
export class PrincipalCache {
  private readonly entries = new Map<string, { at: number; value: Promise<Principal | null> }>();

  constructor(
    private readonly ds: DataSource,
    private readonly ttlMs = 10_000,
    private readonly max = 10_000,
  ) {}

  /** The principal of a user (null: no such user). */
  get(userId: string): Promise<Principal | null> {
    const hit = this.entries.get(userId);
    if (hit && Date.now() - hit.at < this.ttlMs) return hit.value;
    const value = loadPrincipal(this.ds, userId);
    if (this.entries.size >= this.max) this.entries.clear();
    this.entries.set(userId, { at: Date.now(), value });
    value.catch(() => this.entries.delete(userId));
    return value;
  }

  /** Drops one user, or everyone. */
  invalidate(userId?: string): void {
    if (userId) this.entries.delete(userId);
    else this.entries.clear();
  }
}

/** Middleware: requires a valid bearer token of an existing user. */
export function authenticate(principals: PrincipalCache, secret: string) {
  return async (req: Request, _res: Response, next: NextFunction): Promise<void> => {
    const userId = verifyToken(secret, bearerToken(req.headers.authorization));
    const principal = userId ? await principals.get(userId) : null;
    if (!principal) throw unauthorized();
    (req as Request & { principal?: Principal }).principal = principal;
    next();
  };
}

/**
 * Creates the configured admin on first start (when no ADMIN exists yet). Returns whether it did.
 * The development defaults are announced by `loadConfig`'s warnings, printed by main.
 */
export async function ensureAdmin(
  ds: DataSource,
  admin: { email: string; password: string },
  logger?: Logger,
): Promise<boolean> {
  return ds.transaction(async (m) => {
    if (await m.exists(User, { where: { role: 'ADMIN' } })) return false;
    const email = admin.email.toLowerCase();
    if (await m.exists(User, { where: { email } })) {
      logger?.warn(
        { email },
        'no ADMIN user exists, but the configured admin e-mail belongs to a USER: not changing it',
      );
      return false;
    }
    const id = randomUUID();
    await m.insert(User, {
      id,
      email,
      passwordHash: await hashPassword(admin.password),
      role: 'ADMIN',
      firstName: 'Admin',
      lastName: '',
    });
    await publishEvent(m, {
      resource: 'users',
      action: 'create',
      resourceId: id,
      payload: { user: { id, email, role: 'ADMIN', firstName: 'Admin', lastName: '' } },
      actorId: null,
      dedupeKey: `api:users:create:${id}`,
    });
    logger?.info({ email }, 'created the first admin');
    return true;
  });
}
