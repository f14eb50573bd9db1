/**
 * The Socket.IO server: the handshake authenticates with the JWT (`auth.token`, or an
 * `Authorization: Bearer` header) and is refused without a valid one; the relay then serves the socket
 * (catch-up from `auth.lastEventId`, then its rooms). Clients only listen, except to follow a VM's live
 * metrics (`vms:metrics:subscribe` / `vms:metrics:unsubscribe`, src/api/metrics-feed.ts).
 */
import { type Server as HttpServer } from 'node:http';
import { Server } from 'socket.io';
import { type DataSource } from 'typeorm';
import { bearerToken, verifyToken } from './auth';
import { type MetricsFeed } from './metrics-feed';
import { loadPrincipal } from './permissions';
import { type EventRelay, type SocketData } from './relay';

/** Socket server options. */
export interface SocketOptions {
  /** Origins allowed to connect from a browser (CORS); none by default. */
  corsOrigins?: string[];
}

function parseLastEventId(v: unknown): number | null {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string' && /^\d{1,15}$/.test(v)) return Number(v);
  return null;
}

/** Attaches Socket.IO to an HTTP server. */
export function attachSockets(
  http: HttpServer,
  deps: { dataSource: DataSource; jwtSecret: string; relay: EventRelay; metrics?: MetricsFeed },
  opts: SocketOptions = {},
): Server {
  const io = new Server(http, {
    serveClient: false,
    ...(opts.corsOrigins?.length ? { cors: { origin: opts.corsOrigins } } : {}),
  });
  io.use((socket, next) => {
    const auth = (socket.handshake.auth ?? {}) as { token?: unknown };
    const token =
      typeof auth.token === 'string' ? auth.token : bearerToken(socket.handshake.headers.authorization);
    const userId = verifyToken(deps.jwtSecret, token);
    if (!userId) {
      next(new Error('unauthorized'));
      return;
    }
    loadPrincipal(deps.dataSource, userId).then(
      (principal) => {
        if (!principal) return next(new Error('unauthorized'));
        (socket.data as SocketData).principal = principal;
        next();
      },
      () => next(new Error('unavailable')),
    );
  });
  io.on('connection', (socket) => {
    deps.metrics?.attach(socket);
    const lastEventId = parseLastEventId(
      (socket.handshake.auth as { lastEventId?: unknown } | undefined)?.lastEventId,
    );
    void deps.relay.attach(socket, lastEventId);
  });
  return io;
}
