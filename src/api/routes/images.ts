/**
 * /api/images: OS images machines are made from. Admins create, change and delete them; everyone sees the
 * ready images their departments may use. The API writes the image row itself (like templates: nothing in
 * libvirt changes) and stages uploads (src/api/image-staging.ts); everything that touches libvirt runs as a
 * workflow keyed `image-<id>`: the import of an upload, the registration of an existing volume, the delete.
 */
import { rm } from 'node:fs/promises';
import { In, type EntityManager } from 'typeorm';
import { Department } from '../../entities/department';
import { Host } from '../../entities/host';
import { Image, type ImageProvisioning } from '../../entities/image';
import { publishEvent } from '../../events/publish';
import { describeUsers, imageUsers, imageView } from '../../images/queries';
import {
  imageWorkflowId,
  libvirtNames,
  type ImportImageInput,
  type RegisterImageInput,
} from '../../workflows/shared';
import { type ApiContext } from '../context';
import { badRequest, conflict, forbidden, notFound, ProblemError, refused } from '../errors';
import { accepted } from '../handler';
import { assertIdle } from '../idle';
import { receiveUpload, stagingPath, UploadInterruptedError } from '../image-staging';
import { isDuplicate } from '../lookups';
import { keysetPage, viewPage } from '../pagination';
import { canUseImage, isAdmin, type Principal } from '../permissions';
import { ACCEPTED, acceptedAs, created, ok, routesFor, type RouteSpec } from '../route';
import { IdParams } from '../schemas';
import {
  CreateImageBody,
  ImageListQuery,
  ImageOperationResponse,
  ImagePage,
  ImageSchema,
  UpdateImageBody,
} from '../schemas-image';

const adminsOnly = (p: Principal) => {
  if (!isAdmin(p)) throw forbidden('only admins manage images');
};

/** Loads an image the caller may see, else 404 (whether it exists or not). */
async function visibleImage(ctx: ApiContext, p: Principal, id: string): Promise<Image> {
  const i = await ctx.ds.getRepository(Image).findOne({ where: { id } });
  if (!i || !canUseImage(p, i)) throw notFound('image');
  return i;
}

/** 404 naming `departmentIds` unless every department exists. */
async function assertDepartments(ctx: ApiContext, ids: string[] | null | undefined): Promise<void> {
  if (!ids?.length) return;
  const found = await ctx.ds.getRepository(Department).count({ where: { id: In([...new Set(ids)]) } });
  if (found !== new Set(ids).size) throw notFound('department', 'departmentIds');
}

/** An `images:<action>` event for a change the API makes itself (admins' room). */
function imageEvent(m: EntityManager, action: string, i: Image, p: Principal): Promise<void> {
  return publishEvent(m, {
    resource: 'images',
    action,
    resourceId: i.id,
    payload: { image: imageView(i) },
    actorId: p.id,
    dedupeKey: `api:${i.id}:${action}:${new Date(i.updatedAt).getTime()}`,
  });
}

const DEFAULT_PROVISIONING: Record<Image['osFamily'], ImageProvisioning> = {
  linux: 'cloud-init',
  windows: 'windows-unattend',
};

/** The image routes. */
export function imageRoutes(ctx: ApiContext): RouteSpec[] {
  const imagesApi = routesFor('images');
  const repo = () => ctx.ds.getRepository(Image);
  return [
    imagesApi.get(
      '/api/images',
      'The images the caller may use: ready ones open to its departments (admins: all), newest first',
      { query: ImageListQuery, responses: ok('a page of images', ImagePage) },
      async ({ principal: p, query }) => {
        const qb = repo().createQueryBuilder('i');
        if (query.status) qb.andWhere('i.status = :status', { status: query.status });
        if (!isAdmin(p)) {
          qb.andWhere("i.status = 'ready'");
          const depts = [...p.departments.keys()];
          qb.andWhere(
            depts.length
              ? '(i.departmentIds IS NULL OR JSON_OVERLAPS(i.departmentIds, :depts))'
              : 'i.departmentIds IS NULL',
            { depts: JSON.stringify(depts) },
          );
        }
        return viewPage(await keysetPage<Image>(qb, 'i', query), imageView);
      },
    ),
    imagesApi.get(
      '/api/images/:id',
      'An image',
      { params: IdParams, problems: [404], responses: ok('the image', ImageSchema) },
      async ({ principal, params }) => ({
        status: 200,
        body: imageView(await visibleImage(ctx, principal, params.id)),
      }),
    ),
    imagesApi.post(
      '/api/images',
      'Create an image (admins): to be uploaded (201, `pending`), or registering an existing volume (202, a registerImage workflow)',
      {
        body: CreateImageBody,
        problems: [403, 404, 409, 422],
        responses: {
          ...created('the image, waiting for its content (PUT /api/images/{id}/content)', ImageSchema),
          ...acceptedAs('the image being registered, and its operation', ImageOperationResponse),
        },
      },
      async ({ principal: p, body: b, ids, idempotencyKey }) => {
        adminsOnly(p);
        await assertDepartments(ctx, b.departmentIds);
        const host = await ctx.ds
          .getRepository(Host)
          .findOne(b.hostName ? { where: { name: b.hostName } } : { where: {}, order: { name: 'ASC' } });
        if (!host) {
          if (b.hostName) throw notFound('host', 'hostName');
          throw refused('no hypervisor host is registered');
        }
        const imageId = ids.resource;
        const register = b.register;
        const pool = register?.pool ?? host.storagePool;
        const volumeName = register ? register.volume : libvirtNames.imageVolume(imageId);
        if (register && (await repo().exists({ where: { hostName: host.name, pool, volumeName } })))
          throw conflict(`volume ${volumeName} of pool ${pool} is already an image`, {
            errors: [{ field: 'register.volume', message: 'already registered' }],
          });
        let image: Image;
        try {
          image = await ctx.ds.transaction(async (m) => {
            const existing = await m.findOne(Image, { where: { id: imageId } });
            if (existing) return existing; // the same request retried (Idempotency-Key)
            await m.insert(Image, {
              id: imageId,
              name: b.name,
              description: b.description ?? '',
              osFamily: b.osFamily,
              format: b.format,
              virtualSizeBytes: null,
              sizeBytes: null,
              sha256: b.sha256 ?? null,
              firmware: b.firmware,
              provisioning: b.provisioning ?? DEFAULT_PROVISIONING[b.osFamily],
              origin: register ? 'register' : 'upload',
              hostName: host.name,
              pool,
              volumeName,
              path: null,
              status: register ? 'importing' : 'pending',
              lastError: null,
              departmentIds: b.departmentIds ?? null,
              currentOperationId: register ? ids.operation : null,
            });
            const row = await m.findOneOrFail(Image, { where: { id: imageId } });
            await imageEvent(m, 'create', row, p);
            return row;
          });
        } catch (err) {
          if (isDuplicate(err))
            throw conflict(`an image named "${b.name}" exists`, {
              errors: [{ field: 'name', message: 'taken' }],
            });
          throw err;
        }
        if (!register)
          return { status: 201, body: imageView(image), headers: { Location: `/api/images/${imageId}` } };
        const input: RegisterImageInput = {
          operationId: ids.operation,
          actorId: p.id,
          idempotencyKey,
          imageId,
        };
        const operation = await ctx.operations.startResource({
          workflow: 'registerImage',
          workflowId: imageWorkflowId(imageId),
          type: 'register_image',
          resource: 'images',
          resourceId: imageId,
          input: input as unknown as { operationId: string } & Record<string, unknown>,
          actorId: p.id,
          departmentId: null,
        });
        return accepted(operation, { image: imageView(image) });
      },
    ),
    imagesApi.patch(
      '/api/images/:id',
      'Change an image (admins): its name, description and the departments that may use it',
      {
        params: IdParams,
        body: UpdateImageBody,
        problems: [403, 404, 409],
        responses: ok('the image', ImageSchema),
      },
      async ({ principal: p, params, body: b }) => {
        await visibleImage(ctx, p, params.id);
        adminsOnly(p);
        await assertDepartments(ctx, b.departmentIds);
        try {
          const image = await ctx.ds.transaction(async (m) => {
            const patch: Partial<Image> = {};
            if (b.name !== undefined) patch.name = b.name;
            if (b.description !== undefined) patch.description = b.description;
            if (b.departmentIds !== undefined) patch.departmentIds = b.departmentIds;
            if (Object.keys(patch).length) await m.update(Image, { id: params.id }, patch);
            const row = await m.findOneOrFail(Image, { where: { id: params.id } });
            if (Object.keys(patch).length) await imageEvent(m, 'update', row, p);
            return row;
          });
          return { status: 200, body: imageView(image) };
        } catch (err) {
          if (isDuplicate(err))
            throw conflict(`an image named "${b.name}" exists`, {
              errors: [{ field: 'name', message: 'taken' }],
            });
          throw err;
        }
      },
    ),
    imagesApi.delete(
      '/api/images/:id',
      'Delete an image (admins); refused with 409 naming the templates and machines that use it',
      { params: IdParams, problems: [403, 404, 409], responses: ACCEPTED },
      async ({ principal: p, params, ids, idempotencyKey }) => {
        const i = await visibleImage(ctx, p, params.id);
        adminsOnly(p);
        await assertIdle(ctx, { kind: 'image', currentOperationId: i.currentOperationId });
        const users = await imageUsers(ctx.ds.manager, i.id);
        if (users.templates.length || users.machines.length)
          throw conflict(`the image is still used: ${describeUsers(users)}`, {
            title: 'Image in use',
            ...users,
          });
        const operation = await ctx.operations.startResource({
          workflow: 'deleteImage',
          workflowId: imageWorkflowId(i.id),
          type: 'delete_image',
          resource: 'images',
          resourceId: i.id,
          input: { operationId: ids.operation, actorId: p.id, idempotencyKey, imageId: i.id },
          actorId: p.id,
          departmentId: null,
        });
        return accepted(operation);
      },
    ),
    imagesApi.put(
      '/api/images/:id/content',
      'Upload an image file (admins; the raw bytes as the body, application/octet-stream): staged, then imported by the importImage workflow',
      { params: IdParams, problems: [403, 404, 409, 413, 415], responses: ACCEPTED },
      async ({ req, principal: p, params, ids, idempotencyKey }) => {
        const i = await visibleImage(ctx, p, params.id);
        adminsOnly(p);
        if (i.origin !== 'upload') throw conflict('a registered image takes no upload');
        await assertIdle(ctx, { kind: 'image', currentOperationId: i.currentOperationId });
        if (i.status !== 'pending' && i.status !== 'failed')
          throw conflict(`the image is ${i.status}: only a pending or failed image takes an upload`);
        const type = req.get('content-type') ?? 'application/octet-stream';
        if (!/^application\/octet-stream\b/i.test(type))
          throw new ProblemError(415, 'send the image as application/octet-stream', {
            errors: [{ field: 'Content-Type', message: 'must be application/octet-stream' }],
          });
        const staged = await receiveUpload(
          req,
          stagingPath(ctx.images.stagingDir, i.id, ids.operation),
          ctx.images.maxBytes,
        ).catch((err: unknown) => {
          // The client went away: not a server fault (no error log, no 500); nothing was staged or started.
          if (err instanceof UploadInterruptedError) {
            ctx.logger.warn(
              { imageId: i.id, operationId: ids.operation },
              'image upload interrupted: the client went away before the end of the body; nothing staged',
            );
            throw badRequest(err.message, [{ field: '(body)', message: 'incomplete' }]);
          }
          throw err;
        });
        try {
          if (staged.sizeBytes === 0)
            throw badRequest('the body is empty', [{ field: '(body)', message: 'empty' }]);
          const input: ImportImageInput = {
            operationId: ids.operation,
            actorId: p.id,
            idempotencyKey,
            imageId: i.id,
            hostName: i.hostName,
            stagingPath: staged.path,
            receivedSha256: staged.sha256,
            sizeBytes: staged.sizeBytes,
          };
          const operation = await ctx.operations.startResource({
            workflow: 'importImage',
            workflowId: imageWorkflowId(i.id),
            type: 'import_image',
            resource: 'images',
            resourceId: i.id,
            input: input as unknown as { operationId: string } & Record<string, unknown>,
            actorId: p.id,
            departmentId: null,
          });
          return accepted(operation);
        } catch (err) {
          // Not handed to a workflow: the staging file is ours to remove.
          await rm(staged.path, { force: true });
          throw err;
        }
      },
    ),
  ];
}
