/**
 * /api/auth (login, me) and /api/users (admins manage users; a user reads itself and may change its own
 * names and password). User changes write `users:*` events in the same transaction.
 */
import { DepartmentMember } from '../../entities/department';
import { Machine } from '../../entities/machine';
import { User } from '../../entities/user';
import { hashPassword, signToken, verifyCredentials } from '../auth';
import { type ApiContext } from '../context';
import { conflict, forbidden, notFound, ProblemError, refused } from '../errors';
import { isDuplicate } from '../lookups';
import { keysetPage, viewPage } from '../pagination';
import { canViewUser, isAdmin, loadPrincipal } from '../permissions';
import { userEvent } from '../resource-events';
import { created, DELETED, ok, routesFor, type RouteSpec } from '../route';
import {
  CreateUserBody,
  IdParams,
  LoginBody,
  LoginResponse,
  PageQuery,
  pageOf,
  UpdateUserBody,
  UserSchema,
} from '../schemas';
import { userView } from '../views';

/** A duplicate key is a taken e-mail (409); anything else is returned as is, to be thrown. */
const emailTaken = (err: unknown) =>
  isDuplicate(err)
    ? conflict('a user with this e-mail exists', { errors: [{ field: 'email', message: 'taken' }] })
    : err;

/** The auth and user routes. */
export function userRoutes(ctx: ApiContext): RouteSpec[] {
  const authApi = routesFor('auth');
  const usersApi = routesFor('users');
  const users = () => ctx.ds.getRepository(User);
  return [
    authApi.post(
      '/api/auth/login',
      'Exchange e-mail and password for a bearer token',
      { auth: false, body: LoginBody, responses: ok('a token and the user', LoginResponse) },
      async ({ body }) => {
        const user = await verifyCredentials(ctx.ds, body.email, body.password);
        if (!user) throw new ProblemError(401, 'wrong e-mail or password');
        const p = (await loadPrincipal(ctx.ds, user.id))!;
        return {
          status: 200,
          body: { token: signToken(ctx.config.jwtSecret, user), user: userView(user, p.departments) },
        };
      },
    ),
    authApi.get(
      '/api/auth/me',
      'The caller, with its departments',
      { responses: ok('the caller', UserSchema) },
      async ({ principal }) => {
        const u = await users().findOneOrFail({ where: { id: principal.id } });
        return { status: 200, body: userView(u, principal.departments) };
      },
    ),
    usersApi.get(
      '/api/users',
      'List users (admins)',
      { query: PageQuery, problems: [403], responses: ok('a page of users', pageOf(UserSchema, 'UserPage')) },
      async ({ principal, query }) => {
        if (!isAdmin(principal)) throw forbidden('only admins may list users');
        const page = await keysetPage<User>(users().createQueryBuilder('u'), 'u', query);
        return viewPage(page, userView);
      },
    ),
    usersApi.get(
      '/api/users/:id',
      'A user (admins; or the user itself)',
      { params: IdParams, problems: [404], responses: ok('the user', UserSchema) },
      async ({ principal, params }) => {
        if (!canViewUser(principal, params.id)) throw notFound('user');
        const p = await loadPrincipal(ctx.ds, params.id);
        const u = p && (await users().findOne({ where: { id: params.id } }));
        if (!u || !p) throw notFound('user');
        return { status: 200, body: userView(u, p.departments) };
      },
    ),
    usersApi.post(
      '/api/users',
      'Create a user (admins)',
      { body: CreateUserBody, problems: [403, 409], responses: created('the user', UserSchema) },
      async ({ principal, body, ids }) => {
        if (!isAdmin(principal)) throw forbidden('only admins may create users');
        const hash = await hashPassword(body.password);
        try {
          const user = await ctx.ds.transaction(async (m) => {
            const existing = await m.findOne(User, { where: { id: ids.resource } });
            if (existing) return existing; // a retried request that already got this far
            await m.insert(User, {
              id: ids.resource,
              email: body.email.toLowerCase(),
              passwordHash: hash,
              role: body.role,
              firstName: body.firstName ?? '',
              lastName: body.lastName ?? '',
            });
            const u = await m.findOneOrFail(User, { where: { id: ids.resource } });
            await userEvent(m, 'create', u, principal);
            return u;
          });
          return {
            status: 201,
            body: userView(user, new Map()),
            headers: { Location: `/api/users/${user.id}` },
          };
        } catch (err) {
          throw emailTaken(err);
        }
      },
    ),
    usersApi.patch(
      '/api/users/:id',
      'Change a user (admins; a user may change its own names and password)',
      {
        params: IdParams,
        body: UpdateUserBody,
        problems: [403, 404, 409, 422],
        responses: ok('the user', UserSchema),
      },
      async ({ principal, params, body }) => {
        if (!canViewUser(principal, params.id)) throw notFound('user');
        if (!isAdmin(principal) && (body.role !== undefined || body.email !== undefined)) {
          throw forbidden('only admins may change e-mail addresses and roles');
        }
        if (params.id === principal.id && body.role === 'USER')
          throw refused('you cannot remove your own admin role', 'role');
        const patch: Partial<User> = {};
        if (body.email !== undefined) patch.email = body.email.toLowerCase();
        if (body.role !== undefined) patch.role = body.role;
        if (body.firstName !== undefined) patch.firstName = body.firstName;
        if (body.lastName !== undefined) patch.lastName = body.lastName;
        if (body.password !== undefined) patch.passwordHash = await hashPassword(body.password);
        try {
          const user = await ctx.ds.transaction(async (m) => {
            const u = await m.findOne(User, {
              where: { id: params.id },
              lock: { mode: 'pessimistic_write' },
            });
            if (!u) throw notFound('user');
            await m.update(User, { id: u.id }, patch);
            const after = await m.findOneOrFail(User, { where: { id: u.id } });
            await userEvent(m, 'update', after, principal);
            return after;
          });
          ctx.principals.invalidate(user.id);
          const p = (await loadPrincipal(ctx.ds, user.id))!;
          return { status: 200, body: userView(user, p.departments) };
        } catch (err) {
          throw emailTaken(err);
        }
      },
    ),
    usersApi.delete(
      '/api/users/:id',
      'Delete a user with no machines (admins)',
      { params: IdParams, problems: [403, 404, 422], responses: DELETED },
      async ({ principal, params }) => {
        if (!isAdmin(principal)) {
          if (!canViewUser(principal, params.id)) throw notFound('user');
          throw forbidden('only admins may delete users');
        }
        if (params.id === principal.id) throw refused('you cannot delete yourself');
        await ctx.ds.transaction(async (m) => {
          const u = await m.findOne(User, { where: { id: params.id }, lock: { mode: 'pessimistic_write' } });
          if (!u) throw notFound('user');
          if (await m.exists(Machine, { where: { ownerId: u.id } }))
            throw refused('the user owns machines: destroy or reassign them first');
          await userEvent(m, 'delete', u, principal);
          await m.delete(DepartmentMember, { userId: u.id });
          await m.delete(User, { id: u.id });
        });
        ctx.principals.invalidate(params.id);
        return { status: 204 };
      },
    ),
  ];
}
