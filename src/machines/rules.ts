/**
 * The rules of a machine request, pure: the API runs them before it starts a workflow (so that most bad
 * requests never start one), and the plan activities run them again inside the workflow, where they stay
 * authoritative. Each side words its answer as it always has (the API a problem response, an activity a
 * typed failure); these functions only decide. No database and no libvirt here: callers load the rows.
 */
import { type UserRole } from '../entities/user';
import { HARDWARE_LIMITS, MACHINE_NAME_MAX } from '../workflows/shared';

/** A hardware field with limits (`HARDWARE_LIMITS`). */
export type HardwareField = keyof typeof HARDWARE_LIMITS;

/** A rule a request breaks: the field and what is wrong with it. */
export interface MachineProblem {
  field: string;
  message: string;
}

// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/** A machine name: 1–100 printable characters, no control characters, not blank. Null when valid. */
export function nameProblem(name: unknown): MachineProblem | null {
  if (typeof name !== 'string' || !name.trim() || name.length > MACHINE_NAME_MAX || CONTROL_CHARS.test(name))
    return { field: 'name', message: `name must be 1–${MACHINE_NAME_MAX} printable characters` };
  return null;
}

/** A hardware figure inside its limits (an integer from min to max); undefined: not asked for. */
export function rangeProblem(field: HardwareField, value: number | undefined): MachineProblem | null {
  if (value === undefined) return null;
  const { min, max } = HARDWARE_LIMITS[field];
  if (!Number.isInteger(value) || value < min || value > max)
    return { field, message: `${field} must be an integer from ${min} to ${max}` };
  return null;
}

/** The name and hardware figures of a create request; every problem, in field order. */
export function createProblems(req: {
  name: unknown;
  cpu?: number;
  memoryMiB?: number;
  storageGiB?: number;
}): MachineProblem[] {
  return [
    nameProblem(req.name),
    rangeProblem('cpu', req.cpu),
    rangeProblem('memoryMiB', req.memoryMiB),
    rangeProblem('storageGiB', req.storageGiB),
  ].filter((x): x is MachineProblem => x !== null);
}

/** May a user own a machine of a department: a member of it, or an admin. */
export function mayOwnIn(owner: { role: UserRole } | null | undefined, isMember: boolean): boolean {
  return isMember || owner?.role === 'ADMIN';
}

/**
 * Why a user cannot own a new machine of a department: `unknown` (no such user), `not_member` (neither a
 * member nor an admin); null when it can.
 */
export function ownerProblem(
  owner: { role: UserRole } | null | undefined,
  isMember: boolean,
): 'unknown' | 'not_member' | null {
  if (!owner) return 'unknown';
  return mayOwnIn(owner, isMember) ? null : 'not_member';
}

/** The answer when a department already has a machine of this name. */
export const nameTakenMessage = (name: string) => `a machine named "${name}" exists in this department`;

/** Hardware that exceeds the host (cpu, then memory); null when it fits. */
export function hostFitProblem(
  want: { cpu: number; memoryMiB: number },
  host: { cpus: number; memoryMiB: number },
): MachineProblem | null {
  if (want.cpu > host.cpus)
    return { field: 'cpu', message: `cpu ${want.cpu} exceeds the host's ${host.cpus} CPUs` };
  if (want.memoryMiB > host.memoryMiB)
    return {
      field: 'memory',
      message: `memory ${want.memoryMiB} MiB exceeds the host's ${host.memoryMiB} MiB`,
    };
  return null;
}

const GiB = 1024 ** 3;

/** What the rules need of an image (src/entities/image.ts). */
export interface ImageFacts {
  status: string;
  departmentIds: string[] | null;
  virtualSizeBytes: number | null;
}

/** The smallest disk (GiB) a machine made from the image may have: the image's virtual size, rounded up. */
export function imageMinStorageGiB(image: ImageFacts): number {
  return Math.ceil((image.virtualSizeBytes ?? 0) / GiB);
}

/**
 * Whether a machine (or a template) may be made from an image: only a `ready` one, open to the department
 * (when one is given), on a disk no smaller than the image (when a size is given). `field` names the
 * request field that chose the image.
 */
export function imageUseProblem(
  image: ImageFacts | null,
  use: { field: string; departmentId?: string; storageGiB?: number },
): MachineProblem | null {
  if (!image || image.status !== 'ready')
    return { field: use.field, message: 'the image does not exist or is not ready' };
  if (
    use.departmentId !== undefined &&
    image.departmentIds &&
    !image.departmentIds.includes(use.departmentId)
  )
    return { field: use.field, message: 'this department may not use the image' };
  const min = imageMinStorageGiB(image);
  if (use.storageGiB !== undefined && use.storageGiB < min)
    return { field: 'storage', message: `the image needs a disk of at least ${min} GiB` };
  return null;
}
