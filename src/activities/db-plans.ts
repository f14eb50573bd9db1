/**
 * The four `plan*` validators of the machine workflows: each checks a request against the database and
 * resolves what the workflow needs (defaults, host, network, libvirt names, filter specs), writing nothing.
 * Part of {@link createDbActivities}.
 */
import { type EntityManager, In } from 'typeorm';
import { Department, DepartmentMember } from '../entities/department';
import { FirewallFilter } from '../entities/firewall';
import { Host } from '../entities/host';
import { Image } from '../entities/image';
import { checkProvisioningForImage, hostnameFromName, type Provisioning } from '../guests/provisioning';
import { Machine } from '../entities/machine';
import { MachineTemplate } from '../entities/machine-template';
import { User } from '../entities/user';
import {
  compileMachineFilters,
  departmentServices,
  machineVmContent,
  type MachineFilterSpecs,
} from '../firewall/load';
import {
  FailureType,
  libvirtNames,
  type CreateMachineInput,
  type SealedSecretRef,
} from '../workflows/shared';
import { permanent } from './failures';
import {
  type CreatePlan,
  type DbActivityDeps,
  type DepartmentChangePlan,
  type MachineView,
  type PlannedImage,
} from './db-types';
import { assertOwnRetry, loadMachineView } from './db-machines';
import {
  hostFitProblem,
  imageUseProblem,
  mayOwnIn,
  nameProblem,
  nameTakenMessage,
  ownerProblem,
  rangeProblem,
  type HardwareField,
  type MachineProblem,
} from '../machines/rules';
import { DEPARTMENT_CHANGE_FROM } from '../workflows/shared';

/** The statuses a machine can change department from (one definition, beside the other status sets). */
export { DEPARTMENT_CHANGE_FROM };

/** Fails with a validation failure naming the field (the rules are src/machines/rules.ts, shared with the API). */
function failOn(problem: MachineProblem | null): void {
  if (problem) throw permanent(FailureType.Validation, problem.message, { field: problem.field });
}

function checkRange(field: HardwareField, value: number | undefined): void {
  failOn(rangeProblem(field, value));
}

/** Validates a machine name: 1–100 printable characters, no control characters, not blank. */
export function checkMachineName(name: string): void {
  failOn(nameProblem(name));
}

/**
 * The host a new machine or network goes on: the one named, else the first registered (by name). Fails
 * NotFound on `hostName` when there is none.
 */
export async function resolveHost(m: EntityManager, hostName: string | undefined): Promise<Host> {
  const host = hostName
    ? await m.findOne(Host, { where: { name: hostName } })
    : await m.findOne(Host, { where: {}, order: { name: 'ASC' } });
  if (!host)
    throw permanent(FailureType.NotFound, hostName ? 'host not found' : 'no hypervisor host is registered', {
      field: 'hostName',
    });
  return host;
}

/**
 * The image a template makes machines from, checked for this machine: ready, open to the department, no
 * bigger than the disk, on the host asked for (if any), and the provisioning fitting its OS family.
 * Null for a template without an image.
 */
async function planImage(
  m: EntityManager,
  template: MachineTemplate,
  use: {
    departmentId: string;
    storageGiB: number;
    hostName?: string;
    provisioning?: Provisioning;
    /** The machine's name and id: the default host name is derived from them. */
    machine: { name: string; id: string };
  },
): Promise<{ planned: PlannedImage; hostName: string } | null> {
  if (!template.imageId) return null;
  const image = await m.findOne(Image, { where: { id: template.imageId } });
  const problem = imageUseProblem(image, {
    field: 'templateId',
    departmentId: use.departmentId,
    storageGiB: use.storageGiB,
  });
  if (problem) throw permanent(FailureType.Refused, problem.message, { field: problem.field });
  const ready = image!;
  if (use.hostName && use.hostName !== ready.hostName)
    throw permanent(FailureType.Refused, `the image is on host ${ready.hostName}`, { field: 'hostName' });
  const [first] = use.provisioning ? checkProvisioningForImage(use.provisioning, ready) : [];
  if (first)
    throw permanent(first.status === 400 ? FailureType.Validation : FailureType.Refused, first.message, {
      field: first.field,
    });
  return {
    hostName: ready.hostName,
    planned: plannedImage(
      ready,
      template.diskMode,
      use.provisioning ?? {
        hostname: hostnameFromName(use.machine.name, use.machine.id),
        sshKeys: [],
        hasPassword: false,
        hasProductKey: false,
        hasUserData: false,
      },
    ),
  };
}

/** What a machine's disk and seed are made from: the image, the disk mode, and the seed's provisioning
 * (none for an image without provisioning, or when there is nothing to provision). */
function plannedImage(image: Image, diskMode: PlannedImage['diskMode'], seed?: Provisioning): PlannedImage {
  return {
    id: image.id,
    path: image.path!,
    format: image.format,
    firmware: image.firmware,
    provisioning: image.provisioning,
    diskMode,
    ...(image.provisioning !== 'none' && seed ? { seed } : {}),
  };
}

/**
 * The image a clone's disk descends from, and its own seed: its source's provisioning (user, SSH keys, the
 * sealed secrets) under its own host name and machine id (a new cloud-init instance). Null when the source
 * was not made from an image.
 */
async function cloneImage(
  m: EntityManager,
  sourceId: string,
  clone: { machineId: string; name: string; hostname?: string },
): Promise<{ image: PlannedImage; guestSecrets?: SealedSecretRef } | null> {
  const row = await m
    .getRepository(Machine)
    .createQueryBuilder('m')
    .select(['m.id', 'm.imageId', 'm.provisioning'])
    .addSelect('m.guestSecrets')
    .where('m.id = :id', { id: sourceId })
    .getOne();
  if (!row?.imageId) return null;
  const image = await m.findOne(Image, { where: { id: row.imageId } });
  if (!image?.path)
    throw permanent(FailureType.Refused, "the source's image is gone", { field: 'sourceMachineId' });
  const hostname = clone.hostname ?? hostnameFromName(clone.name, clone.machineId);
  return {
    image: plannedImage(image, 'linked', row.provisioning ? { ...row.provisioning, hostname } : undefined),
    ...(row.guestSecrets ? { guestSecrets: row.guestSecrets as unknown as SealedSecretRef } : {}),
  };
}

/** The enabled (service, action) pairs of effective settings. */
function departmentServicesOf(
  list: Array<{ serviceId: string; action: 'USE' | 'PROVIDE'; enabled: boolean }>,
) {
  return list.filter((s) => s.enabled).map(({ serviceId, action }) => ({ serviceId, action }));
}

/** The compiled filter specs of a plan. */
function planSpecs(specs: MachineFilterSpecs): Pick<CreatePlan, 'departmentFilterSpecs' | 'vmFilterSpec'> {
  return { departmentFilterSpecs: specs.shared, vmFilterSpec: specs.vm };
}

/** Activities that validate and plan machine operations (read-only). Run on the control task queue. */
export function createPlanDbActivities({ dataSource }: DbActivityDeps) {
  return {
    /** Validates a create request and resolves its defaults, host, network and libvirt names. */
    async planCreate(input: CreateMachineInput): Promise<CreatePlan> {
      checkMachineName(input.name);
      checkRange('cpu', input.cpu);
      checkRange('memoryMiB', input.memoryMiB);
      checkRange('storageGiB', input.storageGiB);
      const m = dataSource.manager;
      const [template, dept, owner] = await Promise.all([
        m.findOne(MachineTemplate, { where: { id: input.templateId } }),
        m.findOne(Department, { where: { id: input.departmentId } }),
        m.findOne(User, { where: { id: input.ownerId } }),
      ]);
      if (!template) throw permanent(FailureType.NotFound, 'template not found', { field: 'templateId' });
      if (!dept) throw permanent(FailureType.NotFound, 'department not found', { field: 'departmentId' });
      const member =
        owner !== null && !mayOwnIn(owner, false)
          ? await m.exists(DepartmentMember, { where: { departmentId: dept.id, userId: owner.id } })
          : false;
      const ownerIs = ownerProblem(owner, member);
      if (ownerIs === 'unknown')
        throw permanent(FailureType.NotFound, 'owner not found', { field: 'ownerId' });
      if (ownerIs === 'not_member')
        throw permanent(FailureType.Forbidden, 'the owner is not a member of this department', {
          field: 'departmentId',
        });
      const image = await planImage(m, template, {
        departmentId: dept.id,
        storageGiB: input.storageGiB ?? template.storageGiB,
        hostName: input.hostName,
        provisioning: input.provisioning,
        machine: { name: input.name, id: input.machineId },
      });
      // A machine from an image lives where the image is (its disk is made from the image's volume).
      const host = await resolveHost(m, image?.hostName ?? input.hostName);
      const cpu = input.cpu ?? template.cpu;
      const memoryMiB = input.memoryMiB ?? template.memoryMiB;
      const tooBig = hostFitProblem({ cpu, memoryMiB }, host);
      if (tooBig) throw permanent(FailureType.Refused, tooBig.message, { field: tooBig.field });
      const taken = await m.exists(Machine, { where: { departmentId: dept.id, name: input.name } });
      const mine = await m.findOne(Machine, { where: { id: input.machineId } });
      assertOwnRetry(mine, input.operationId);
      if (taken && !mine)
        throw permanent(FailureType.NameTaken, nameTakenMessage(input.name), { field: 'name' });
      // A new machine has no rules or includes of its own; its services are its department's.
      const specs = await compileMachineFilters(m, {
        machineId: input.machineId,
        departmentId: dept.id,
        vm: {
          rules: [],
          includes: [],
          services: departmentServicesOf(await departmentServices(m, dept.id)),
        },
      });
      return {
        ...planSpecs(specs),
        cpu,
        memoryMiB,
        storageGiB: input.storageGiB ?? template.storageGiB,
        os: template.os,
        internalName: libvirtNames.domain(input.machineId),
        filterName: libvirtNames.vmFilter(input.machineId),
        departmentFilterName: dept.filterName,
        ...(image ? { image: image.planned } : {}),
        networkName: input.networkName ?? dept.networkName ?? host.defaultNetwork,
        host: {
          name: host.name,
          storagePool: host.storagePool,
          cpus: host.cpus,
          memoryMiB: Number(host.memoryMiB),
        },
      };
    },

    /** Validates a clone request: the source exists and is off, the name is free. Returns the source and the plan. */
    async planClone(input: {
      sourceMachineId: string;
      machineId: string;
      name: string;
      operationId: string;
      /** The clone's host name (default: derived from its name). */
      hostname?: string;
    }): Promise<{ source: MachineView; plan: CreatePlan; guestSecrets?: SealedSecretRef }> {
      checkMachineName(input.name);
      const m = dataSource.manager;
      const source = await loadMachineView(m, input.sourceMachineId);
      if (!source)
        throw permanent(FailureType.NotFound, 'source machine not found', { field: 'sourceMachineId' });
      if (source.status !== 'off') {
        throw permanent(FailureType.Refused, `the source must be off to be cloned (it is ${source.status})`, {
          field: 'sourceMachineId',
        });
      }
      if (!source.diskPath)
        throw permanent(FailureType.Refused, 'the source has no disk', { field: 'sourceMachineId' });
      const taken = await m.exists(Machine, {
        where: { departmentId: source.departmentId, name: input.name },
      });
      const mine = await m.findOne(Machine, { where: { id: input.machineId } });
      assertOwnRetry(mine, input.operationId);
      if (taken && !mine)
        throw permanent(FailureType.NameTaken, nameTakenMessage(input.name), { field: 'name' });
      const host = await m.findOneOrFail(Host, { where: { name: source.hostName } });
      // The clone gets a copy of its source's VM rules, includes and service settings (insertMachine).
      const specs = await compileMachineFilters(m, {
        machineId: input.machineId,
        departmentId: source.departmentId,
        vm: await machineVmContent(m, source.id),
      });
      const imaged = await cloneImage(m, source.id, input);
      return {
        source,
        ...(imaged?.guestSecrets ? { guestSecrets: imaged.guestSecrets } : {}),
        plan: {
          ...(imaged ? { image: imaged.image } : {}),
          ...planSpecs(specs),
          cpu: source.cpu,
          memoryMiB: source.memoryMiB,
          storageGiB: source.storageGiB,
          os: source.os,
          internalName: libvirtNames.domain(input.machineId),
          filterName: libvirtNames.vmFilter(input.machineId),
          departmentFilterName: source.departmentFilterName,
          networkName: source.networkName ?? host.defaultNetwork,
          host: {
            name: host.name,
            storagePool: host.storagePool,
            cpus: host.cpus,
            memoryMiB: Number(host.memoryMiB),
          },
        },
      };
    },

    /**
     * Validates a hardware change against the limits and the host's capacity: at least one field, disks
     * only grow. Returns the machine.
     */
    async planHardware(input: {
      machineId: string;
      cpu?: number;
      memoryMiB?: number;
      storageGiB?: number;
    }): Promise<MachineView> {
      if (input.cpu === undefined && input.memoryMiB === undefined && input.storageGiB === undefined) {
        throw permanent(FailureType.Validation, 'give at least one of cpu, memory, storage', {
          field: 'cpu',
        });
      }
      checkRange('cpu', input.cpu);
      checkRange('memoryMiB', input.memoryMiB);
      checkRange('storageGiB', input.storageGiB);
      const m = dataSource.manager;
      const machine = await loadMachineView(m, input.machineId);
      if (!machine) throw permanent(FailureType.NotFound, 'machine not found', { field: 'machineId' });
      const host = await m.findOneOrFail(Host, { where: { name: machine.hostName } });
      if (input.cpu !== undefined && input.cpu > host.cpus) {
        throw permanent(FailureType.Refused, `cpu ${input.cpu} exceeds the host's ${host.cpus} CPUs`, {
          field: 'cpu',
        });
      }
      if (input.memoryMiB !== undefined && input.memoryMiB > Number(host.memoryMiB)) {
        throw permanent(
          FailureType.Refused,
          `memory ${input.memoryMiB} MiB exceeds the host's ${host.memoryMiB} MiB`,
          { field: 'memory' },
        );
      }
      if (input.storageGiB !== undefined && input.storageGiB < machine.storageGiB) {
        throw permanent(
          FailureType.Refused,
          `disks only grow: ${input.storageGiB} GiB is less than the current ${machine.storageGiB} GiB`,
          {
            field: 'storage',
          },
        );
      }
      if (
        input.storageGiB !== undefined &&
        input.storageGiB > machine.storageGiB &&
        machine.linkedClone === false
      ) {
        const clones = await m.count(Machine, { where: { sourceMachineId: machine.id, linkedClone: true } });
        if (clones > 0)
          throw permanent(FailureType.Refused, 'this machine backs linked clones; its disk cannot change', {
            field: 'storage',
          });
      }
      return machine;
    },

    /**
     * Validates a department change: the machine is off, running or suspended; the target department exists;
     * the owner is a member of it (or an admin); the name is free there; the VM filter includes no custom filter
     * of its old department. Compiles the filters it will need.
     */
    async planDepartmentChange(input: {
      machineId: string;
      departmentId: string;
      operationId: string;
    }): Promise<DepartmentChangePlan> {
      const m = dataSource.manager;
      const machine = await loadMachineView(m, input.machineId);
      if (!machine) throw permanent(FailureType.NotFound, 'machine not found', { field: 'machineId' });
      if (!DEPARTMENT_CHANGE_FROM.includes(machine.status)) {
        throw permanent(
          FailureType.IllegalTransition,
          `machine is ${machine.status}, expected ${DEPARTMENT_CHANGE_FROM.join(' or ')}`,
          { status: machine.status },
        );
      }
      const dept = await m.findOne(Department, { where: { id: input.departmentId } });
      if (!dept) throw permanent(FailureType.NotFound, 'department not found', { field: 'departmentId' });
      const owner = await m.findOne(User, { where: { id: machine.ownerId } });
      if (
        !mayOwnIn(owner, false) &&
        !(await m.exists(DepartmentMember, { where: { departmentId: dept.id, userId: machine.ownerId } }))
      )
        throw permanent(FailureType.Forbidden, "the machine's owner is not a member of this department", {
          field: 'departmentId',
        });
      const noop = machine.departmentId === dept.id;
      if (!noop && (await m.exists(Machine, { where: { departmentId: dept.id, name: machine.name } }))) {
        throw permanent(
          FailureType.NameTaken,
          `a machine named "${machine.name}" exists in that department`,
          {
            field: 'departmentId',
          },
        );
      }
      const content = await machineVmContent(m, machine.id, dept.id);
      if (content.includes.length > 0) {
        const scoped = await m.find(FirewallFilter, { where: { id: In(content.includes), kind: 'custom' } });
        const foreign = scoped.filter((f) => f.departmentId && f.departmentId !== dept.id);
        if (foreign.length > 0) {
          throw permanent(
            FailureType.Refused,
            `the machine's filter includes custom filters of its department (${foreign.map((f) => f.id).join(', ')}): remove them first`,
            { field: 'departmentId' },
          );
        }
      }
      const specs = await compileMachineFilters(m, {
        machineId: machine.id,
        departmentId: dept.id,
        vm: content,
      });
      return {
        machine,
        noop,
        departmentFilterName: dept.filterName,
        departmentFilterSpecs: specs.shared,
        vmFilterSpec: specs.vm,
        pruneCandidates: noop ? [] : [machine.departmentFilterName],
      };
    },
  };
}
