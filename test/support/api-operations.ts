/** Operations through the HTTP API, for suites that drive the real stack as a client would. */
import { type User } from '../../src/entities/user';
import { type ApiHarness } from './api-harness';
import { waitFor } from './machines';

type Caller = Pick<User, 'id' | 'role'>;

/** Waits until the operation has ended (`GET /api/operations/:id` no longer `running`) and gives it. */
export function operationEnded(h: ApiHarness, as: Caller, id: string, deadlineMs = 120_000) {
  return waitFor(
    async () => {
      const r = await h.call('GET', `/api/operations/${id}`, { as });
      return r.status === 200 && r.body.status !== 'running' ? r.body : undefined;
    },
    `operation ${id}`,
    deadlineMs,
  );
}

/** Clean-up: `DELETE path`, and waits for the operation it started, if any (failures ignored). */
export async function deleteAndWait(h: ApiHarness, as: Caller, path: string): Promise<void> {
  const r = await h.call('DELETE', path, { as });
  if (r.status === 202) await operationEnded(h, as, r.body.operation.id, 300_000).catch(() => undefined);
}
