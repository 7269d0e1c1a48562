import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { startTestLookup, type TestLookup } from '../support/lookup-harness.js';
import { RawClient } from '../support/raw-client.js';

// Enumeration throttling, with the reference's shape (2nd miss delayed, 3rd closes) and short
// timings so the suite stays fast: delay 300 ms, window 1.5 s.

const DELAY = 300;
const WINDOW = 1500;
const ALICE = 'alice.example.com:6464\r\n@';
const NULL = 'null\r\n@';

let database: TestDatabase;
let lookup: TestLookup;
const clients: RawClient[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  await insertRecord(database.pool, 'alice', 'alice.example.com', 6464);
  lookup = await startTestLookup(database.url, ['--miss-delay', `${DELAY}ms`, '--miss-window', `${WINDOW}ms`]);
});

afterAll(async () => {
  for (const client of clients) client.close();
  await lookup?.stop();
  await database?.drop();
});

async function connect(): Promise<RawClient> {
  const client = await RawClient.prompted(lookup.port);
  clients.push(client);
  return client;
}

/** Sends one request and returns the milliseconds until `expected` has arrived. */
async function timed(client: RawClient, request: string, expected: string): Promise<number> {
  const started = performance.now();
  client.send(request);
  await client.waitForText(expected, 5000);
  return performance.now() - started;
}

describe('enumeration throttling', () => {
  it('answers the 1st miss at once, delays the 2nd, and closes on the 3rd without an answer', async () => {
    const client = await connect();
    expect(await timed(client, 'nosuch1\n', '@' + NULL)).toBeLessThan(DELAY / 2);
    expect(await timed(client, 'nosuch2\n', '@' + NULL + NULL)).toBeGreaterThanOrEqual(DELAY - 5);
    client.send('nosuch3\n');
    await client.closed;
    expect(client.text).toBe('@' + NULL + NULL);
  });

  it('does not forgive misses for hits in between', async () => {
    const client = await connect();
    await timed(client, 'nosuch1\n', '@' + NULL);
    await timed(client, 'alice\n', '@' + NULL + ALICE);
    await timed(client, 'nosuch2\n', '@' + NULL + ALICE + NULL);
    await timed(client, 'alice\n', '@' + NULL + ALICE + NULL + ALICE);
    client.send('nosuch3\n');
    await client.closed;
    expect(client.text).toBe('@' + NULL + ALICE + NULL + ALICE);
  });

  it('never counts empty lines (the C SDK probe) as misses', async () => {
    const client = await connect();
    expect(await timed(client, '\n\r\n\n\r\n', '@' + NULL.repeat(4))).toBeLessThan(DELAY / 2);
    expect(await timed(client, 'nosuch\n', '@' + NULL.repeat(5))).toBeLessThan(DELAY / 2);
  });

  it('forgets misses older than the window, so long-lived connections are not closed', async () => {
    const client = await connect();
    await timed(client, 'nosuch1\n', '@' + NULL);
    await new Promise((resolve) => setTimeout(resolve, WINDOW + 100));
    expect(await timed(client, 'nosuch2\n', '@' + NULL + NULL)).toBeLessThan(DELAY / 2);
    expect(await timed(client, 'nosuch3\n', '@' + NULL.repeat(3))).toBeGreaterThanOrEqual(DELAY - 5);
    expect(client.isClosed).toBe(false);
  });

  it('holds requests behind a delayed miss, so answers stay in order', async () => {
    const client = await connect();
    await timed(client, 'nosuch1\n', '@' + NULL);
    const elapsed = await timed(client, 'nosuch2\nalice\n', '@' + NULL + NULL + ALICE);
    expect(elapsed).toBeGreaterThanOrEqual(DELAY - 5);
    expect(client.text).toBe('@' + NULL + NULL + ALICE);
  });

  it('counts lookups of "@alice" and suspended atsigns as misses', async () => {
    await database.pool.query("INSERT INTO atsigns (atsign, host, port, status) VALUES ('sus', 'sus.example.com', 1, 'suspended')");
    const client = await connect();
    await timed(client, '@alice\n', '@' + NULL);
    expect(await timed(client, 'sus\n', '@' + NULL + NULL)).toBeGreaterThanOrEqual(DELAY - 5);
  });
});
