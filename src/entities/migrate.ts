/**
 * Creates the database named in DATABASE_URL if it is missing, then runs the pending migrations.
 * Used by set-up (`npm run migrate`) and by the test global set-up.
 */
import 'reflect-metadata';
import mysql from 'mysql2/promise';
import { createDataSource } from './data-source';

/** Creates the database if missing and migrates it; returns the names of the migrations it ran. */
export async function migrateDatabase(url: string): Promise<string[]> {
  const u = new URL(url);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (!/^[A-Za-z0-9_]{1,64}$/.test(database))
    throw new Error(`DATABASE_URL: bad database name "${database}"`);
  const admin = await mysql.createConnection({
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username),
    password: decodeURIComponent(u.password),
  });
  try {
    await admin.query(
      `CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    );
  } finally {
    await admin.end();
  }
  const ds = createDataSource(url, { poolSize: 2 });
  await ds.initialize();
  try {
    const ran = await ds.runMigrations({ transaction: 'each' });
    return ran.map((m) => m.name);
  } finally {
    await ds.destroy();
  }
}

if (require.main === module) {
  const url = process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/vmflow';
  migrateDatabase(url)
    .then((ran) => console.log(ran.length ? `migrated: ${ran.join(', ')}` : 'database up to date'))
    .catch((err) => {
      console.error(`migration failed: ${err instanceof Error ? err.message : String(err)}`);
      process.exit(1);
    });
}
