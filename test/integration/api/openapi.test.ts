/**
 * The OpenAPI document: valid OpenAPI 3.1 (checked by @seriousme/openapi-schema-validator, run as its CLI
 * because the package is ESM-only), served at /api/openapi.json, covering every route the Express router
 * serves; Swagger UI at /api/docs; and readiness naming what is down.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Router } from 'express';
import { LibvirtProvider } from '../../../src/libvirt/provider';
import { startApi, type ApiHarness } from '../../support/api-harness';
import { startStack, type Stack } from '../../support/stack';

/** Every (method, path) the app's Express router serves. */
function expressRoutes(h: ApiHarness): string[] {
  const out: string[] = [];
  const stack = (
    h.api.app as unknown as {
      router: Router & { stack: Array<{ route?: unknown; handle?: { stack?: unknown[] } }> };
    }
  ).router.stack;
  const walk = (
    layers: Array<{
      route?: { path: string; methods: Record<string, boolean> };
      handle?: { stack?: unknown[] };
    }>,
  ) => {
    for (const l of layers) {
      if (l.route)
        for (const m of Object.keys(l.route.methods))
          out.push(`${m.toUpperCase()} ${l.route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`);
      else if (l.handle?.stack) walk(l.handle.stack as never);
    }
  };
  walk(stack as never);
  return out.sort();
}

describe('OpenAPI document and health', () => {
  let stack: Stack;
  let h: ApiHarness;

  beforeAll(async () => {
    stack = await startStack({ workers: false });
    h = await startApi(stack);
  });
  afterAll(async () => {
    await h?.close();
    await stack?.stop();
  });

  it('is a valid OpenAPI 3.1 document', async () => {
    const res = await h.call('GET', '/api/openapi.json');
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe('3.1.0');
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'vmflow-openapi-')), 'openapi.json');
    writeFileSync(file, JSON.stringify(res.body));
    const cli = path.resolve(
      __dirname,
      '../../../node_modules/@seriousme/openapi-schema-validator/bin/validate-api-cli.js',
    );
    let out: string;
    try {
      out = execFileSync(process.execPath, [cli, file], { encoding: 'utf8' });
    } catch (err) {
      throw new Error(`invalid OpenAPI document: ${(err as { stdout?: string }).stdout ?? String(err)}`);
    }
    expect(JSON.parse(out)).toEqual({ valid: true });
  });

  it('documents every route the router serves, and nothing it does not', async () => {
    const doc = (await h.call('GET', '/api/openapi.json')).body as {
      paths: Record<string, Record<string, unknown>>;
      components: {
        schemas: Record<
          string,
          { additionalProperties?: unknown; required?: string[]; properties: Record<string, unknown> }
        >;
      };
    };
    const documented = Object.entries(doc.paths)
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))
      .sort();
    const served = expressRoutes(h);
    expect(served.length).toBeGreaterThan(30);
    expect(documented.filter((r) => r !== 'GET /api/docs')).toEqual(served);
    // Request schemas come from the validating zod schemas: strict objects, limits included.
    const create = (
      doc.paths['/api/machines'] as {
        post: { requestBody: { content: { 'application/json': { schema: { $ref: string } } } } };
      }
    ).post;
    const ref = create.requestBody.content['application/json'].schema.$ref.split('/').pop()!;
    const schema = doc.components.schemas[ref];
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(expect.arrayContaining(['name', 'templateId', 'departmentId']));
    expect(schema.properties.cpu).toMatchObject({ minimum: 1, maximum: 64 });
    expect(schema.properties.name).toMatchObject({ minLength: 1, maxLength: 100 });
  });

  it('documents the firewall routes: every one, the rule body checkUserRule enforces, 202s with operations', async () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any -- the document is JSON read loosely
    type Json = any;
    const doc = (await h.call('GET', '/api/openapi.json')).body as {
      paths: Record<string, Record<string, Json>>;
      components: { schemas: Record<string, Json> };
    };
    const firewall = [
      'get /api/services',
      'get /api/filters',
      'post /api/filters',
      'get /api/filters/{id}',
      'patch /api/filters/{id}',
      'delete /api/filters/{id}',
      'post /api/filters/{id}/rules',
      'put /api/filters/{id}/rules/{ruleId}',
      'delete /api/filters/{id}/rules/{ruleId}',
      'put /api/filters/{id}/includes',
      'post /api/filters/flush',
      'get /api/departments/{id}/policy',
      'put /api/departments/{id}/policy',
      'get /api/departments/{id}/services',
      'put /api/departments/{id}/services/{serviceId}',
      'get /api/machines/{id}/services',
      'put /api/machines/{id}/services/{serviceId}',
      'post /api/machines/{id}/filters',
      'delete /api/machines/{id}/filters/{filterId}',
      'put /api/machines/{id}/department',
    ];
    for (const r of firewall) {
      const [method, p] = r.split(' ') as [string, string];
      expect({ r, documented: !!doc.paths[p]?.[method] }).toEqual({ r, documented: true });
    }
    const ref = (s: { $ref: string }) => doc.components.schemas[s.$ref.split('/').pop()!];
    const addRule = doc.paths['/api/filters/{id}/rules']!.post;
    const rule = ref(addRule.requestBody.content['application/json'].schema);
    expect(rule.additionalProperties).toBe(false);
    expect(rule.required).toEqual(expect.arrayContaining(['action', 'direction', 'protocol']));
    expect(rule.properties.protocol.enum).toEqual(expect.arrayContaining(['tcp', 'icmpv6', 'all-ipv6']));
    expect(rule.properties.protocol.enum).not.toContain('mac');
    expect(rule.properties.dstPortEnd).toMatchObject({ minimum: 1, maximum: 65535 });
    expect(Object.keys(addRule.responses)).toEqual(
      expect.arrayContaining(['202', '400', '401', '403', '404', '409']),
    );
    const accepted = ref(addRule.responses['202'].content['application/json'].schema);
    expect(Object.keys(accepted.properties)).toEqual(['rule', 'operation']);
    const move = doc.paths['/api/machines/{id}/department']!.put;
    expect(Object.keys(move.responses)).toEqual(expect.arrayContaining(['202', '403', '404', '409', '422']));
    expect(
      ref(doc.paths['/api/departments/{id}']!.get.responses['200'].content['application/json'].schema)
        .properties,
    ).toHaveProperty('firewallPolicy');
  });

  it('serves Swagger UI', async () => {
    const res = await fetch(`${h.url}/api/docs/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('swagger-ui');
  });

  it('readiness names what is down', async () => {
    expect((await h.call('GET', '/readyz')).body).toEqual({
      status: 'ok',
      checks: { database: 'ok', temporal: 'ok', libvirt: 'ok' },
    });
    const broken = await startApi(stack, {
      libvirt: new LibvirtProvider('qemu+unix:///system?socket=/nonexistent/libvirt-sock'),
    });
    try {
      const res = await broken.call('GET', '/readyz');
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.body).toMatchObject({
        status: 503,
        detail: 'not ready: libvirt down',
        checks: { database: 'ok', temporal: 'ok', libvirt: 'down' },
      });
      expect(JSON.stringify(res.body)).not.toContain('nonexistent');
      expect((await broken.call('GET', '/healthz')).status).toBe(200);
    } finally {
      await broken.close();
    }
  });
});
