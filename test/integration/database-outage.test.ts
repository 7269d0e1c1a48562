import { createServer, type AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { eventually, startTestLookup, type TestLookup } from '../support/lookup-harness.js';
import { PostgresProxy } from '../support/postgres-proxy.js';
import { RawClient } from '../support/raw-client.js';
import { spawnServe } from '../support/serve-process.js';

// The lookup process reaches PostgreSQL through a proxy the test cuts: the database is gone for
// this process (pool and listener alike) while the test itself still writes to it directly.

let database: TestDatabase;
let proxy: PostgresProxy & { url: string };
let lookup: TestLookup | undefined;
let client: RawClient | undefined;

const FAST_FAILURE = ['--db-connect-timeout', '300ms', '--db-statement-timeout', '300ms', '--listener-heartbeat', '200ms'];
// Throttling off: the outage makes misses on purpose.
const NO_THROTTLE = ['--miss-delay-from', '0', '--miss-close-at', '0'];

beforeEach(async () => {
  database = await createTestDatabase();
  proxy = await PostgresProxy.start(database.url);
  await insertRecord(database.pool, 'alice', 'alice.example.com', 6464);
  await insertRecord(database.pool, 'carol', 'carol.example.com', 6464);
});

afterEach(async () => {
  client?.close();
  client = undefined;
  await lookup?.stop();
  lookup = undefined;
  await proxy.stop();
  await database.drop();
});

const ask = (atsign: string) => client!.ask(atsign);

async function start(args: string[]): Promise<TestLookup> {
  lookup = await startTestLookup(proxy.url, [...FAST_FAILURE, ...NO_THROTTLE, ...args]);
  client = await RawClient.prompted(lookup.port);
  return lookup;
}

const logged = (message: string) => lookup!.logs.some((line) => line.msg === message);
const countLogged = (message: string) => lookup!.logs.filter((line) => line.msg === message).length;

describe('PostgreSQL unreachable while serving', () => {
  it('keeps answering cached atsigns, answers uncached ones null without caching that, and catches up after', async () => {
    await start(['--cache-ttl', '10m']);
    expect(await ask('alice')).toBe('alice.example.com:6464');

    proxy.cut();
    expect(await eventually(() => logged('change listener disconnected; serving from cache while reconnecting'))).toBe(true);
    // Committed while this process cannot hear about it.
    await database.pool.query("UPDATE atsigns SET host = 'moved.example.com' WHERE atsign = 'alice'");
    await database.pool.query("INSERT INTO atsigns (atsign, host, port) VALUES ('dave', 'dave.example.com', 6464)");

    for (let i = 0; i < 5; i++) expect(await ask('alice')).toBe('alice.example.com:6464');
    expect(await ask('carol')).toBe('null');
    expect(lookup!.logs.some((line) => line.msg.startsWith('database read failed'))).toBe(true);

    const caughtUpBefore = countLogged('change listener caught up');
    proxy.restore();
    expect(await eventually(() => countLogged('change listener caught up') > caughtUpBefore, 5000)).toBe(true);
    // The change made during the outage was not missed, although alice's entry is still fresh.
    expect(await ask('alice')).toBe('moved.example.com:6464');
    expect(await ask('carol')).toBe('carol.example.com:6464');
    expect(await ask('dave')).toBe('dave.example.com:6464');

    const since = performance.now();
    await database.pool.query("UPDATE atsigns SET port = 7000 WHERE atsign = 'alice'");
    expect(await eventually(async () => (await ask('alice')) === 'moved.example.com:7000', 2000, 1)).toBe(true);
    expect(performance.now() - since).toBeLessThan(100);
  });

  it('serves expired answers within the stale bound while the database is away', async () => {
    await start(['--cache-ttl', '1s', '--cache-max-stale', '1h']);
    expect(await ask('alice')).toBe('alice.example.com:6464');
    proxy.cut();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    for (let i = 0; i < 3; i++) expect(await ask('alice')).toBe('alice.example.com:6464');
  });

  it('stops serving answers older than the stale bound', async () => {
    await start(['--cache-ttl', '1s', '--cache-max-stale', '0']);
    expect(await ask('alice')).toBe('alice.example.com:6464');
    proxy.cut();
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(await ask('alice')).toBe('null');
  });

  it('clears its cache when the change log was trimmed past what it missed', async () => {
    await start(['--cache-ttl', '10m']);
    expect(await ask('alice')).toBe('alice.example.com:6464');
    proxy.cut();
    expect(await eventually(() => logged('change listener disconnected; serving from cache while reconnecting'))).toBe(true);
    await database.pool.query("UPDATE atsigns SET host = 'moved.example.com' WHERE atsign = 'alice'");
    await database.pool.query("SELECT trim_atsign_changes('0 seconds')");
    proxy.restore();
    expect(await eventually(() => logged('change log no longer reaches back to the last change applied; clearing the cache'), 5000)).toBe(
      true,
    );
    expect(await ask('alice')).toBe('moved.example.com:6464');
  });
});

describe('PostgreSQL unreachable at start', () => {
  it('waits for the database, then serves', async () => {
    proxy.cut();
    const starting = startTestLookup(proxy.url, FAST_FAILURE);
    await new Promise((resolve) => setTimeout(resolve, 800));
    proxy.restore();
    lookup = await starting;
    client = await RawClient.connect(lookup.port);
    client.send('alice\n');
    expect(await client.waitForText('@alice.example.com:6464\r\n@')).toBe('@alice.example.com:6464\r\n@');
  });
});

describe('PostgreSQL down when serve starts', () => {
  it('waits for it, not ready and saying why, then serves once it is up', async () => {
    proxy.cut();
    const opsPort = await freePort();
    const starting = spawnServe(['--database-url', proxy.url, '--ops-port', String(opsPort), ...FAST_FAILURE]);
    const readyz = async () => {
      const response = await fetch(`http://127.0.0.1:${opsPort}/readyz`).catch(() => undefined);
      return response && { status: response.status, body: (await response.json()) as { checks: Record<string, string> } };
    };
    expect(await eventually(async () => (await readyz())?.body.checks.startup?.startsWith('waiting for the database: ') ?? false, 10_000, 100)).toBe(true);
    expect((await readyz())!.status).toBe(503);
    proxy.restore();
    const server = await starting;
    try {
      expect(await eventually(async () => (await readyz())?.status === 200, 10_000, 100)).toBe(true);
      client = await RawClient.prompted(server.port);
      expect(await client.ask('alice')).toBe('alice.example.com:6464');
      expect(server.logs.some((line) => line.msg === 'database unreachable at start; waiting for it')).toBe(true);
    } finally {
      await server.stop();
    }
  });

  it('fails at once when the database refuses the credentials', async () => {
    const wrong = new URL(database.url);
    wrong.username = 'nosuchuser';
    await expect(spawnServe(['--database-url', wrong.toString()], {}, { startTimeoutMs: 10_000 })).rejects.toThrow(/cannot migrate .*nosuchuser/);
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
