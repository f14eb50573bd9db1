/**
 * Validation of every route that takes input: wrong types, missing fields, out-of-range sizes, names with
 * control characters or over length, unknown fields, malformed ids, cursors and JSON. Each is a 400
 * problem naming the offending field, and nothing is created: no row, no operation, no event.
 */
import { In, Like } from 'typeorm';
import { Department } from '../../../src/entities/department';
import { Event } from '../../../src/entities/event';
import { Host } from '../../../src/entities/host';
import { Machine } from '../../../src/entities/machine';
import { MachineTemplate } from '../../../src/entities/machine-template';
import { OperationRequest } from '../../../src/entities/operation-request';
import { User } from '../../../src/entities/user';
import { seedMachineRow, startApi, type ApiHarness } from '../../support/api-harness';
import { seedDepartment, seedTemplate, seedUser } from '../../support/db';
import { startStack, type Stack } from '../../support/stack';

interface Case {
  what: string;
  method: string;
  path: string;
  body?: unknown;
  raw?: string;
  /** A field the problem must name (substring of one `errors[].field`). */
  field?: string;
  status?: number;
}

describe('API validation: every route refuses bad input and creates nothing', () => {
  let stack: Stack;
  let h: ApiHarness;
  let admin: User;
  let owner: User;
  let dept: Department;
  let tpl: MachineTemplate;
  let vm: Machine;
  const cases: Case[] = [];

  beforeAll(async () => {
    stack = await startStack({ workers: false });
    h = await startApi(stack);
    const ds = stack.dataSource;
    admin = await seedUser(ds, 'ADMIN');
    owner = await seedUser(ds);
    dept = await seedDepartment(ds, [[owner, 'MEMBER']]);
    tpl = await seedTemplate(ds);
    const host = await ds.getRepository(Host).findOneByOrFail({ name: stack.hostName });
    vm = await seedMachineRow(ds, {
      ownerId: owner.id,
      departmentId: dept.id,
      templateId: tpl.id,
      hostId: host.id,
      status: 'off',
    });

    const long = (n: number) => 'x'.repeat(n);
    const m = (body: Record<string, unknown>) => ({
      name: 'val-vm ok',
      templateId: tpl.id,
      departmentId: dept.id,
      ...body,
    });
    const T = (body: Record<string, unknown>) => ({
      name: 'val-tpl ok',
      cpu: 1,
      memory: 64,
      storage: 1,
      os: 'none',
      ...body,
    });
    const add = (
      method: string,
      path: string,
      list: Array<[what: string, body: unknown, field?: string]>,
    ) => {
      for (const [what, body, field] of list)
        cases.push({ what, method, path, body, ...(field ? { field } : {}) });
    };

    add('POST', '/api/auth/login', [
      ['missing fields', {}, 'email'],
      ['not an e-mail', { email: 'nobody', password: 'x' }, 'email'],
      ['password not a string', { email: 'a@b.co', password: 5 }, 'password'],
      ['unknown field', { email: 'a@b.co', password: 'x', admin: true }, 'admin'],
    ]);
    add('POST', '/api/users', [
      ['missing e-mail', { password: 'password-1' }, 'email'],
      ['short password', { email: 'val-1@validation.test', password: '123' }, 'password'],
      ['unknown role', { email: 'val-2@validation.test', password: 'password-1', role: 'ROOT' }, 'role'],
      [
        'control char in name',
        { email: 'val-3@validation.test', password: 'password-1', firstName: 'a\u0000b' },
        'firstName',
      ],
      [
        'name over length',
        { email: 'val-4@validation.test', password: 'password-1', firstName: long(101) },
        'firstName',
      ],
      ['unknown field', { email: 'val-5@validation.test', password: 'password-1', isAdmin: true }, 'isAdmin'],
    ]);
    add('PATCH', `/api/users/${owner.id}`, [
      ['empty', {}],
      ['wrong type', { firstName: 7 }, 'firstName'],
      ['unknown field', { passwordHash: 'x' }, 'passwordHash'],
    ]);
    add('POST', '/api/departments', [
      ['missing name', {}, 'name'],
      ['name not a string', { name: 5 }, 'name'],
      ['NUL in name', { name: 'val-a\u0000b' }, 'name'],
      ['name over length', { name: `val-${long(100)}` }, 'name'],
      ['blank name', { name: '   ' }, 'name'],
      ['unknown field', { name: 'val-dept', filterName: 'evil' }, 'filterName'],
      ['bad network name', { name: 'val-dept', networkName: 'a b' }, 'networkName'],
    ]);
    add('PATCH', `/api/departments/${dept.id}`, [
      ['empty', {}],
      ['empty name', { name: '' }, 'name'],
    ]);
    add('PUT', `/api/departments/${dept.id}/members/${owner.id}`, [
      ['missing role', {}, 'role'],
      ['unknown role', { role: 'OWNER' }, 'role'],
    ]);
    add('POST', '/api/templates', [
      ['missing cpu', { name: 'val-t', memory: 64, storage: 1, os: 'none' }, 'cpu'],
      ['cpu 0', T({ cpu: 0 }), 'cpu'],
      ['cpu 65', T({ cpu: 65 }), 'cpu'],
      ['cpu not an integer', T({ cpu: 1.5 }), 'cpu'],
      ['memory below 32 MiB', T({ memory: 31 }), 'memory'],
      ['storage over 16 TiB', T({ storage: 16_385 }), 'storage'],
      ['bad os', T({ os: 'bad os!' }), 'os'],
      ['unknown field', T({ owner: 'me' }), 'owner'],
    ]);
    add('PATCH', `/api/templates/${tpl.id}`, [
      ['empty', {}],
      ['cpu as a string', { cpu: '2' }, 'cpu'],
    ]);
    add('POST', '/api/machines', [
      ['missing everything', {}, 'name'],
      ['missing template', { name: 'val-vm', departmentId: dept.id }, 'templateId'],
      ['empty name', m({ name: '' }), 'name'],
      ['name over 100', m({ name: long(101) }), 'name'],
      ['newline in name', m({ name: 'val\nvm' }), 'name'],
      ['BEL in name', m({ name: 'val\u0007vm' }), 'name'],
      ['DEL in name', m({ name: 'val\u007fvm' }), 'name'],
      ['bidi override in name', m({ name: 'val\u202evm' }), 'name'],
      ['blank name', m({ name: '   ' }), 'name'],
      ['name not a string', m({ name: ['a'] }), 'name'],
      ['template not a uuid', m({ templateId: 'abc' }), 'templateId'],
      ['cpu 0', m({ cpu: 0 }), 'cpu'],
      ['cpu 65', m({ cpu: 65 }), 'cpu'],
      ['cpu as a string', m({ cpu: '2' }), 'cpu'],
      ['memory 16 MiB', m({ memory: 16 }), 'memory'],
      ['memory 2 TiB', m({ memory: 2 * 1024 * 1024 }), 'memory'],
      ['storage 0', m({ storage: 0 }), 'storage'],
      ['storage 20000 GiB', m({ storage: 20_000 }), 'storage'],
      ['start as a string', m({ start: 'yes' }), 'start'],
      ['guest password over length', m({ guestPassword: long(129) }), 'guestPassword'],
      ['unknown field hostName', m({ hostName: 'elsewhere' }), 'hostName'],
      ['unknown field status', m({ status: 'running' }), 'status'],
    ]);
    add('PATCH', `/api/machines/${vm.id}/hardware`, [
      ['empty', {}],
      ['cpu 0', { cpu: 0 }, 'cpu'],
      ['negative storage', { storage: -1 }, 'storage'],
      ['memory as a string', { memory: 'big' }, 'memory'],
      ['unknown field', { disk: 5 }, 'disk'],
    ]);
    add('POST', `/api/machines/${vm.id}/clone`, [
      ['missing name', {}, 'name'],
      ['tab in name', { name: 'a\tb' }, 'name'],
      ['name over 100', { name: long(101) }, 'name'],
      ['linked as a string', { name: 'val-c', linked: 'yes' }, 'linked'],
      ['unknown field', { name: 'val-c', full: true }, 'full'],
    ]);
    add('POST', `/api/machines/${vm.id}/power`, [
      ['missing action', {}, 'action'],
      ['unknown action', { action: 'explode' }, 'action'],
      ['negative timeout', { action: 'shutdown', shutdownTimeoutSec: -1 }, 'shutdownTimeoutSec'],
      ['unknown field', { action: 'start', force: true }, 'force'],
    ]);
    cases.push(
      {
        what: 'timeout not a number',
        method: 'DELETE',
        path: `/api/machines/${vm.id}?shutdownTimeoutSec=abc`,
        field: 'shutdownTimeoutSec',
      },
      {
        what: 'unknown query field',
        method: 'DELETE',
        path: `/api/machines/${vm.id}?force=1`,
        field: 'force',
      },
      {
        what: 'a body where none is taken',
        method: 'DELETE',
        path: `/api/machines/${vm.id}`,
        body: { force: true },
      },
      { what: 'id not a uuid', method: 'GET', path: '/api/machines/123', field: 'id' },
      {
        what: 'id not a uuid',
        method: 'POST',
        path: '/api/machines/123/power',
        body: { action: 'start' },
        field: 'id',
      },
      { what: 'limit 0', method: 'GET', path: '/api/machines?limit=0', field: 'limit' },
      { what: 'limit 101', method: 'GET', path: '/api/machines?limit=101', field: 'limit' },
      { what: 'unknown status', method: 'GET', path: '/api/machines?status=zombie', field: 'status' },
      { what: 'owner not a uuid', method: 'GET', path: '/api/machines?owner=123', field: 'owner' },
      { what: 'garbage cursor', method: 'GET', path: '/api/machines?cursor=garbage', field: 'cursor' },
      {
        what: 'repeated filter',
        method: 'GET',
        path: '/api/machines?status=off&status=running',
        field: 'status',
      },
      { what: 'unknown filter', method: 'GET', path: '/api/machines?color=red', field: 'color' },
      { what: 'cursor garbage', method: 'GET', path: '/api/users?cursor=zzz', field: 'cursor' },
      { what: 'limit 0', method: 'GET', path: '/api/templates?limit=0', field: 'limit' },
      { what: 'unknown query field', method: 'GET', path: '/api/departments?x=1', field: 'x' },
      { what: 'negative after', method: 'GET', path: '/api/events?after=-1', field: 'after' },
      { what: 'after not a number', method: 'GET', path: '/api/events?after=abc', field: 'after' },
      { what: 'limit over 1000', method: 'GET', path: '/api/events?limit=1001', field: 'limit' },
      { what: 'operation id not a uuid', method: 'GET', path: '/api/operations/nope', field: 'id' },
      {
        what: 'a body where none is taken',
        method: 'POST',
        path: `/api/operations/${vm.id}/cancel`,
        body: { now: true },
      },
      { what: 'malformed JSON', method: 'POST', path: '/api/machines', raw: '{"name": ' },
      {
        what: 'body over 256 KiB',
        method: 'POST',
        path: '/api/machines',
        body: m({ name: long(300_000) }),
        status: 413,
      },
    );
  });

  afterAll(async () => {
    await h?.close();
    await stack?.stop();
  });

  it('answers 400 problems naming the offending field', async () => {
    const wrong: string[] = [];
    for (const c of cases) {
      const res = await h.call(c.method, c.path, {
        as: admin,
        ...(c.body !== undefined ? { body: c.body } : {}),
        ...(c.raw !== undefined ? { raw: c.raw } : {}),
      });
      const label = `${c.method} ${c.path.replace(/[0-9a-f-]{36}/g, ':id')} ${c.what}`;
      if (res.status !== (c.status ?? 400)) {
        wrong.push(`${label}: ${res.status} ${JSON.stringify(res.body)}`);
        continue;
      }
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.body).toMatchObject({
        type: expect.any(String),
        title: expect.any(String),
        status: res.status,
        detail: expect.any(String),
      });
      if (c.field && !(res.body.errors ?? []).some((e: { field: string }) => e.field.includes(c.field!))) {
        wrong.push(`${label}: no error names ${c.field}: ${JSON.stringify(res.body.errors)}`);
      }
    }
    expect(wrong).toEqual([]);
    expect(cases.length).toBeGreaterThan(80);
  });

  it('created nothing', async () => {
    const ds = stack.dataSource;
    expect(await ds.getRepository(User).countBy({ email: Like('%@validation.test') })).toBe(0);
    expect(await ds.getRepository(Department).countBy({ name: Like('val-%') })).toBe(0);
    expect(await ds.getRepository(MachineTemplate).countBy({ name: Like('val-%') })).toBe(0);
    expect(await ds.getRepository(Machine).countBy({ departmentId: dept.id })).toBe(1);
    expect(await ds.getRepository(OperationRequest).countBy({ actorId: In([admin.id, owner.id]) })).toBe(0);
    expect(await ds.getRepository(Event).countBy({ actorId: In([admin.id, owner.id]) })).toBe(0);
    expect((await ds.getRepository(Machine).findOneByOrFail({ id: vm.id })).status).toBe('off');
    expect((await ds.getRepository(MachineTemplate).findOneByOrFail({ id: tpl.id })).cpu).toBe(1);
  });
});
