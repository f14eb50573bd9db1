/**
 * The zod schemas of the image routes (they validate requests and generate the OpenAPI document).
 */
import { z } from 'zod';
import {
  IMAGE_FIRMWARES,
  IMAGE_FORMATS,
  IMAGE_ORIGINS,
  IMAGE_OS_FAMILIES,
  IMAGE_PROVISIONINGS,
  IMAGE_STATUSES,
} from '../entities/image';
import { displayName, OperationSchema, pageOf } from './schemas';

const isoDate = z.string().openapi({ format: 'date-time' });
/** A sha256 digest: 64 hex digits (stored lowercase). */
const Sha256 = z
  .string()
  .regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hexadecimal digits')
  .transform((s) => s.toLowerCase())
  .openapi({
    description: 'sha256 of the image file, hex',
    example: 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  });
/** A libvirt pool or volume name: no path separators, no control characters. */
const libvirtName = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9._+-]*$/,
      'letters, digits, dot, dash, underscore and plus; starts with a letter or digit',
    );
const DepartmentIds = z
  .array(z.uuid())
  .max(200)
  .nullable()
  .openapi({ description: 'departments that may use the image; null (default): every department' });

/** POST /api/images. */
export const CreateImageBody = z
  .strictObject({
    name: displayName(100).openapi({ example: 'debian-12' }),
    description: z.string().max(500).optional(),
    osFamily: z.enum(IMAGE_OS_FAMILIES),
    format: z.enum(IMAGE_FORMATS).openapi({ description: 'checked against the content with qemu-img' }),
    firmware: z.enum(IMAGE_FIRMWARES).default('bios'),
    provisioning: z
      .enum(IMAGE_PROVISIONINGS)
      .optional()
      .openapi({ description: 'default: cloud-init for linux, windows-unattend for windows' }),
    sha256: Sha256.optional().openapi({
      description:
        'required for an upload (the import verifies it); optional with `register` (computed on the host, and must match when given)',
    }),
    departmentIds: DepartmentIds.optional(),
    hostName: z
      .string()
      .min(1)
      .max(63)
      .optional()
      .openapi({ description: 'default: the first registered host' }),
    register: z
      .strictObject({
        pool: libvirtName(64)
          .openapi({ description: "a pool of the host (default: the host's own)" })
          .optional(),
        volume: libvirtName(255),
      })
      .optional()
      .openapi({ description: 'register this existing volume instead of uploading (nothing is copied)' }),
  })
  .superRefine((b, ctx) => {
    if (!b.register && !b.sha256)
      ctx.addIssue({ code: 'custom', path: ['sha256'], message: 'required for an upload' });
    if (b.provisioning === 'windows-unattend' && b.osFamily !== 'windows')
      ctx.addIssue({
        code: 'custom',
        path: ['provisioning'],
        message: 'windows-unattend needs osFamily windows',
      });
    if (b.provisioning === 'cloud-init' && b.osFamily !== 'linux')
      ctx.addIssue({ code: 'custom', path: ['provisioning'], message: 'cloud-init needs osFamily linux' });
    if (b.register?.volume.startsWith('vmflow-'))
      ctx.addIssue({
        code: 'custom',
        path: ['register', 'volume'],
        message: "volumes named vmflow-* are vmflow's own (machine disks, imported images)",
      });
  })
  .openapi('CreateImage');

/** PATCH /api/images/:id. */
export const UpdateImageBody = z
  .strictObject({
    name: displayName(100).optional(),
    description: z.string().max(500).optional(),
    departmentIds: DepartmentIds.optional(),
  })
  .openapi('UpdateImage');

/** GET /api/images. */
export const ImageListQuery = z.strictObject({
  status: z.enum(IMAGE_STATUSES).optional(),
  limit: z.coerce.number().int().min(1).max(100).optional(),
  cursor: z.string().min(1).max(200).optional(),
});

export const ImageSchema = z
  .object({
    id: z.uuid(),
    name: z.string(),
    description: z.string(),
    osFamily: z.enum(IMAGE_OS_FAMILIES),
    format: z.enum(IMAGE_FORMATS),
    virtualSizeBytes: z.number().nullable(),
    sizeBytes: z.number().nullable(),
    sha256: z.string().nullable(),
    firmware: z.enum(IMAGE_FIRMWARES),
    provisioning: z.enum(IMAGE_PROVISIONINGS),
    origin: z.enum(IMAGE_ORIGINS),
    hostName: z.string(),
    pool: z.string(),
    volumeName: z.string(),
    path: z.string().nullable(),
    status: z.enum(IMAGE_STATUSES),
    lastError: z.string().nullable(),
    departmentIds: z.array(z.string()).nullable(),
    currentOperationId: z.string().nullable(),
    createdAt: isoDate.nullable(),
    updatedAt: isoDate.nullable(),
  })
  .openapi('Image');

export const ImagePage = pageOf(ImageSchema, 'ImagePage');
export const ImageOperationResponse = z
  .object({ image: ImageSchema, operation: OperationSchema })
  .openapi('ImageOperation');
