/**
 * The API's `/metrics` on its own loopback listener, after real HTTP calls and Socket.IO clients: requests
 * are counted by route template (never the raw URL) and status, with durations; connected sockets and the
 * relay's deliveries and lag are shown; `/metrics` is not on the API port; promtool accepts the exposition.
 */
import { randomUUID } from 'node:crypto';
import { type Department } from '../../../src/entities/department';
import { Event } from '../../../src/entities/event';
import { type User } from '../../../src/entities/user';
import { type MetricsServer } from '../../../src/prometheus/exposition';
import { startApi, type ApiHarness } from '../../support/api-harness';
import { seedDepartment, seedUser } from '../../support/db';
import { waitFor } from '../../support/machines';
import { find, promtoolCheck, scrape, value } from '../../support/prometheus';
import { startStack, type Stack } from '../../support/stack';

describe('API /metrics', () => {
  let stack: Stack;
  let h: ApiHarness;
  let metrics: MetricsServer;
  let alice: User;
  let dept: Department;

  beforeAll(async () => {
    stack = await startStack({ workers: false });
    h = await startApi(stack, { processMetrics: true }); // promtool checks the process families too
    metrics = await h.api.metrics.serve('127.0.0.1', 0);
    alice = await seedUser(stack.dataSource);
    dept = await seedDepartment(stack.dataSource, [[alice, 'MEMBER']]);
  });
  afterAll(async () => {
    await metrics?.close();
    await h?.close();
    await stack?.stop();
  });

  it('counts requests by route template and status, never by raw URL', async () => {
    const ids = [randomUUID(), randomUUID()];
    for (const id of ids)
      expect((await h.call('GET', `/api/machines/${id}`, { as: alice })).status).toBe(404);
    expect((await h.call('GET', '/api/machines', { as: alice })).status).toBe(200);
    expect((await h.call('GET', '/api/machines', { as: null })).status).toBe(401);
    expect((await h.call('GET', `/api/no-such-thing/${ids[0]}`, { as: alice })).status).toBe(404);

    const text = await scrape(metrics.url);
    const byId = { method: 'GET', route: '/api/machines/:id', status: '404' };
    expect(value(text, 'vmflow_http_requests_total', byId)).toBe(2);
    expect(value(text, 'vmflow_http_request_duration_seconds_count', byId)).toBe(2);
    expect(value(text, 'vmflow_http_requests_total', { route: '/api/machines', status: '200' })).toBe(1);
    expect(value(text, 'vmflow_http_requests_total', { route: '/api/machines', status: '401' })).toBe(1);
    expect(value(text, 'vmflow_http_requests_total', { route: 'unmatched', status: '404' })).toBe(1);
    for (const id of ids) expect(text).not.toContain(id); // one series per template, whatever the ids
    const routes = new Set(find(text, 'vmflow_http_requests_total').map((s) => s.labels.route));
    expect([...routes].sort()).toEqual(['/api/machines', '/api/machines/:id', 'unmatched']);
  });

  it('shows connected sockets and the relay delivering events (count, lag, watermark)', async () => {
    const socket = await h.socket(alice);
    expect(value(await scrape(metrics.url), 'vmflow_socket_connections')).toBe(1);

    const resourceId = randomUUID();
    const inserted = await stack.dataSource.getRepository(Event).insert({
      resource: 'vms',
      action: 'update',
      resourceId,
      payload: { machine: { id: resourceId } },
      actorId: alice.id,
      workflowId: null,
      ownerId: alice.id,
      departmentId: dept.id,
      dedupeKey: `test:${randomUUID()}`,
    });
    const eventId = Number(inserted.identifiers[0]!.id);
    await socket.waitFor((e) => e.payload?.eventId === eventId, 'the event');

    const text = await scrape(metrics.url);
    expect(value(text, 'vmflow_relay_events_delivered_total')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'vmflow_relay_delivery_lag_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(value(text, 'vmflow_relay_watermark')).toBeGreaterThanOrEqual(eventId);
    expect(value(text, 'vmflow_relay_backlog_events')).toBeGreaterThanOrEqual(0);

    socket.close();
    await waitFor(
      async () => value(await scrape(metrics.url), 'vmflow_socket_connections') === 0,
      'the socket to be gone',
    );
  });

  it('is served on its own listener only (not on the API port), and promtool accepts it', async () => {
    expect((await fetch(`${h.url}/metrics`)).status).toBe(404);
    expect(await promtoolCheck(await scrape(metrics.url))).toEqual({ code: 0, output: '' });
  });
});
