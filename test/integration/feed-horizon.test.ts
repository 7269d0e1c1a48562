import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SettledHorizon } from '../../src/feed/horizon.js';
import { FeedStore } from '../../src/store/feed.js';
import { createTestDatabase, insertRecord, serverUrl, type TestDatabase } from '../support/database.js';

// The horizon against real transactions that commit out of order, probe by probe.

let database: TestDatabase;
let store: FeedStore;
const clients: pg.Client[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  store = new FeedStore(database.pool);
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.end()));
  await database?.drop();
});

/** A connection of its own, for a transaction held open across probes. */
async function connection(url = database.url): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  clients.push(client);
  return client;
}

async function probe(horizon: SettledHorizon): Promise<number | undefined> {
  return horizon.observe(await store.readHorizon());
}

/** Version of the row a transaction wrote (visible to that transaction). */
async function versionIn(client: pg.Client, atsign: string): Promise<number> {
  const { rows } = await client.query<{ version: string }>('SELECT version FROM atsigns WHERE atsign = $1', [atsign]);
  return Number(rows[0]!.version);
}

describe('settled horizon', () => {
  it('does not pass a lower version whose transaction commits after a higher one', async () => {
    const horizon = new SettledHorizon();
    await insertRecord(database.pool, 'before', 'before.example', 1);
    const start = (await probe(horizon))!;

    const slow = await connection();
    await slow.query('BEGIN');
    await slow.query("INSERT INTO atsigns (atsign, host, port) VALUES ('slow', 'slow.example', 1)");
    const slowVersion = await versionIn(slow, 'slow');
    await insertRecord(database.pool, 'fast', 'fast.example', 1);
    const { rows } = await database.pool.query<{ version: string }>("SELECT version FROM atsigns WHERE atsign = 'fast'");
    const fastVersion = Number(rows[0]!.version);
    expect(fastVersion).toBeGreaterThan(slowVersion);

    // The fast change is committed and visible, but a reader given it now would resume past the slow one.
    for (let i = 0; i < 3; i++) expect(await probe(horizon)).toBeLessThan(slowVersion);
    expect(horizon.settled).toBe(start);

    await slow.query('COMMIT');
    await probe(horizon);
    expect(await probe(horizon)).toBeGreaterThanOrEqual(fastVersion);
  });

  it('settles past the versions of a transaction that rolled back', async () => {
    const horizon = new SettledHorizon();
    await probe(horizon);
    const aborted = await connection();
    await aborted.query('BEGIN');
    await aborted.query("INSERT INTO atsigns (atsign, host, port) VALUES ('gone', 'gone.example', 1)");
    const abortedVersion = await versionIn(aborted, 'gone');
    expect(await probe(horizon)).toBeLessThan(abortedVersion);
    await aborted.query('ROLLBACK');
    await probe(horizon);
    expect(await probe(horizon)).toBeGreaterThanOrEqual(abortedVersion);
  });

  it('waits for a transaction that took its id before the probe and draws its version after', async () => {
    const horizon = new SettledHorizon();
    await probe(horizon);
    const late = await connection();
    await late.query('BEGIN');
    await late.query("INSERT INTO atsigns (atsign, host, port) VALUES ('first-write', 'a.example', 1)");
    const read = await probe(horizon);
    // A second write of the same transaction draws a version above everything read so far.
    await late.query("INSERT INTO atsigns (atsign, host, port) VALUES ('second-write', 'a.example', 1)");
    const secondVersion = await versionIn(late, 'second-write');
    await insertRecord(database.pool, 'meanwhile', 'm.example', 1);
    expect(await probe(horizon)).toBe(read);
    await late.query('COMMIT');
    await probe(horizon);
    expect(await probe(horizon)).toBeGreaterThan(secondVersion);
  });

  it('is not held back by a transaction open in another database of the server', async () => {
    const horizon = new SettledHorizon();
    await probe(horizon);
    const elsewhere = await connection(serverUrl());
    await elsewhere.query('BEGIN');
    await elsewhere.query('SELECT pg_current_xact_id()');
    try {
      await insertRecord(database.pool, 'unrelated', 'u.example', 1);
      const { rows } = await database.pool.query<{ version: string }>("SELECT version FROM atsigns WHERE atsign = 'unrelated'");
      await probe(horizon);
      expect(await probe(horizon)).toBe(Number(rows[0]!.version));
    } finally {
      await elsewhere.query('ROLLBACK');
    }
  });

  it('gives a transaction its id before its first write draws a version (migration 3)', async () => {
    // Fires right after atsigns_before_write (BEFORE triggers run in name order), before the row is
    // written: without migration 3 the transaction would have no id yet.
    await database.pool.query(`
      CREATE TABLE xid_seen (version bigint, xid xid8);
      CREATE FUNCTION record_xid_seen() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        INSERT INTO xid_seen VALUES (NEW.version, pg_current_xact_id_if_assigned());
        RETURN NEW;
      END $$;
      CREATE TRIGGER atsigns_before_write_zz_xid_seen BEFORE INSERT ON atsigns FOR EACH ROW EXECUTE FUNCTION record_xid_seen();`);
    try {
      // nextval itself takes an id when it WAL-logs the sequence, but only every 32nd value: several
      // writes, each its own transaction, make sure most draws meet a transaction without one.
      for (let i = 0; i < 5; i++) await insertRecord(database.pool, `first-statement-${i}`, 'f.example', 1);
      const { rows } = await database.pool.query<{ xid: string | null }>('SELECT xid::text FROM xid_seen');
      expect(rows).toHaveLength(5);
      expect(rows.filter((row) => row.xid === null)).toEqual([]);
    } finally {
      await database.pool.query('DROP TRIGGER atsigns_before_write_zz_xid_seen ON atsigns; DROP FUNCTION record_xid_seen(); DROP TABLE xid_seen');
    }
  });
});
