/**
 * Guest reads and commands end to end on the real stack (HTTP API, Temporal, MariaDB, libvirtd, QEMU — KVM
 * where it runs, TCG otherwise) against one booted guest of the project's Debian image for the whole suite:
 * `GET …/guest` (QEMU guest agent), processes, services and packages (vmflow's agent, through the host
 * worker's watcher), exec with its exit code, output cap, timeout and secret standard input, kill, service
 * stop/start, who may do what, 503 when an agent is gone or the machine is off, 504 when the agent is
 * silent, and operation records that name their actor and hold no secret. And issue 11's end-to-end proof
 * of VM metrics on that guest (docs/metrics.md): the worker's collector, fed by the suite's agent watcher,
 * stores points with libvirt's and the agent's fields; the owner's subscribed socket gets `vms:metrics`,
 * another department's is refused; a killed agent is restarted by systemd and says hello again; a guest
 * reboot keeps the series.
 */
/* eslint-disable @typescript-eslint/no-explicit-any -- API bodies and socket payloads are JSON read loosely */
import { createHash, randomUUID } from 'node:crypto';
import pino from 'pino';
import { METRICS_EVENT, METRICS_SUBSCRIBE, type SubscribeAck } from '../../../src/api/metrics-feed';
import { type Department } from '../../../src/entities/department';
import { Event } from '../../../src/entities/event';
import { Host } from '../../../src/entities/host';
import { Machine } from '../../../src/entities/machine';
import { Operation } from '../../../src/entities/operation';
import { type User } from '../../../src/entities/user';
import { METRIC_FIELDS } from '../../../src/metrics/point';
import {
  type AgentWatcher,
  createAgentWatcher,
  libvirtDomainSource,
} from '../../../src/worker/agent-watcher';
import { createMetricsCollector, type MetricsCollector } from '../../../src/worker/metrics-collector';
import { GUEST_EXEC_MAX_OUTPUT_BYTES } from '../../../src/workflows/shared';
import { startApi, type ApiHarness, type RecordingSocket } from '../../support/api-harness';
import { deleteAndWait, operationEnded } from '../../support/api-operations';
import { seedDepartment, seedUser } from '../../support/db';
import { projectImageTemplate } from '../../support/guests';
import { waitFor } from '../../support/machines';
import { startStack, type Stack } from '../../support/stack';

jest.setTimeout(20 * 60_000);

const BOOT_DEADLINE_MS = 12 * 60_000;

/** `check`, at most once a second: each try of a guest read is a workflow. */
const everySecond =
  <T>(check: () => Promise<T | undefined | false>) =>
  async () => {
    const v = await check();
    if (!v) await new Promise((r) => setTimeout(r, 1000));
    return v;
  };
const SECRET = `stdin-secret-${randomUUID()}`;
/** The collector's interval here (the worker's default is 10 s; a configured setting, not a timing assertion). */
const METRICS_INTERVAL_MS = 2_000;

describe('guest reads and commands on a booted guest', () => {
  let stack: Stack;
  let h: ApiHarness;
  let admin: User;
  let manager: User;
  let alice: User;
  let stranger: User;
  let dept: Department;
  let imageId: string;
  let templateId: string;
  let machineId: string;
  let watcher: AgentWatcher;
  let collector: MetricsCollector;
  /** When the create operation (start included) ended, and when vmflow's agent was first seen connected. */
  let bootedAt: number;
  let agentAt: number;

  const url = (rest = '') => `/api/machines/${machineId}${rest}`;
  const operation = (id: string) => operationEnded(h, admin, id, 5 * 60_000);
  /** Runs a guest command as `as` and gives its finished operation. */
  const command = async (path: string, body: unknown, as: User = manager) => {
    const r = await h.call('POST', url(path), { as, body });
    expect(r.status).toBe(202);
    return operation(r.body.operation.id);
  };
  const exec = async (cmd: string, args: string[] = [], more: Record<string, unknown> = {}) => {
    const op = await command('/guest/exec', { command: cmd, args, ...more });
    expect(op).toMatchObject({ type: 'guest_exec', status: 'succeeded' });
    return op.result as {
      exitCode: number | null;
      signal: number | null;
      timedOut: boolean;
      stdout: string;
      stderr: string;
      stdoutTruncated: boolean;
    };
  };
  const services = async () =>
    (await h.call('GET', url('/guest/services'), { as: alice })).body.services as Array<{
      name: string;
      state: string;
    }>;
  const stateOf = async (name: string) => (await services()).find((s) => s.name === name)?.state;
  /** The VM's series at the collection interval, as its owner reads it. */
  const series = async (from: number) => {
    const q = `from=${new Date(from).toISOString()}&to=${new Date(Date.now() + 1000).toISOString()}`;
    const r = await h.call('GET', url(`/metrics?${q}&step=${METRICS_INTERVAL_MS / 1000}`), { as: alice });
    expect(r.status).toBe(200);
    return r.body;
  };
  /** The starts (ms) of the buckets in which every field is known: libvirt's and the agent's. */
  const fullPoints = (b: any): number[] =>
    (b.at as string[])
      .filter((_, i) => METRIC_FIELDS.every((f) => typeof b[f][i] === 'number'))
      .map((a) => Date.parse(a));

  beforeAll(async () => {
    stack = await startStack({
      // The host worker's watcher, as src/worker/main.ts builds it: only this suite's host's machines.
      agents: ({ libvirt, dataSource, hostName }) =>
        (watcher = createAgentWatcher({
          source: libvirtDomainSource(libvirt, {
            owns: async (id) => {
              const host = await dataSource.getRepository(Host).findOneBy({ name: hostName });
              return !!host && dataSource.getRepository(Machine).exists({ where: { id, hostId: host.id } });
            },
          }),
          hostName,
          logger: pino({ level: 'silent' }),
          reconcileMs: 2_000,
        })),
    });
    // The worker's metrics collector (src/worker/main.ts): this host's machines, the watcher's samples. No
    // Redis: the API's live feed polls (every 5 s), as it does while Redis is down.
    const host = await stack.dataSource.getRepository(Host).findOneByOrFail({ name: stack.hostName });
    collector = createMetricsCollector({
      libvirt: stack.libvirt,
      dataSource: stack.dataSource,
      hostId: host.id,
      owns: (id) => stack.dataSource.getRepository(Machine).exists({ where: { id, hostId: host.id } }),
      agentSample: (id) => {
        const s = watcher.status(id);
        return s?.metrics && s.metricsAt ? { metrics: s.metrics, at: s.metricsAt } : null;
      },
      logger: pino({ level: 'silent' }),
      intervalMs: METRICS_INTERVAL_MS,
      rawRetentionS: 3600,
      rollupRetentionS: 7 * 86_400,
      purgeIntervalMs: 3_600_000,
    });
    collector.start();
    h = await startApi(stack, { metrics: { intervalMs: METRICS_INTERVAL_MS, rawRetentionS: 3600 } });
    admin = await seedUser(stack.dataSource, 'ADMIN');
    manager = await seedUser(stack.dataSource);
    alice = await seedUser(stack.dataSource);
    stranger = await seedUser(stack.dataSource);
    dept = await seedDepartment(stack.dataSource, [
      [manager, 'MANAGER'],
      [alice, 'MEMBER'],
    ]);
    await seedDepartment(stack.dataSource, [[stranger, 'MANAGER']]);
    ({ imageId, templateId } = await projectImageTemplate(h, admin, stack.hostName, 'guest-cmd'));
    const create = await h.call('POST', '/api/machines', {
      as: alice,
      body: {
        name: 'Guest 1',
        templateId,
        departmentId: dept.id,
        start: true,
        username: 'alice',
        hostname: 'guest-1',
      },
    });
    expect(create.status).toBe(202);
    machineId = create.body.machine.id;
    expect((await operation(create.body.operation.id)).status).toBe('succeeded');
    bootedAt = Date.now();
    // Booted: the QEMU guest agent answers with the provisioned host name, and vmflow's agent is connected.
    const started = Date.now();
    await waitFor(
      everySecond(async () => {
        const r = await h.call('GET', url('/guest'), { as: alice });
        return r.status === 200 && r.body.hostname === 'guest-1';
      }),
      'the guest to boot and answer its QEMU guest agent',
      BOOT_DEADLINE_MS,
    );
    await waitFor(
      everySecond(async () => (await h.call('GET', url('/processes'), { as: alice })).status === 200),
      "vmflow's agent to connect",
      BOOT_DEADLINE_MS,
    );
    agentAt = watcher.status(machineId)?.helloAt?.getTime() ?? Date.now();
    // Settled: cloud-init's last stages done (systemd is busy until then and slow to list its units).
    const settled = await exec('/usr/bin/cloud-init', ['status', '--wait'], { timeoutS: 600 });
    expect(settled.stdout).toMatch(/status: done/);
    console.log(`guest ready for commands ${Date.now() - started} ms after its create operation ended`);
  });

  afterAll(async () => {
    await collector?.stop();
    if (machineId) await deleteAndWait(h, admin, url());
    if (templateId) await h.call('DELETE', `/api/templates/${templateId}`, { as: admin });
    if (imageId) await deleteAndWait(h, admin, `/api/images/${imageId}`);
    await h?.close();
    await stack?.stop();
  });

  it("GET /guest: the QEMU guest agent's OS, host name, time zone, interfaces with addresses, file systems", async () => {
    const info = await waitFor(
      everySecond(async () => {
        const r = await h.call('GET', url('/guest'), { as: alice });
        const eth = r.body.interfaces?.find((i: { name: string }) => i.name !== 'lo');
        return eth?.addresses.some((a: { type: string }) => a.type === 'ipv4') ? r.body : undefined;
      }),
      'the guest to report an IPv4 address',
      5 * 60_000,
    );
    expect(info).toMatchObject({
      hostname: 'guest-1',
      os: { id: 'debian', versionId: '12', machine: 'x86_64' },
    });
    expect(info.timezone).toMatchObject({ offsetS: expect.any(Number) });
    expect(Array.isArray(info.users)).toBe(true);
    const eth = info.interfaces.find((i: { name: string }) => i.name !== 'lo');
    expect(eth.hardwareAddress).toMatch(/^52:54:00:/);
    expect(eth.addresses.find((a: { type: string }) => a.type === 'ipv4').address).toMatch(
      /^10\.250\.0\.\d+$/,
    );
    expect(info.filesystems).toEqual(
      expect.arrayContaining([expect.objectContaining({ mountpoint: '/', type: 'ext4' })]),
    );
  });

  it("metrics: CPU, memory, disk and network from libvirt and the agent's fields, soon after boot", async () => {
    const first = await waitFor(
      everySecond(async () => fullPoints(await series(bootedAt - 60_000))[0]),
      "a point with libvirt's and the agent's fields",
      5 * 60_000,
    );
    const b = await series(bootedAt - 60_000);
    const i = (b.at as string[]).indexOf(new Date(first).toISOString());
    for (const f of ['memAssignedBytes', 'memTotalBytes', 'memUsedBytes', 'hostRssBytes', 'fsTotalBytes'])
      expect(b[f][i]).toBeGreaterThan(0);
    for (const f of ['cpuPct', 'diskReadBps', 'diskWriteBps', 'netRxBps', 'netTxBps', 'guestCpuPct', 'load1'])
      expect(b[f][i]).toBeGreaterThanOrEqual(0);
    expect(b.fsUsedBytes[i]).toBeLessThanOrEqual(b.fsTotalBytes[i]);
    expect(b.memUsedBytes[i]).toBeLessThanOrEqual(b.memTotalBytes[i]);
    console.log(
      `metrics: first point with every field (libvirt + agent) in the bucket of ${first - bootedAt} ms after ` +
        `the create operation ended; vmflow's agent said hello ${agentAt - bootedAt} ms after it ` +
        `(collector every ${METRICS_INTERVAL_MS} ms, agent every ${watcher.status(machineId)?.hello?.intervalS} s)`,
    );
  });

  it("vms:metrics reaches the owner's subscribed socket; another department's is refused and gets none", async () => {
    const owner = await h.socket(alice);
    const other = await h.socket(stranger);
    try {
      const subscribe = (s: RecordingSocket) =>
        new Promise<SubscribeAck>((resolve) => s.socket.emit(METRICS_SUBSCRIBE, { machineId }, resolve));
      expect(await subscribe(other)).toMatchObject({ ok: false, status: 404 });
      expect(await subscribe(owner)).toEqual({ ok: true });
      const ours = (e: { name: string; payload: any }) =>
        e.name === METRICS_EVENT && e.payload.machineId === machineId && e.payload.agent === true;
      const one = await owner.waitFor(ours, 'vms:metrics for the VM', 60_000);
      expect(one.payload).toMatchObject({
        cpuPct: expect.any(Number),
        memUsedBytes: expect.any(Number),
        netRxBps: expect.any(Number),
        guestCpuPct: expect.any(Number),
        fsUsedBytes: expect.any(Number),
      });
      await owner.waitFor((e) => ours(e) && e.payload.at !== one.payload.at, 'a second vms:metrics', 60_000);
      expect(other.events.filter((e) => e.name === METRICS_EVENT)).toEqual([]);
    } finally {
      owner.close();
      other.close();
    }
  });

  it('prints how long reads and an exec take here (figures, not asserted)', async () => {
    const timed = async (what: string, fn: () => Promise<unknown>) => {
      const t = Date.now();
      await fn();
      return `${what} ${Date.now() - t} ms`;
    };
    const get = (path: string) => () => h.call('GET', url(path), { as: alice });
    const figures = [
      await timed('GET /guest', get('/guest')),
      await timed('GET /processes', get('/processes')),
      await timed('GET /guest/services', get('/guest/services')),
      await timed('GET /applications', get('/applications')),
      await timed('exec /bin/true (202 to operation ended)', () => exec('/bin/true')),
    ];
    console.log(`guest figures: ${figures.join('; ')}`);
  });

  it("lists processes, services and packages live from vmflow's agent", async () => {
    const procs = (await h.call('GET', url('/processes'), { as: alice })).body.processes;
    expect(procs.length).toBeGreaterThan(5);
    expect(procs.find((p: { pid: number }) => p.pid === 1)).toMatchObject({ name: 'systemd', user: 'root' });
    expect(
      (await h.call('GET', url('/guest/processes'), { as: alice })).body.processes.length,
    ).toBeGreaterThan(5);
    expect(await stateOf('vmflow-agent.service')).toBe('running');
    expect(await stateOf('qemu-guest-agent.service')).toBe('running');
    const apps = (await h.call('GET', url('/applications'), { as: alice })).body.applications;
    expect(apps.map((a: { name: string }) => a.name)).toEqual(
      expect.arrayContaining(['openssh-server', 'systemd']),
    );
  });

  it('who may: the owner reads but may not command (403), another department sees nothing (404)', async () => {
    for (const path of ['/guest', '/processes', '/guest/services', '/applications'])
      expect((await h.call('GET', url(path), { as: stranger })).status).toBe(404);
    const body = { command: '/bin/true' };
    expect((await h.call('POST', url('/guest/exec'), { as: alice, body })).status).toBe(403);
    expect((await h.call('POST', url('/guest/exec'), { as: stranger, body })).status).toBe(404);
    expect((await h.call('POST', url('/guest/processes/1234/kill'), { as: alice, body: {} })).status).toBe(
      403,
    );
    expect(
      (await h.call('POST', url('/guest/services/ssh.service'), { as: alice, body: { action: 'stop' } }))
        .status,
    ).toBe(403);
  });

  it('refuses bad input naming the field, and starts nothing', async () => {
    const before = await stack.dataSource.getRepository(Operation).count({ where: { machineId } });
    const bad = async (path: string, body: unknown, field: string) => {
      const r = await h.call('POST', url(path), { as: manager, body });
      expect(r.status).toBe(400);
      expect(r.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect(r.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    };
    await bad('/guest/exec', { args: ['x'] }, 'command');
    await bad('/guest/exec', { command: '/bin/echo', timeoutS: 0 }, 'timeoutS');
    await bad('/guest/exec', { command: '/bin/echo', args: 'hi' }, 'args');
    await bad('/guest/exec', { command: '/bin/echo', shell: true }, 'shell');
    await bad('/guest/processes/1/kill', {}, 'path.pid');
    await bad('/guest/processes/12/kill', { signal: 'HUP' }, 'signal');
    await bad('/guest/services/a;b', { action: 'stop' }, 'path.name');
    await bad('/guest/services/ssh.service', { action: 'reload' }, 'action');
    expect(await stack.dataSource.getRepository(Operation).count({ where: { machineId } })).toBe(before);
  });

  it('exec: exit code 0 and the output; a failing command gives its exit code and stderr', async () => {
    expect(await exec('/bin/echo', ['hi'])).toMatchObject({ exitCode: 0, stdout: 'hi\n', timedOut: false });
    expect(await exec('/bin/hostname')).toMatchObject({ exitCode: 0, stdout: 'guest-1\n' });
    const failing = await exec('/bin/sh', ['-c', 'echo oops >&2; exit 3']);
    expect(failing).toMatchObject({ exitCode: 3, stdout: '', stderr: 'oops\n' });
    // A program that does not exist: the guest agent refuses it, the operation fails and says why.
    const r = await h.call('POST', url('/guest/exec'), {
      as: manager,
      body: { command: '/no/such/program' },
    });
    expect((await operation(r.body.operation.id)).status).toBe('failed');
  });

  it(`exec: output beyond ${GUEST_EXEC_MAX_OUTPUT_BYTES} bytes is cut and flagged`, async () => {
    const r = await exec('/bin/sh', ['-c', 'head -c 100000 /dev/zero | tr "\\0" a']);
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toBe('a'.repeat(GUEST_EXEC_MAX_OUTPUT_BYTES));
    expect(r.stdoutTruncated).toBe(true);
  });

  it('exec: a program past its timeout is killed and reported timed out', async () => {
    const r = await exec('/bin/sleep', ['600'], { timeoutS: 2 });
    expect(r).toMatchObject({ timedOut: true, exitCode: null });
    const left = await exec('/bin/sh', ['-c', 'pgrep -x sleep || true']);
    expect(left.stdout).toBe('');
  });

  it('exec: the standard input reaches the program', async () => {
    const r = await exec('/usr/bin/sha256sum', [], { stdin: SECRET });
    expect(r.stdout.split(' ')[0]).toBe(createHash('sha256').update(SECRET).digest('hex'));
  });

  it('kill: a process started in the guest is gone after the operation', async () => {
    const started = await exec('/bin/sh', ['-c', 'sleep 1000 >/dev/null 2>&1 & echo $!']);
    const pid = Number(started.stdout.trim());
    expect(pid).toBeGreaterThan(1);
    const pids = async () =>
      ((await h.call('GET', url('/processes'), { as: alice })).body.processes as Array<{ pid: number }>).map(
        (p) => p.pid,
      );
    expect(await pids()).toContain(pid);
    const op = await command(`/guest/processes/${pid}/kill`, { signal: 'KILL' });
    expect(op).toMatchObject({ type: 'guest_kill', status: 'succeeded', result: { pid, signal: 'KILL' } });
    await waitFor(
      everySecond(async () => !(await pids()).includes(pid)),
      `pid ${pid} to be gone`,
      60_000,
    );
    // A pid that does not exist: the agent answers not-found, the operation fails.
    const one = await command('/guest/processes/999999/kill', {});
    expect(one.status).toBe('failed');
  });

  it('service stop and start through vmflow agent: the QEMU guest agent goes, GET /guest is 503, then back', async () => {
    const stop = await command('/guest/services/qemu-guest-agent.service', { action: 'stop' });
    expect(stop).toMatchObject({
      type: 'guest_service',
      status: 'succeeded',
      result: { name: 'qemu-guest-agent.service', action: 'stop', state: 'stopped' },
    });
    expect(await stateOf('qemu-guest-agent.service')).toBe('stopped');
    const gone = await waitFor(
      everySecond(async () => {
        const r = await h.call('GET', url('/guest'), { as: alice });
        return r.status === 503 ? r : undefined;
      }),
      'GET /guest to answer 503',
      60_000,
    );
    expect(gone.headers.get('content-type')).toMatch(/application\/problem\+json/);
    expect(gone.body.detail).toMatch(/not connected/);
    // Exec needs the QEMU guest agent: the operation fails (503's reason), nothing hangs.
    const r = await h.call('POST', url('/guest/exec'), { as: manager, body: { command: '/bin/true' } });
    expect((await operation(r.body.operation.id)).error).toMatch(/not connected/);
    const start = await command('/guest/services/qemu-guest-agent.service', { action: 'start' });
    expect(start.result).toMatchObject({ state: 'running' });
    expect(await stateOf('qemu-guest-agent.service')).toBe('running');
    await waitFor(
      everySecond(async () => (await h.call('GET', url('/guest'), { as: alice })).status === 200),
      'GET /guest to answer again',
      60_000,
    );
  });

  it("vmflow's agent stopped: a read gets 504 while the host still thinks it connected, then 503", async () => {
    const r = await h.call('POST', url('/guest/exec'), {
      as: manager,
      body: { command: '/bin/systemctl', args: ['stop', 'vmflow-agent.service'] },
    });
    expect((await operation(r.body.operation.id)).result).toMatchObject({ exitCode: 0 });
    const slow = await h.call('GET', url('/processes'), { as: alice });
    expect(slow.status).toBe(504);
    expect(slow.body.title).toBe('Guest timeout');
    await waitFor(
      everySecond(async () => (await h.call('GET', url('/processes'), { as: alice })).status === 503),
      'the watcher to see the agent silent (503)',
      120_000,
    );
    expect(watcher.status(machineId)?.state).toBe('absent');
    await exec('/bin/systemctl', ['start', 'vmflow-agent.service']);
    await waitFor(
      everySecond(async () => (await h.call('GET', url('/processes'), { as: alice })).status === 200),
      'the agent back',
      120_000,
    );
  });

  it("vmflow's agent killed (SIGKILL): systemd restarts it and the host takes its fresh hello and samples", async () => {
    const mainPid = async () =>
      Number(
        (await exec('/bin/systemctl', ['show', '--property=MainPID', '--value', 'vmflow-agent.service']))
          .stdout,
      );
    const before = await mainPid();
    expect(before).toBeGreaterThan(1);
    const killedAt = Date.now();
    expect(await exec('/bin/systemctl', ['kill', '--signal=KILL', 'vmflow-agent.service'])).toMatchObject({
      exitCode: 0,
    });
    // Restart=always, RestartSec=2 (scripts/image/build.sh): a new process says hello unasked, then samples.
    const back = await waitFor(
      everySecond(async () => {
        const s = watcher.status(machineId);
        const hello = s?.helloAt?.getTime() ?? 0;
        return s?.state === 'connected' && hello > killedAt && (s.metricsAt?.getTime() ?? 0) > hello
          ? s
          : undefined;
      }),
      'a hello and a sample from the restarted agent',
      120_000,
    );
    const after = await mainPid();
    expect(after).toBeGreaterThan(1);
    expect(after).not.toBe(before);
    expect((await h.call('GET', url('/processes'), { as: alice })).status).toBe(200);
    // Its first sample: the new process counts from 1 again; the collector merges it into the next points.
    expect(back.metrics!.seq).toBeLessThanOrEqual(2);
    const since = back.metricsAt!.getTime();
    await waitFor(
      everySecond(async () => fullPoints(await series(since)).some((t) => t > since)),
      "a point with the restarted agent's fields",
      120_000,
    );
    console.log(
      `agent killed: the restarted agent's hello reached the host ${back.helloAt!.getTime() - killedAt} ms ` +
        `later, its first sample ${since - killedAt} ms later`,
    );
  });

  it('operation records name their actor and hold no secret; neither do events nor Temporal histories', async () => {
    const ops = await stack.dataSource.getRepository(Operation).find({
      where: [
        { machineId, type: 'guest_exec' },
        { machineId, type: 'guest_kill' },
        { machineId, type: 'guest_service' },
      ],
    });
    expect(ops.length).toBeGreaterThan(10);
    expect(new Set(ops.map((o) => o.actorId))).toEqual(new Set([manager.id]));
    const withStdin = ops.find((o) => (o.input as { command?: string }).command === '/usr/bin/sha256sum');
    expect(withStdin?.input).toMatchObject({ command: '/usr/bin/sha256sum', actorId: manager.id });
    expect(withStdin?.input).not.toHaveProperty('stdin');
    const found = (text: string) =>
      text.includes(SECRET) || text.includes(Buffer.from(SECRET).toString('base64'));
    expect(found(JSON.stringify(ops))).toBe(false);
    const events = await stack.dataSource.getRepository(Event).find({ where: { resourceId: machineId } });
    expect(found(JSON.stringify(events))).toBe(false);
    let histories = 0;
    for await (const run of stack.env.client.workflow.list({ query: `WorkflowId = "vm-${machineId}"` })) {
      const history = await stack.env.client.workflow.getHandle(run.workflowId, run.runId).fetchHistory();
      expect(found(JSON.stringify(history))).toBe(false);
      histories++;
    }
    expect(histories).toBeGreaterThan(10);
  });

  it('a guest reboot keeps the series: the points from before it stay, new ones arrive after it', async () => {
    const from = bootedAt - 60_000;
    const before = fullPoints(await series(from));
    expect(before.length).toBeGreaterThan(0);
    const rebootAt = Date.now();
    const r = await h.call('POST', url('/power'), { as: alice, body: { action: 'reboot' } });
    expect(r.status).toBe(202);
    expect((await operation(r.body.operation.id)).status).toBe('succeeded');
    // Back: a sample of a guest whose uptime began after the reboot was asked for.
    const back = await waitFor(
      everySecond(async () => {
        const s = watcher.status(machineId);
        const at = s?.metricsAt?.getTime() ?? 0;
        return s?.state === 'connected' && at > rebootAt && s.metrics!.uptimeS <= (at - rebootAt) / 1000
          ? s
          : undefined;
      }),
      "vmflow's agent back after the reboot",
      BOOT_DEADLINE_MS,
    );
    const since = back.metricsAt!.getTime();
    const after = await waitFor(
      everySecond(async () => {
        const points = fullPoints(await series(from));
        return points.some((t) => t > since) ? points : undefined;
      }),
      'points with every field after the reboot',
      120_000,
    );
    expect(after).toEqual(expect.arrayContaining(before));
    console.log(
      `reboot: agent sample of the new boot ${since - rebootAt} ms after the reboot was asked; ` +
        `${before.length} full points before it, ${after.length} after`,
    );
  });

  it('a machine that is off: reads and commands are 503', async () => {
    const off = await h.call('POST', url('/power'), { as: alice, body: { action: 'poweroff' } });
    expect((await operation(off.body.operation.id)).status).toBe('succeeded');
    for (const path of ['/guest', '/processes', '/guest/services', '/applications']) {
      const r = await h.call('GET', url(path), { as: alice });
      expect(r.status).toBe(503);
      expect(r.body.detail).toBe('the machine is off, not running');
    }
    const r = await h.call('POST', url('/guest/exec'), { as: manager, body: { command: '/bin/true' } });
    expect(r.status).toBe(503);
  });
});
