/**
 * Image look-ups shared by the API and the image activities: what an image looks like to callers and
 * events, and who still uses it (templates and machines), which makes a delete a 409.
 */
import { type EntityManager } from 'typeorm';
import { type Image } from '../entities/image';
import { Machine } from '../entities/machine';
import { MachineTemplate } from '../entities/machine-template';

const iso = (d: Date | string | null | undefined) => (d ? new Date(d).toISOString() : null);

/** An image as the API returns it and events carry it: explicit fields only. */
export function imageView(i: Image) {
  return {
    id: i.id,
    name: i.name,
    description: i.description,
    osFamily: i.osFamily,
    format: i.format,
    virtualSizeBytes: i.virtualSizeBytes,
    sizeBytes: i.sizeBytes,
    sha256: i.sha256,
    firmware: i.firmware,
    provisioning: i.provisioning,
    origin: i.origin,
    hostName: i.hostName,
    pool: i.pool,
    volumeName: i.volumeName,
    path: i.path,
    status: i.status,
    lastError: i.lastError,
    departmentIds: i.departmentIds,
    currentOperationId: i.currentOperationId,
    createdAt: iso(i.createdAt),
    updatedAt: iso(i.updatedAt),
  };
}

/** An image as the API returns it (type of {@link imageView}). */
export type ImageApiView = ReturnType<typeof imageView>;

/** What still uses an image: templates that name it and machines made from it. */
export interface ImageUsers {
  templates: Array<{ id: string; name: string }>;
  machines: Array<{ id: string; name: string; status: string }>;
}

/** The templates and machines that use an image (empty lists: it may be deleted). */
export async function imageUsers(m: EntityManager, imageId: string): Promise<ImageUsers> {
  const [templates, machines] = await Promise.all([
    m.find(MachineTemplate, { where: { imageId }, select: { id: true, name: true }, order: { name: 'ASC' } }),
    m.find(Machine, {
      where: { imageId },
      select: { id: true, name: true, status: true },
      order: { name: 'ASC' },
    }),
  ]);
  return {
    templates: templates.map((t) => ({ id: t.id, name: t.name })),
    machines: machines.map((x) => ({ id: x.id, name: x.name, status: x.status })),
  };
}

/** "templates a, b; machines c" for messages; '' when unused. */
export function describeUsers(u: ImageUsers): string {
  return [
    ...(u.templates.length ? [`templates ${u.templates.map((t) => t.name).join(', ')}`] : []),
    ...(u.machines.length ? [`machines ${u.machines.map((x) => x.name).join(', ')}`] : []),
  ].join('; ');
}
