#!/usr/bin/env node
// Makes the project's guest image usable on a running vmflow, as an operator would through the API:
// uploads it as the image `debian-12-vmflow-<recipe>` (unless an image of that name exists) and makes
// the template `debian-12-small` from it (unless it exists). Idempotent; run by scripts/up.sh.
//
//   node scripts/register-guest-image.mjs IMAGE.qcow2
//
// Environment: API (default http://127.0.0.1:3000), ADMIN_EMAIL / ADMIN_PASSWORD (default: the
// development admin, which only a development API accepts).
import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';

const [file] = process.argv.slice(2);
if (!file) {
  console.error('usage: register-guest-image.mjs IMAGE.qcow2');
  process.exit(2);
}
const api = process.env.API ?? `http://127.0.0.1:${process.env.PORT ?? 3000}`;
const recipe = path.basename(path.dirname(file));
const imageName = `debian-12-vmflow-${recipe}`;
const templateName = 'debian-12-small';

async function call(method, url, token, body) {
  const res = await fetch(`${api}${url}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${json?.detail ?? text}`);
  return json;
}

/** Every item of a keyset-paginated list. */
async function all(url, token) {
  const items = [];
  for (let cursor = null; ;) {
    const page = await call('GET', `${url}?limit=100${cursor ? `&cursor=${cursor}` : ''}`, token);
    items.push(...page.items);
    if (!page.nextCursor) return items;
    cursor = page.nextCursor;
  }
}

async function waitForOperation(id, token) {
  for (;;) {
    const op = await call('GET', `/api/operations/${id}`, token);
    if (op.status !== 'running') return op;
    await new Promise((r) => setTimeout(r, 500));
  }
}

const sha256 = () =>
  new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });

const { token } = await call('POST', '/api/auth/login', null, {
  email: process.env.ADMIN_EMAIL ?? 'admin@vmflow.local',
  password: process.env.ADMIN_PASSWORD ?? 'vmflow-dev-admin-password',
});

let image = (await all('/api/images', token)).find((i) => i.name === imageName);
if (image && image.status !== 'ready') {
  // A failed or interrupted import of an earlier run: start again.
  const res = await call('DELETE', `/api/images/${image.id}`, token);
  if (res?.operation) await waitForOperation(res.operation.id, token);
  image = undefined;
}
if (!image) {
  image = await call('POST', '/api/images', token, {
    name: imageName,
    description: "vmflow's Debian 12 guest image (scripts/image/build.sh)",
    osFamily: 'linux',
    format: 'qcow2',
    firmware: 'bios',
    provisioning: 'cloud-init',
    sha256: await sha256(),
  });
  const res = await fetch(`${api}/api/images/${image.id}/content`, {
    method: 'PUT',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/octet-stream',
      'content-length': String(statSync(file).size),
    },
    body: Readable.toWeb(createReadStream(file)),
    duplex: 'half',
  });
  if (res.status !== 202) throw new Error(`upload: ${res.status} ${await res.text()}`);
  const op = await waitForOperation((await res.json()).operation.id, token);
  if (op.status !== 'succeeded') throw new Error(`import ${op.status}: ${op.error ?? ''}`);
  image = await call('GET', `/api/images/${image.id}`, token);
}

let template = (await all('/api/templates', token)).find((t) => t.name === templateName);
if (!template) {
  template = await call('POST', '/api/templates', token, {
    name: templateName,
    description: 'Debian 12, 1 vCPU, 1 GiB, 4 GiB disk (a linked overlay on the project image)',
    cpu: 1,
    memory: 1024,
    storage: 4,
    os: 'debian-12',
    imageId: image.id,
    diskMode: 'linked',
  });
} else if (template.imageId !== image.id) {
  template = await call('PATCH', `/api/templates/${template.id}`, token, { imageId: image.id });
}
console.log(`image ${image.name} (${image.id}) ready; template ${template.name} (${template.id})`);
