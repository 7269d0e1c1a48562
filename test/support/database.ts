import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pino } from 'pino';
import { inject } from 'vitest';
import { applyMigrations } from '../../src/store/migrate.js';

export interface TestDatabase {
  url: string;
  /** A pool on the test database, for arranging rows and checking results. */
  pool: pg.Pool;
  drop(): Promise<void>;
}

export function serverUrl(): string {
  return inject('databaseUrl');
}

/** A new database on the test server, migrated unless told not to, dropped (with its connections) by `drop`. */
export async function createTestDatabase({ migrate = true } = {}): Promise<TestDatabase> {
  const name = `atd_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: serverUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(serverUrl());
  url.pathname = `/${name}`;
  if (migrate) await applyMigrations(url.toString(), 5000, pino({ level: 'silent' }));
  const pool = new pg.Pool({ connectionString: url.toString(), max: 4 });
  // DROP DATABASE ... WITH (FORCE) ends connections the pool may still be closing.
  pool.on('error', () => undefined);
  return {
    url: url.toString(),
    pool,
    async drop() {
      await pool.end();
      const client = new pg.Client({ connectionString: serverUrl() });
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

export async function insertRecord(
  pool: pg.Pool,
  atsign: string,
  host: string,
  port: number,
  status: 'active' | 'suspended' = 'active',
): Promise<void> {
  await pool.query('INSERT INTO atsigns (atsign, host, port, status) VALUES ($1, $2, $3, $4)', [atsign, host, port, status]);
}
