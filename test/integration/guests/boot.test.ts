/**
 * A machine that runs an OS, proved end to end on the real stack (HTTP API, Temporal, MariaDB, libvirtd,
 * QEMU under TCG where KVM cannot boot Linux): the project's own Debian image is uploaded through the API,
 * a template uses it, and a machine created from it with a user, a password, an SSH key and a host name
 * boots, takes a DHCP lease on its network, answers the guest agent, and is provisioned as asked (checked
 * inside the guest through the agent, and by an SSH login with the key from the network's namespace). The
 * password appears in no operation record, event, or Temporal history. Reboot and reset come back to a
 * running guest; destroy shuts it down gracefully (no forced fallback) and leaves nothing (disk, seed,
 * domain, filter, row). One booted guest for the whole suite: a TCG boot takes minutes.
 */
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { type Department } from '../../../src/entities/department';
import { Event } from '../../../src/entities/event';
import { Host } from '../../../src/entities/host';
import { Operation } from '../../../src/entities/operation';
import { type User } from '../../../src/entities/user';
import { sha512Crypt } from '../../../src/guests/crypt';
import { type Domain } from '../../../src/libvirt/connection';
import { startHypervisorWatch } from '../../../src/worker/host-sync';
import { libvirtNames } from '../../../src/workflows/shared';
import { startApi, type ApiHarness } from '../../support/api-harness';
import { bridgeClient } from '../../support/bridge-client';
import { deleteAndWait, operationEnded } from '../../support/api-operations';
import { seedDepartment, seedUser } from '../../support/db';
import { NO_HYPERVISOR_TRACE, tracesOf } from '../../support/leftovers';
import { waitFor } from '../../support/machines';
import { NETNS } from '../../support/networks';
import { startStack, TEST_NETWORK, TEST_POOL, type Stack } from '../../support/stack';

jest.setTimeout(20 * 60_000);

const execFileAsync = promisify(execFile);

const BOOT_DEADLINE_MS = 12 * 60_000;
const PASSWORD = `pw-${randomUUID()}`;

/** Runs a program in the guest through the QEMU guest agent; its exit code and output. */
async function guestExec(dom: Domain, file: string, args: string[] = [], deadlineMs = 60_000) {
  const started = JSON.parse(
    await dom.qemuAgentCommand(
      JSON.stringify({ execute: 'guest-exec', arguments: { path: file, arg: args, 'capture-output': true } }),
      30,
    ),
  ) as { return: { pid: number } };
  return waitFor(
    async () => {
      const s = JSON.parse(
        await dom.qemuAgentCommand(
          JSON.stringify({ execute: 'guest-exec-status', arguments: { pid: started.return.pid } }),
          30,
        ),
      ) as { return: { exited: boolean; exitcode?: number; 'out-data'?: string; 'err-data'?: string } };
      if (!s.return.exited) return undefined;
      const text = (b64?: string) => (b64 ? Buffer.from(b64, 'base64').toString('utf8') : '');
      return {
        code: s.return.exitcode ?? -1,
        out: text(s.return['out-data']),
        err: text(s.return['err-data']),
      };
    },
    `${file} in the guest`,
    deadlineMs,
  );
}

describe('a machine from the project image boots and is provisioned', () => {
  let stack: Stack;
  let h: ApiHarness;
  let watch: Awaited<ReturnType<typeof startHypervisorWatch>>;
  let admin: User;
  let alice: User;
  let dept: Department;
  let work: string;
  let publicKey: string;
  let imageId: string;
  let templateId: string;
  let machineId: string;
  let domain: Domain;

  const operation = (id: string) => operationEnded(h, admin, id, 10 * 60_000);
  const machine = async () => (await h.call('GET', `/api/machines/${machineId}`, { as: alice })).body;
  /** Waits until the guest agent answers and the guest has an address, after the boot `after` (if any). */
  const booted = async (after?: string) =>
    waitFor(
      async () => {
        const m = await machine();
        if (m.status !== 'running' || m.guestAgent !== 'connected' || m.ipAddresses.length === 0)
          return undefined;
        const id = await guestExec(domain, '/bin/cat', ['/proc/sys/kernel/random/boot_id']).catch(() => null);
        const bootId = id?.out.trim();
        return bootId && bootId !== after ? { machine: m, bootId } : undefined;
      },
      'the guest to boot and answer its agent',
      BOOT_DEADLINE_MS,
    );

  /** ssh's arguments for `command` as alice with the suite's key (no prompt, no known-hosts file). */
  const sshArgs = (address: string, timeoutSec: number, command: string) => [
    '-i',
    `${work}/key`,
    '-o',
    'BatchMode=yes',
    '-o',
    'StrictHostKeyChecking=no',
    '-o',
    'UserKnownHostsFile=/dev/null',
    '-o',
    `ConnectTimeout=${timeoutSec}`,
    `alice@${address}`,
    command,
  ];

  beforeAll(async () => {
    stack = await startStack();
    h = await startApi(stack);
    const host = await stack.dataSource.getRepository(Host).findOneByOrFail({ name: stack.hostName });
    watch = await startHypervisorWatch({ libvirt: stack.libvirt, dataSource: stack.dataSource }, host.id, {
      guestIntervalMs: 2_000,
    });
    admin = await seedUser(stack.dataSource, 'ADMIN');
    alice = await seedUser(stack.dataSource);
    dept = await seedDepartment(stack.dataSource, [[alice, 'MEMBER']]);
    work = mkdtempSync(path.join(tmpdir(), 'vmflow-boot-'));
    execFileSync('ssh-keygen', [
      '-q',
      '-t',
      'ed25519',
      '-N',
      '',
      '-C',
      'alice@boot-test',
      '-f',
      `${work}/key`,
    ]);
    publicKey = readFileSync(`${work}/key.pub`, 'utf8').trim();

    // The image, uploaded through the API as an operator would (streamed, sha256 checked).
    const file = execFileSync('bash', ['scripts/image/build.sh'], { encoding: 'utf8' })
      .trim()
      .split('\n')
      .pop()!;
    const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
    const created = await h.call('POST', '/api/images', {
      as: admin,
      body: {
        name: `debian-12-vmflow-${randomUUID().slice(0, 8)}`,
        osFamily: 'linux',
        format: 'qcow2',
        hostName: stack.hostName,
        firmware: 'bios',
        provisioning: 'cloud-init',
        sha256,
      },
    });
    expect(created.status).toBe(201);
    imageId = created.body.id;
    const put = await fetch(`${h.url}/api/images/${imageId}/content`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${h.token(admin)}`,
        'content-type': 'application/octet-stream',
        'content-length': String(statSync(file).size),
      },
      body: Readable.toWeb(createReadStream(file)) as unknown as ReadableStream,
      duplex: 'half',
    } as RequestInit);
    expect(put.status).toBe(202);
    const imported = await operation(((await put.json()) as { operation: { id: string } }).operation.id);
    expect(imported.status).toBe('succeeded');

    const template = await h.call('POST', '/api/templates', {
      as: admin,
      body: {
        name: `debian-small-${randomUUID().slice(0, 8)}`,
        cpu: 1,
        memory: 1024,
        storage: 4,
        os: 'debian-12',
        imageId,
        diskMode: 'linked',
      },
    });
    expect(template.status).toBe(201);
    expect(template.body).toMatchObject({ imageId, diskMode: 'linked' });
    templateId = template.body.id;

    const create = await h.call('POST', '/api/machines', {
      as: alice,
      body: {
        name: 'Web 1',
        templateId,
        departmentId: dept.id,
        start: true,
        username: 'alice',
        password: PASSWORD,
        sshKeys: [publicKey],
        hostname: 'web-1',
      },
    });
    expect(create.status).toBe(202);
    machineId = create.body.machine.id;
    const done = await operation(create.body.operation.id);
    expect(done.status).toBe('succeeded');
    domain = await (await stack.libvirt.get()).lookupDomainByName(libvirtNames.domain(machineId));
  });

  afterAll(async () => {
    await watch?.stop();
    if (machineId) await deleteAndWait(h, admin, `/api/machines/${machineId}`);
    if (templateId) await h.call('DELETE', `/api/templates/${templateId}`, { as: admin });
    if (imageId) await deleteAndWait(h, admin, `/api/images/${imageId}`);
    await h?.close();
    await stack?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  let firstBoot: string;

  it('boots, takes a lease on its network and answers the guest agent', async () => {
    const { machine: m, bootId } = await booted();
    firstBoot = bootId;
    expect(m.guestAgent).toBe('connected');
    expect(m.ipAddresses[0]).toMatch(/^10\.250\.0\.\d+$/); // the test network's DHCP range, in the namespace
    // The agent answers after cloud-init's first stage; its later stages (SSH host keys, sshd) follow.
    const done = await guestExec(domain, '/usr/bin/cloud-init', ['status', '--wait'], 10 * 60_000);
    expect(done.out).toMatch(/status: done/);
  });

  it('has the provisioned host name, user, password and SSH key', async () => {
    expect((await guestExec(domain, '/bin/hostname')).out.trim()).toBe('web-1');
    const passwd = await guestExec(domain, '/usr/bin/getent', ['passwd', 'alice']);
    expect(passwd.code).toBe(0);
    expect(passwd.out).toMatch(/^alice:x:\d+:\d+:.*:\/home\/alice:\/bin\/bash$/m);
    const keys = await guestExec(domain, '/bin/cat', ['/home/alice/.ssh/authorized_keys']);
    expect(keys.out).toContain(publicKey);
    // The shadow entry is a SHA-512 crypt of exactly the password given (the seed carried only the hash).
    const shadow = (await guestExec(domain, '/usr/bin/getent', ['shadow', 'alice'])).out.split(':')[1]!;
    expect(shadow).toMatch(/^\$6\$/);
    const salt = shadow.split('$').slice(2, -1).join('$');
    expect(sha512Crypt(PASSWORD, salt.replace(/^rounds=\d+\$/, ''), roundsOf(shadow))).toBe(shadow);
  });

  it('lets the user log in over SSH with the key, from the network side in the namespace', async () => {
    const [ip] = (await machine()).ipAddresses as string[];
    const ssh = async (timeoutSec: number) =>
      (
        await execFileAsync('ip', [
          'netns',
          'exec',
          NETNS,
          'ssh',
          ...sshArgs(ip!, timeoutSec, 'id -un; hostname'),
        ])
      ).stdout;
    // The department's default policy (ALLOW_ALL) lets the login in.
    expect((await ssh(30)).trim().split('\n')).toEqual(['alice', 'web-1']);
  });

  it("enforces the firewall on packets from another port of the bridge: preset, then the VM's ssh PROVIDE", async () => {
    const [guestIp] = (await machine()).ipAddresses as string[];
    const bridge = await (
      await (await stack.libvirt.get()).lookupNetworkByName(TEST_NETWORK)
    ).getBridgeName();
    // A static address below the network's DHCP range (.100–.250), distinct per run.
    const client = await bridgeClient(bridge, `10.250.0.${20 + Math.floor(Math.random() * 60)}`);
    try {
      const ssh = (timeoutSec: number) => client.run('ssh', sshArgs(guestIp!, timeoutSec, 'hostname'));
      const succeeded = async (r: { status: number; body: { operation: { id: string } } }) => {
        expect(r.status).toBe(202);
        expect((await operation(r.body.operation.id)).status).toBe('succeeded');
      };
      const provide = async (enabled: boolean) =>
        succeeded(
          await h.call('PUT', `/api/machines/${machineId}/services/ssh`, {
            as: admin,
            body: { action: 'PROVIDE', enabled },
          }),
        );
      expect((await ssh(30)).trim()).toBe('web-1'); // ALLOW_ALL
      await succeeded(
        await h.call('PUT', `/api/departments/${dept.id}/policy`, {
          as: admin,
          body: { policy: 'ALLOW_OUTBOUND' },
        }),
      );
      await expect(ssh(5)).rejects.toThrow(/timed out/i); // the SYN is dropped
      await provide(true);
      expect((await ssh(30)).trim()).toBe('web-1');
      await provide(false);
      await expect(ssh(5)).rejects.toThrow(/timed out/i);
      await succeeded(
        await h.call('PUT', `/api/departments/${dept.id}/policy`, {
          as: admin,
          body: { policy: 'ALLOW_ALL' },
        }),
      );
      expect((await ssh(30)).trim()).toBe('web-1');
    } finally {
      client.remove();
    }
  });

  it('never writes the password to an operation record, an event or the Temporal history', async () => {
    const ops = await stack.dataSource.getRepository(Operation).find({ where: { machineId } });
    expect(ops.length).toBeGreaterThan(0);
    expect(JSON.stringify(ops)).not.toContain(PASSWORD);
    const events = await stack.dataSource.getRepository(Event).find({ where: { resourceId: machineId } });
    expect(events.length).toBeGreaterThan(0);
    expect(JSON.stringify(events)).not.toContain(PASSWORD);
    const history = await stack.env.client.workflow.getHandle(`vm-${machineId}`).fetchHistory();
    const raw = JSON.stringify(history);
    expect(raw).toContain('writeSeed'); // the history is the one that wrote the seed
    expect(raw).not.toContain(PASSWORD);
    expect(raw).not.toContain(Buffer.from(PASSWORD).toString('base64'));
  });

  it('comes back running after a reboot and after a reset', async () => {
    for (const action of ['reboot', 'reset'] as const) {
      const r = await h.call('POST', `/api/machines/${machineId}/power`, { as: alice, body: { action } });
      expect(r.status).toBe(202);
      expect((await operation(r.body.operation.id)).status).toBe('succeeded');
      const { bootId } = await booted(firstBoot);
      expect(bootId).not.toBe(firstBoot);
      firstBoot = bootId;
    }
  });

  it('is destroyed by a graceful shutdown, not the forced fallback, and leaves nothing', async () => {
    // A deadline far beyond what a graceful shutdown needs, even under TCG: it must not be reached.
    const r = await h.call('DELETE', `/api/machines/${machineId}?shutdownTimeoutSec=180`, { as: alice });
    expect(r.status).toBe(202);
    const op = await operation(r.body.operation.id);
    expect(op.status).toBe('succeeded');
    const steps = op.steps as Array<{ name: string; status: string; at: string }>;
    const names = steps.map((s) => s.name);
    expect(names).toContain('shutdown');
    expect(names).not.toContain('forceOff');
    const at = (status: string) =>
      Date.parse(steps.find((s) => s.name === 'shutdown' && s.status === status)!.at);
    console.log(`graceful shutdown took ${at('completed') - at('started')} ms`);
    expect(names).toContain('deleteSeed');
    expect(await tracesOf(machineId, stack)).toEqual({ ...NO_HYPERVISOR_TRACE, row: null });
    const pool = await (await stack.libvirt.get()).lookupPoolByName(TEST_POOL);
    const seed = await pool.lookupVolumeByName(`vmflow-seed-${machineId}.iso`).catch(() => null);
    expect(seed).toBeNull();
  });
});

/** The rounds of a `$6$rounds=N$…` hash (5000, crypt's default, when absent). */
function roundsOf(hash: string): number {
  const m = /^\$6\$rounds=(\d+)\$/.exec(hash);
  return m ? Number(m[1]) : 5000;
}
