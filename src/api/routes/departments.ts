/**
 * /api/departments and /api/templates. Admins create, change and delete them; members see their
 * departments (managers also see the member list); everyone may read templates. Rows are written by the
 * API directly (no hypervisor involved) with their `departments:*` / `templates:*` (and, for membership
 * changes, `users:update`) events in the same transaction. A department's nwfilter name is derived from
 * its id; its filter row is created with it (the libvirt filter is made by the first machine workflow that
 * needs it). Deleting a department is refused while machines or networks belong to it, and takes its
 * filter row, rules, service settings and the custom filters scoped to it along.
 */
import { type EntityManager, In } from 'typeorm';
import { Department, DepartmentMember, type DepartmentRole } from '../../entities/department';
import { FirewallFilter, FirewallRule, ServiceSetting } from '../../entities/firewall';
import { Image } from '../../entities/image';
import { Machine } from '../../entities/machine';
import { MachineTemplate } from '../../entities/machine-template';
import { Network } from '../../entities/network';
import { User } from '../../entities/user';
import { ensureDepartmentFilterRow } from '../../firewall/load';
import { imageUseProblem } from '../../machines/rules';
import { firewallWorkflowId, flushWorkflowId, libvirtNames } from '../../workflows/shared';
import { type ApiContext } from '../context';
import { conflict, forbidden, notFound, refused } from '../errors';
import { filtersIncluding } from '../firewall-scope';
import { assertIdle } from '../idle';
import { isDuplicate, visibleDepartment } from '../lookups';
import { keysetPage, viewPage } from '../pagination';
import { canViewDepartmentMembers, isAdmin, type Principal } from '../permissions';
import { filterEvent, resourceEvent as event, userEvent } from '../resource-events';
import { created, DELETED, ok, routesFor, type RouteSpec } from '../route';
import {
  CreateDepartmentBody,
  CreateTemplateBody,
  IdParams,
  MemberBody,
  MemberParams,
  MemberSchema,
  PageQuery,
  pageOf,
  TemplateSchema,
  UpdateDepartmentBody,
  UpdateTemplateBody,
} from '../schemas';
import { DepartmentWithPolicySchema as DepartmentSchema } from '../schemas-firewall';
import { departmentView as baseDepartmentView, templateView } from '../views';

/** A department as the API shows it: {@link baseDepartmentView} with its firewall preset. */
export function departmentView(
  d: Department,
  myRole: DepartmentRole | null,
  members?: Array<{ userId: string; role: DepartmentRole }>,
) {
  return { ...baseDepartmentView(d, myRole, members), firewallPolicy: d.firewallPolicy };
}

const taken = (what: string) =>
  conflict(`a ${what} with this name exists`, { errors: [{ field: 'name', message: 'taken' }] });

/** The department routes. */
export function departmentRoutes(ctx: ApiContext): RouteSpec[] {
  const departmentsApi = routesFor('departments');
  const members = async (departmentId: string) =>
    (
      await ctx.ds.getRepository(DepartmentMember).find({ where: { departmentId }, order: { userId: 'ASC' } })
    ).map((x) => ({ userId: x.userId, role: x.role }));
  const visible = (p: Principal, id: string) => visibleDepartment(ctx, p, id);
  const adminOnly = (p: Principal, what: string) => {
    if (!isAdmin(p)) throw forbidden(`only admins may ${what}`);
  };
  return [
    departmentsApi.get(
      '/api/departments',
      'The departments the caller belongs to (admins: all)',
      {
        query: PageQuery,
        responses: ok('a page of departments', pageOf(DepartmentSchema, 'DepartmentPage')),
      },
      async ({ principal: p, query }) => {
        const qb = ctx.ds.getRepository(Department).createQueryBuilder('d');
        if (!isAdmin(p)) {
          const mine = [...p.departments.keys()];
          if (!mine.length) return { status: 200, body: { items: [], nextCursor: null } };
          qb.where('d.id IN (:...mine)', { mine });
        }
        const pg = await keysetPage<Department>(qb, 'd', query);
        return viewPage(pg, (d) => departmentView(d, p.departments.get(d.id) ?? null));
      },
    ),
    departmentsApi.get(
      '/api/departments/:id',
      'A department (members listed for its managers and admins)',
      { params: IdParams, problems: [404], responses: ok('the department', DepartmentSchema) },
      async ({ principal: p, params }) => {
        const d = await visible(p, params.id);
        const list = canViewDepartmentMembers(p, d.id) ? await members(d.id) : undefined;
        return { status: 200, body: departmentView(d, p.departments.get(d.id) ?? null, list) };
      },
    ),
    departmentsApi.post(
      '/api/departments',
      'Create a department (admins)',
      {
        body: CreateDepartmentBody,
        problems: [403, 409],
        responses: created('the department', DepartmentSchema),
      },
      async ({ principal: p, body, ids }) => {
        adminOnly(p, 'create departments');
        try {
          const d = await ctx.ds.transaction(async (m) => {
            const existing = await m.findOne(Department, { where: { id: ids.resource } });
            if (existing) return existing;
            await m.insert(Department, {
              id: ids.resource,
              name: body.name,
              filterName: libvirtNames.departmentFilter(ids.resource),
              networkName: body.networkName ?? null,
            });
            const d = await m.findOneOrFail(Department, { where: { id: ids.resource } });
            await ensureDepartmentFilterRow(m, d.id, d.name);
            await event(m, 'departments', 'create', d.id, { department: departmentView(d, null) }, p);
            return d;
          });
          return {
            status: 201,
            body: departmentView(d, null, []),
            headers: { Location: `/api/departments/${d.id}` },
          };
        } catch (err) {
          if (isDuplicate(err)) throw taken('department');
          throw err;
        }
      },
    ),
    departmentsApi.patch(
      '/api/departments/:id',
      'Rename a department or change its network (admins)',
      {
        params: IdParams,
        body: UpdateDepartmentBody,
        problems: [403, 404, 409],
        responses: ok('the department', DepartmentSchema),
      },
      async ({ principal: p, params, body }) => {
        await visible(p, params.id);
        adminOnly(p, 'change departments');
        try {
          const d = await ctx.ds.transaction(async (m) => {
            await m.update(
              Department,
              { id: params.id },
              {
                ...(body.name !== undefined ? { name: body.name } : {}),
                ...(body.networkName !== undefined ? { networkName: body.networkName } : {}),
              },
            );
            const d = await m.findOneOrFail(Department, { where: { id: params.id } });
            if (body.name !== undefined) {
              // The department filter's display name follows the department's (its libvirt name never changes).
              await m.update(
                FirewallFilter,
                { kind: 'department', departmentId: d.id },
                { name: `department ${d.name}`.slice(0, 100) },
              );
            }
            await event(m, 'departments', 'update', d.id, { department: departmentView(d, null) }, p);
            return d;
          });
          return { status: 200, body: departmentView(d, null, await members(d.id)) };
        } catch (err) {
          if (isDuplicate(err)) throw taken('department');
          throw err;
        }
      },
    ),
    departmentsApi.delete(
      '/api/departments/:id',
      'Delete a department with no machines and no networks (admins), with its filters',
      { params: IdParams, problems: [403, 404, 409, 422], responses: DELETED },
      async ({ principal: p, params }) => {
        const d = await visible(p, params.id);
        adminOnly(p, 'delete departments');
        const scoped = await ctx.ds
          .getRepository(FirewallFilter)
          .find({ where: { departmentId: d.id }, select: { id: true, kind: true } });
        // A firewall change of the department (or of one of its custom filters) must not race the delete.
        await assertIdle(ctx, {
          kind: 'firewall',
          workflowIds: [
            firewallWorkflowId(d.id),
            flushWorkflowId(d.id),
            ...scoped.filter((f) => f.kind === 'custom').map((f) => firewallWorkflowId(f.id)),
          ],
        });
        await ctx.ds.transaction(async (m) => {
          // Lock the department row: a machine or network created meanwhile checks it exists.
          await m.findOne(Department, { where: { id: d.id }, lock: { mode: 'pessimistic_write' } });
          if (await m.exists(Machine, { where: { departmentId: d.id } }))
            throw refused('the department has machines: destroy them first');
          const networks = await m.find(Network, {
            where: { departmentId: d.id },
            select: { id: true, name: true },
            order: { name: 'ASC' },
          });
          if (networks.length)
            throw conflict(`the department has ${networks.length} network(s): delete them first`, {
              networks: networks.map((n) => ({ id: n.id, name: n.name })),
            });
          const filters = await m.find(FirewallFilter, {
            where: { departmentId: d.id },
            lock: { mode: 'pessimistic_write' },
          });
          const filterIds = filters.map((f) => f.id);
          const outside = (await filtersIncluding(m, filterIds)).filter((f) => !filterIds.includes(f.id));
          if (outside.length)
            throw conflict(
              `filters of other departments include this department's custom filters: remove them first`,
              { includedBy: outside.map((f) => ({ id: f.id, name: f.name, kind: f.kind })) },
            );
          await event(m, 'departments', 'delete', d.id, { department: departmentView(d, null) }, p);
          for (const f of filters.filter((x) => x.kind === 'custom')) {
            await filterEvent(m, 'filter_deleted', f, p, d.id);
          }
          if (filterIds.length) {
            await m.delete(FirewallRule, { filterId: In(filterIds) });
            await m.delete(FirewallFilter, { id: In(filterIds) });
          }
          await m.delete(ServiceSetting, { scope: 'department', scopeId: d.id });
          const former = await m.find(DepartmentMember, { where: { departmentId: d.id } });
          await m.delete(DepartmentMember, { departmentId: d.id });
          await m.delete(Department, { id: d.id });
          for (const x of former) {
            const u = await m.findOne(User, { where: { id: x.userId } });
            if (u) await userEvent(m, 'update', u, p, { departmentRemoved: d.id });
          }
        });
        ctx.principals.invalidate();
        return { status: 204 };
      },
    ),
    departmentsApi.put(
      '/api/departments/:id/members/:userId',
      'Add a user to a department, or change its role there (admins)',
      {
        params: MemberParams,
        body: MemberBody,
        problems: [403, 404],
        responses: ok('the membership', MemberSchema),
      },
      async ({ principal: p, params, body }) => {
        await visible(p, params.id);
        adminOnly(p, 'change memberships');
        const user = await ctx.ds.getRepository(User).findOne({ where: { id: params.userId } });
        if (!user) throw notFound('user', 'userId');
        await ctx.ds.transaction(async (m) => {
          await m.upsert(
            DepartmentMember,
            { departmentId: params.id, userId: user.id, role: body.role as DepartmentRole },
            ['departmentId', 'userId'],
          );
          const d = await m.findOneOrFail(Department, { where: { id: params.id } });
          await event(m, 'departments', 'update', d.id, { department: departmentView(d, null) }, p);
          await userEvent(m, 'update', user, p, { departmentAdded: { id: d.id, role: body.role } });
        });
        ctx.principals.invalidate(user.id);
        return { status: 200, body: { userId: user.id, role: body.role } };
      },
    ),
    departmentsApi.delete(
      '/api/departments/:id/members/:userId',
      'Remove a user from a department (admins)',
      { params: MemberParams, problems: [403, 404], responses: { 204: { description: 'removed' } } },
      async ({ principal: p, params }) => {
        await visible(p, params.id);
        adminOnly(p, 'change memberships');
        await ctx.ds.transaction(async (m) => {
          const res = await m.delete(DepartmentMember, { departmentId: params.id, userId: params.userId });
          if (!res.affected) throw notFound('member', 'userId');
          const d = await m.findOneOrFail(Department, { where: { id: params.id } });
          await event(m, 'departments', 'update', d.id, { department: departmentView(d, null) }, p);
          const u = await m.findOne(User, { where: { id: params.userId } });
          if (u) await userEvent(m, 'update', u, p, { departmentRemoved: d.id });
        });
        ctx.principals.invalidate(params.userId);
        return { status: 204 };
      },
    ),
  ];
}

/** The template routes. */
export function templateRoutes(ctx: ApiContext): RouteSpec[] {
  const templatesApi = routesFor('templates');
  const repo = () => ctx.ds.getRepository(MachineTemplate);
  const find = async (id: string) => {
    const t = await repo().findOne({ where: { id } });
    if (!t) throw notFound('template');
    return t;
  };
  /**
   * A template's image must be ready and no bigger than its disk. Read locked (FOR UPDATE: MariaDB has no FOR SHARE), in the
   * template's transaction: a delete of the image (which locks it to check its users) waits for it.
   */
  const checkImage = async (m: EntityManager, imageId: string | null, storageGiB: number) => {
    if (imageId === null) return;
    const image = await m.findOne(Image, { where: { id: imageId }, lock: { mode: 'pessimistic_write' } });
    const problem = imageUseProblem(image, { field: 'imageId', storageGiB });
    if (problem) throw refused(problem.message, problem.field);
  };
  return [
    templatesApi.get(
      '/api/templates',
      'List templates',
      { query: PageQuery, responses: ok('a page of templates', pageOf(TemplateSchema, 'TemplatePage')) },
      async ({ query }) => {
        const pg = await keysetPage<MachineTemplate>(repo().createQueryBuilder('t'), 't', query);
        return viewPage(pg, templateView);
      },
    ),
    templatesApi.get(
      '/api/templates/:id',
      'A template',
      { params: IdParams, problems: [404], responses: ok('the template', TemplateSchema) },
      async ({ params }) => {
        return { status: 200, body: templateView(await find(params.id)) };
      },
    ),
    templatesApi.post(
      '/api/templates',
      'Create a template (admins)',
      { body: CreateTemplateBody, problems: [403, 409], responses: created('the template', TemplateSchema) },
      async ({ principal: p, body, ids }) => {
        if (!isAdmin(p)) throw forbidden('only admins may create templates');
        try {
          const t = await ctx.ds.transaction(async (m) => {
            const existing = await m.findOne(MachineTemplate, { where: { id: ids.resource } });
            if (existing) return existing;
            await checkImage(m, body.imageId ?? null, body.storage);
            await m.insert(MachineTemplate, {
              id: ids.resource,
              name: body.name,
              description: body.description ?? '',
              cpu: body.cpu,
              memoryMiB: body.memory,
              storageGiB: body.storage,
              os: body.os,
              imageId: body.imageId ?? null,
              diskMode: body.diskMode ?? 'linked',
            });
            const t = await m.findOneOrFail(MachineTemplate, { where: { id: ids.resource } });
            await event(m, 'templates', 'create', t.id, { template: templateView(t) }, p);
            return t;
          });
          return { status: 201, body: templateView(t), headers: { Location: `/api/templates/${t.id}` } };
        } catch (err) {
          if (isDuplicate(err)) throw taken('template');
          throw err;
        }
      },
    ),
    templatesApi.patch(
      '/api/templates/:id',
      'Change a template (admins; existing machines keep their hardware)',
      {
        params: IdParams,
        body: UpdateTemplateBody,
        problems: [403, 404, 409],
        responses: ok('the template', TemplateSchema),
      },
      async ({ principal: p, params, body }) => {
        if (!isAdmin(p)) throw forbidden('only admins may change templates');
        await find(params.id);
        const patch: Partial<MachineTemplate> = {};
        if (body.name !== undefined) patch.name = body.name;
        if (body.description !== undefined) patch.description = body.description;
        if (body.cpu !== undefined) patch.cpu = body.cpu;
        if (body.memory !== undefined) patch.memoryMiB = body.memory;
        if (body.storage !== undefined) patch.storageGiB = body.storage;
        if (body.os !== undefined) patch.os = body.os;
        if (body.imageId !== undefined) patch.imageId = body.imageId;
        if (body.diskMode !== undefined) patch.diskMode = body.diskMode;
        try {
          const t = await ctx.ds.transaction(async (m) => {
            const before = await m.findOneOrFail(MachineTemplate, {
              where: { id: params.id },
              lock: { mode: 'pessimistic_write' },
            });
            if (body.imageId !== undefined || body.storage !== undefined)
              await checkImage(
                m,
                body.imageId !== undefined ? body.imageId : before.imageId,
                patch.storageGiB ?? before.storageGiB,
              );
            await m.update(MachineTemplate, { id: params.id }, patch);
            const t = await m.findOneOrFail(MachineTemplate, { where: { id: params.id } });
            await event(m, 'templates', 'update', t.id, { template: templateView(t) }, p);
            return t;
          });
          return { status: 200, body: templateView(t) };
        } catch (err) {
          if (isDuplicate(err)) throw taken('template');
          throw err;
        }
      },
    ),
    templatesApi.delete(
      '/api/templates/:id',
      'Delete a template no machine uses (admins)',
      { params: IdParams, problems: [403, 404, 422], responses: DELETED },
      async ({ principal: p, params }) => {
        if (!isAdmin(p)) throw forbidden('only admins may delete templates');
        const t = await find(params.id);
        await ctx.ds.transaction(async (m) => {
          if (await m.exists(Machine, { where: { templateId: t.id } }))
            throw refused('machines use this template');
          await event(m, 'templates', 'delete', t.id, { template: templateView(t) }, p);
          await m.delete(MachineTemplate, { id: t.id });
        });
        return { status: 204 };
      },
    ),
  ];
}
