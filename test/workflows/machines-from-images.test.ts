/**
 * Machines made from an OS image, against the real dev server with stubbed activities: the disk is an
 * overlay on the image (linked) or a copy of it (full), the first-boot seed is written before the domain
 * that mounts it, every failure after the seed removes it, clone writes the clone its own seed, and
 * destroy removes the seed with the disk. Secrets travel sealed only.
 */
import { seedVolumeName } from '../../src/activities/seed';
import { type CreateMachineInput, libvirtNames } from '../../src/workflows/shared';
import {
  useWorkflowHarness,
  cloneMachineInput,
  createMachineInput,
  expectOperationFailure,
  operationContext,
} from '../support/workflow-harness';
import {
  INJECTED,
  STUB_POOL,
  createStubs,
  imagePlanFixture as imagePlan,
  machineFixture,
} from '../support/workflow-stubs';
import { uniqueId } from '../support/temporal';

const h = useWorkflowHarness();

const SEALED = { v: 1, iv: 'iv', tag: 'tag', data: 'sealed' } as const;

const createInput = (overrides: Partial<CreateMachineInput> = {}): CreateMachineInput =>
  createMachineInput({ start: true, guestSecrets: SEALED, ...overrides });

const UNTIL_VOLUME = ['beginOperation', 'planCreate', 'insertMachine', 'createVolume'];
const AFTER_SEED = ['ensureDepartmentFilter', 'ensureVmFilter', 'defineDomain', 'startDomain'];

describe('createMachine from an image', () => {
  it.concurrent.each([
    { diskMode: 'linked' as const, disk: { backingPath: imagePlan().path, backingFormat: 'qcow2' } },
    { diskMode: 'full' as const, disk: { cloneFromPath: imagePlan().path } },
  ])(
    '$diskMode: the disk from the image, the seed before the domain that mounts it',
    async ({ diskMode, disk }) => {
      const stubs = createStubs({ hostName: uniqueId('host'), planImage: imagePlan({ diskMode }) });
      const input = createInput();

      const result = await h.withWorkers(stubs, (run) => run.execute('createMachine', input));

      expect(result).toEqual({ machineId: input.machineId, status: 'running' });
      expect(stubs.labels()).toEqual([
        ...UNTIL_VOLUME,
        'writeSeed',
        ...AFTER_SEED,
        'setMachineStatus:running',
        'finishOperation:succeeded',
      ]);
      expect(stubs.inputs('createVolume')[0]).toEqual({
        pool: STUB_POOL,
        name: libvirtNames.volume(input.machineId),
        capacityGiB: 10,
        ...disk,
      });
      // The seed gets what may travel in clear and the sealed secrets, nothing else.
      expect(stubs.inputs('writeSeed')[0]).toEqual({
        pool: STUB_POOL,
        machineId: input.machineId,
        kind: 'cloud-init',
        provisioning: imagePlan().seed,
        guestSecrets: SEALED,
      });
      expect(stubs.inputs('defineDomain')[0]).toMatchObject({
        seedPath: `/var/lib/vmflow/${seedVolumeName(input.machineId)}`,
        firmware: 'bios',
      });
      expect(stubs.leftovers(input.machineId)).toEqual(['volume', 'seed', 'domain', 'filter']);
      expect(stubs.stepLabels()).toContain('writeSeed:completed');
    },
  );

  it('an image without provisioning gets no seed', async () => {
    const stubs = createStubs({
      hostName: uniqueId('host'),
      planImage: imagePlan({ provisioning: 'none', seed: undefined }),
    });
    const input = createInput({ guestSecrets: undefined });

    await h.withWorkers(stubs, (run) => run.execute('createMachine', input));

    expect(stubs.labels()).not.toContain('writeSeed');
    expect(stubs.inputs('defineDomain')[0]).not.toHaveProperty('seedPath');
    expect(stubs.leftovers(input.machineId)).toEqual(['volume', 'domain', 'filter']);
  });

  it.concurrent.each([
    { call: 'writeSeed', undos: ['deleteSeed', 'deleteVolume'] },
    {
      call: 'defineDomain',
      undos: ['undefineDomain', 'removeVmFilter', 'pruneFilters', 'deleteSeed', 'deleteVolume'],
    },
    {
      call: 'startDomain',
      undos: [
        'forceOffDomain',
        'undefineDomain',
        'removeVmFilter',
        'pruneFilters',
        'deleteSeed',
        'deleteVolume',
      ],
    },
  ])('a failure at $call removes the seed with the rest: $undos', async ({ call, undos }) => {
    const stubs = createStubs({
      hostName: uniqueId('host'),
      planImage: imagePlan(),
      fail: { [call]: INJECTED },
    });
    const input = createInput();

    await h.withWorkers(stubs, async (run) =>
      expectOperationFailure((await run.start('createMachine', input)).result(), INJECTED),
    );

    const forward = [...UNTIL_VOLUME, 'writeSeed', ...AFTER_SEED];
    expect(stubs.labels()).toEqual([
      ...forward.slice(0, forward.indexOf(call) + 1),
      ...undos,
      'failMachine',
      'finishOperation:failed',
    ]);
    expect(stubs.inputs('deleteSeed')).toEqual([{ pool: STUB_POOL, machineId: input.machineId }]);
    expect(stubs.leftovers(input.machineId)).toEqual([]);
    expect(stubs.world.machines.get(input.machineId)?.status).toBe('failed');
  });
});

describe('cloneMachine of a machine made from an image', () => {
  it('the clone gets its own seed (its own id) and its disk from the source', async () => {
    const hostName = uniqueId('host');
    const source = machineFixture(uniqueId('m'), hostName, { imageId: 'image-1' });
    const stubs = createStubs({
      hostName,
      machines: [source],
      planImage: imagePlan({ seed: { ...imagePlan().seed!, hostname: 'copy' } }),
    });
    const input = cloneMachineInput(source.id);

    await h.withWorkers(stubs, (run) => run.execute('cloneMachine', input));

    const [volume] = stubs.inputs<{ backingPath?: string; cloneFromPath?: string }>('createVolume');
    expect(volume!.backingPath).toBe(source.diskPath);
    expect(stubs.inputs('writeSeed')[0]).toMatchObject({
      machineId: input.machineId,
      provisioning: { hostname: 'copy' },
    });
    expect(stubs.leftovers(input.machineId)).toEqual(['volume', 'seed', 'domain', 'filter']);
    // The source keeps its own seed-less world untouched.
    expect(stubs.world.volumes.has(libvirtNames.volume(source.id))).toBe(true);
  });

  it("a failure after the seed removes the clone's seed, never the source's", async () => {
    const hostName = uniqueId('host');
    const source = machineFixture(uniqueId('m'), hostName, { imageId: 'image-1' });
    const stubs = createStubs({
      hostName,
      machines: [source],
      planImage: imagePlan(),
      fail: { defineDomain: INJECTED },
    });
    stubs.world.volumes.set(seedVolumeName(source.id), 0);
    const input = cloneMachineInput(source.id);

    await h.withWorkers(stubs, async (run) =>
      expectOperationFailure((await run.start('cloneMachine', input)).result(), INJECTED),
    );

    expect(stubs.inputs('deleteSeed')).toEqual([{ pool: STUB_POOL, machineId: input.machineId }]);
    expect(stubs.leftovers(input.machineId)).toEqual([]);
    expect(stubs.world.volumes.has(seedVolumeName(source.id))).toBe(true);
  });
});

describe('destroyMachine of a machine made from an image', () => {
  it('removes the seed after the disk; a machine without an image has no seed step', async () => {
    const hostName = uniqueId('host');
    const imaged = machineFixture(uniqueId('m'), hostName, { imageId: 'image-1' });
    const plain = machineFixture(uniqueId('m'), hostName);
    const stubs = createStubs({ hostName, machines: [imaged, plain] });
    stubs.world.volumes.set(seedVolumeName(imaged.id), 0);

    await h.withWorkers(stubs, async (run) => {
      await run.execute('destroyMachine', { ...operationContext(), machineId: imaged.id });
      await run.execute('destroyMachine', { ...operationContext(), machineId: plain.id });
    });

    const labels = stubs.labels();
    const first = labels.slice(0, labels.indexOf('finishOperation:succeeded') + 1);
    expect(first.slice(first.indexOf('deleteVolume'), first.indexOf('deleteVolume') + 2)).toEqual([
      'deleteVolume',
      'deleteSeed',
    ]);
    expect(labels.filter((l) => l === 'deleteSeed')).toHaveLength(1);
    expect(stubs.inputs('deleteSeed')).toEqual([{ pool: STUB_POOL, machineId: imaged.id }]);
    expect(stubs.leftovers(imaged.id)).toEqual([]);
    expect(stubs.world.volumes.has(seedVolumeName(imaged.id))).toBe(false);
  });
});
