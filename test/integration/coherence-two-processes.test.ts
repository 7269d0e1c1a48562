import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { NOTIFIED_WITHIN_MS, timeUntil } from '../support/propagation.js';
import { RawClient } from '../support/raw-client.js';
import { spawnServes, type ServeProcess } from '../support/serve-process.js';

// Two real `serve` processes on one database: a plain SQL write, as a legacy registrar would make
// it, reaches both caches through the trigger's notification.

let database: TestDatabase;
let dataDir: string;
const servers: ServeProcess[] = [];
const clients: RawClient[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), 'atdirectory-test-'));
  // Throttling off: these tests poll for a change and must not be tarpitted by their own misses.
  const args = ['--database-url', database.url, '--data-dir', dataDir, '--miss-delay-from', '0', '--miss-close-at', '0', '--no-migrate'];
  servers.push(...(await spawnServes([args, args])));
});

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all(servers.map((server) => server.stop()));
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

/** A kept-open connection per server, as the Java, Python and Go SDKs use. */
async function connectToEach(): Promise<RawClient[]> {
  const opened = await Promise.all(servers.map((server) => RawClient.prompted(server.port)));
  clients.push(...opened);
  return opened;
}

/** Milliseconds until `client` answers `expected` for `atsign`, polling back to back. */

describe('coherence across processes', () => {
  it('shows a plain SQL UPDATE on both processes by notification', async () => {
    await insertRecord(database.pool, 'alice', 'alice.example.com', 6464);
    const connections = await connectToEach();
    for (const client of connections) expect(await client.ask('alice')).toBe('alice.example.com:6464');

    const committed = performance.now();
    await database.pool.query("UPDATE atsigns SET host = 'moved.example.com', port = 7000 WHERE atsign = 'alice'");
    const elapsed = await Promise.all(connections.map((client) => timeUntil(client, 'alice', 'moved.example.com:7000', committed)));
    for (const ms of elapsed) expect(ms).toBeLessThan(NOTIFIED_WITHIN_MS);
  });

  it('replaces a cached null as soon as the row is inserted', async () => {
    const connections = await connectToEach();
    for (const client of connections) expect(await client.ask('newbie')).toBe('null');
    const committed = performance.now();
    await database.pool.query("INSERT INTO atsigns (atsign, host, port) VALUES ('NewBie', 'newbie.example.com', 6464)");
    const elapsed = await Promise.all(connections.map((client) => timeUntil(client, 'newbie', 'newbie.example.com:6464', committed)));
    for (const ms of elapsed) expect(ms).toBeLessThan(NOTIFIED_WITHIN_MS);
  });

  it('answers null on both once the row is suspended, and again once it is deleted', async () => {
    await insertRecord(database.pool, 'carol', 'carol.example.com', 6464);
    const connections = await connectToEach();
    for (const client of connections) expect(await client.ask('carol')).toBe('carol.example.com:6464');
    let since = performance.now();
    await database.pool.query("UPDATE atsigns SET status = 'suspended' WHERE atsign = 'carol'");
    for (const ms of await Promise.all(connections.map((client) => timeUntil(client, 'carol', 'null', since)))) expect(ms).toBeLessThan(NOTIFIED_WITHIN_MS);
    await database.pool.query("UPDATE atsigns SET status = 'active' WHERE atsign = 'carol'");
    for (const ms of await Promise.all(connections.map((client) => timeUntil(client, 'carol', 'carol.example.com:6464', since)))) {
      expect(ms).toBeLessThan(1000);
    }
    since = performance.now();
    await database.pool.query("DELETE FROM atsigns WHERE atsign = 'carol'");
    for (const ms of await Promise.all(connections.map((client) => timeUntil(client, 'carol', 'null', since)))) expect(ms).toBeLessThan(NOTIFIED_WITHIN_MS);
  });
});
