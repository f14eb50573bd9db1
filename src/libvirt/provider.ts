import { Connection } from './connection';

/**
 * One long-lived libvirt connection per process, reopened when libvirt closes it (daemon restart,
 * keepalive timeout). Activities ask for it on each call instead of holding a stale handle.
 */
export class LibvirtProvider {
  private current: Promise<Connection> | null = null;

  constructor(
    readonly uri: string,
    private readonly keepAlive = { intervalSec: 5, count: 3 },
  ) {}

  /** The open connection, opening (or reopening) it if needed. */
  async get(): Promise<Connection> {
    if (this.current) {
      const conn = await this.current.catch(() => null);
      if (conn && (await conn.isAlive().catch(() => false))) return conn;
      this.current = null;
    }
    this.current = this.open();
    return this.current;
  }

  private async open(): Promise<Connection> {
    const conn = await Connection.open(this.uri);
    try {
      await conn.setKeepAlive(this.keepAlive.intervalSec, this.keepAlive.count);
    } catch {
      // Drivers without keepalive (test:///default) still work; a dead connection is detected by isAlive.
    }
    conn.onClose(() => {
      this.current = null;
    });
    return conn;
  }

  /** Closes the connection (worker shutdown). */
  async close(): Promise<void> {
    const conn = await this.current?.catch(() => null);
    this.current = null;
    await conn?.close();
  }
}
