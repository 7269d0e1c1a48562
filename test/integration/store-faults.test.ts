import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PoolQueueFull, createPool } from '../../src/store/pool.js';
import { inTransaction } from '../../src/store/transaction.js';
import { startTestAdmin } from '../support/admin-harness.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});

afterAll(async () => {
  await database?.drop();
});

const poolFor = (max: number, maxWaiting?: number) =>
  createPool({ connectionString: database.url, max, connectTimeoutMs: 2000, statementTimeoutMs: 2000, applicationName: 'test-faults', logger: pino({ level: 'silent' }), maxWaiting });

describe('failover to a read-only node', () => {
  it('drops a pooled connection that has become read-only and retries the write once on a fresh one', async () => {
    const pool = poolFor(1);
    try {
      // The only pooled connection now behaves like one left pointing at a demoted primary.
      const stale = await pool.connect();
      const stalePid = (await stale.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      await stale.query('SET SESSION default_transaction_read_only = on');
      stale.release();
      const pid = await inTransaction(pool, { actor: 'test' }, async (client) => {
        await client.query("INSERT INTO atsigns (atsign, host, port) VALUES ('failover', 'f.example', 1)");
        return (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      });
      expect(pid).not.toBe(stalePid);
      expect((await database.pool.query("SELECT actor FROM atsign_history WHERE atsign = 'failover'")).rows).toEqual([{ actor: 'test' }]);
    } finally {
      await pool.end();
    }
  });

  it('answers 503 database-unavailable, fast and with nothing written, when every connection is read-only', async () => {
    const name = new URL(database.url).pathname.slice(1);
    const admin = await startTestAdmin(database.url);
    const token = await admin.key('admin');
    try {
      // The whole database turns standby-like: new sessions are read-only, old ones are cut.
      await database.pool.query(`ALTER DATABASE "${name}" SET default_transaction_read_only = on`);
      await database.pool.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'test-admin' AND datname = current_database()");
      // The pool notices its cut idle connections by itself.
      await new Promise((resolve) => setTimeout(resolve, 200));
      const started = performance.now();
      const response = await admin.request('PUT', '/v1/atsigns/readonly', { token, body: { host: 'r.example', port: 1 } });
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({ type: '/problems/database-unavailable' });
      expect(performance.now() - started).toBeLessThan(2000);
      expect((await database.pool.query("SELECT count(*)::int AS n FROM atsigns WHERE atsign = 'readonly'")).rows[0].n).toBe(0);
    } finally {
      await database.pool.query(`ALTER DATABASE "${name}" RESET default_transaction_read_only`);
      await admin.stop();
    }
  });
});

describe('a connection lost in the middle of a write', () => {
  // Found by loadtest/chaos.ts: pg reports a connection lost between two statements as an 'error'
  // event on the client, which nothing heard while inTransaction held it: the process crashed.
  it('fails that write cleanly, keeps the process up, and lets the next write through', async () => {
    const pool = poolFor(2);
    try {
      const write = inTransaction(pool, { actor: 'test' }, async (client) => {
        const pid = (await client.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
        await database.pool.query('SELECT pg_terminate_backend($1)', [pid]);
        // Work between two statements of the write, while the connection goes away.
        await new Promise((resolve) => setTimeout(resolve, 300));
        await client.query("INSERT INTO atsigns (atsign, host, port) VALUES ('lost', 'l.example', 1)");
      });
      await expect(write).rejects.toThrow();
      expect((await database.pool.query("SELECT count(*)::int AS n FROM atsigns WHERE atsign = 'lost'")).rows[0].n).toBe(0);
      await inTransaction(pool, { actor: 'test' }, (client) => client.query("INSERT INTO atsigns (atsign, host, port) VALUES ('after', 'a.example', 1)"));
      expect((await database.pool.query("SELECT count(*)::int AS n FROM atsigns WHERE atsign = 'after'")).rows[0].n).toBe(1);
    } finally {
      await pool.end();
    }
  });
});

describe('the pool queue', () => {
  it('refuses at once beyond its bound instead of queueing without end', async () => {
    const pool = poolFor(1, 2);
    const held = await pool.connect();
    try {
      const waiting = [pool.query('SELECT 1'), pool.query('SELECT 2')];
      await expect(pool.query('SELECT 3')).rejects.toBeInstanceOf(PoolQueueFull);
      held.release();
      expect((await Promise.all(waiting)).map((result) => result.rowCount)).toEqual([1, 1]);
    } finally {
      await pool.end();
    }
  });
});
