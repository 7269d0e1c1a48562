import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { startTestLookup, type TestLookup } from '../support/lookup-harness.js';
import { RawClient } from '../support/raw-client.js';

// The worked examples of shared/protocol.md, byte for byte, on a real TLS port backed by a real
// database.

let database: TestDatabase;
let lookup: TestLookup;
const clients: RawClient[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  await insertRecord(database.pool, 'alice', 'alice.example.com', 6464);
  await insertRecord(database.pool, 'alice🛠', 'vip.ve.atsign.zone', 25000);
  await insertRecord(database.pool, 'carol', 'carol.example.com', 7000);
  await insertRecord(database.pool, 'mallory', 'mallory.example.com', 6464, 'suspended');
  // Written as a legacy registrar would: the trigger normalises the key.
  await database.pool.query("INSERT INTO atsigns (atsign, host, port) VALUES (E' \\t@Vivaldi v\\n', 'v.example.com', 64)");
  lookup = await startTestLookup(database.url);
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

const ALICE = 'alice.example.com:6464\r\n@';
const ALICE_TOOL = 'vip.ve.atsign.zone:25000\r\n@';
const NULL = 'null\r\n@';

describe('the prompt', () => {
  it('is the single byte "@" in a read of its own, before anything is asked', async () => {
    const client = await connect();
    expect(client.reads.map(String)).toEqual(['@']);
  });
});

describe('worked examples', () => {
  const examples: Array<[string, string | Buffer, string]> = [
    ['a known atsign', 'alice\n', ALICE],
    ['mixed case with CRLF', 'ALICE\r\n', ALICE],
    ['an emoji atsign', Buffer.from([0x61, 0x6c, 0x69, 0x63, 0x65, 0xf0, 0x9f, 0x9b, 0xa0, 0x0a]), ALICE_TOOL],
    ['an unknown atsign', 'nosuch\n', NULL],
    ['an empty line (CRLF)', '\r\n', NULL],
    ['an empty line (LF)', '\n', NULL],
    ['an atsign with its "@" (never a stored key)', '@alice\n', NULL],
    ['surrounding Unicode whitespace', '\t\u00a0 Alice \u2003\r\n', ALICE],
    ['"info" (not a command)', 'info\n', NULL],
    ['"help" (not a command)', 'help\n', NULL],
    ['a lone "@"', '@\n', NULL],
    ['a suspended atsign', 'mallory\n', NULL],
    ['a key normalised by the database trigger (trimmed, folded, "@" removed)', 'vivaldi v\n', 'v.example.com:64\r\n@'],
  ];
  it.each(examples)('%s', async (_name, request, answer) => {
    const client = await connect();
    client.send(request);
    await client.waitForText('@' + answer);
    expect(client.text).toBe('@' + answer);
    expect(client.reads.at(-1)!.toString()).toBe(answer);
    expect(client.isClosed).toBe(false);
  });

  it.each(['@exit\n', '@EXIT\r\n', '  @Exit \t\r\n'])('%j closes the connection with no reply', async (request) => {
    const client = await connect();
    client.send(request);
    await client.closed;
    expect(client.text).toBe('@');
  });

  it('"exit" without "@" is a lookup', async () => {
    const client = await connect();
    client.send('exit\n');
    expect(await client.waitForText('@' + NULL)).toBe('@' + NULL);
  });
});

describe('framing', () => {
  it('answers a request split over several reads once, after its last part', async () => {
    const client = await connect();
    client.send('al');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(client.text).toBe('@');
    client.send('ice\n');
    expect(await client.waitForText('@' + ALICE)).toBe('@' + ALICE);
  });

  it('reassembles a multi-byte character split between reads', async () => {
    const client = await connect();
    const request = Buffer.from('alice🛠\n');
    client.send(request.subarray(0, 7));
    await new Promise((resolve) => setTimeout(resolve, 50));
    client.send(request.subarray(7));
    expect(await client.waitForText('@' + ALICE_TOOL)).toBe('@' + ALICE_TOOL);
  });

  it('answers several requests in one read, in order, one write each', async () => {
    const client = await connect();
    client.send('alice\nALICE\r\nalice🛠\n\n');
    const expected = '@' + ALICE + ALICE + ALICE_TOOL + NULL;
    expect(await client.waitForText(expected)).toBe(expected);
  });

  it('keeps request order when an uncached atsign precedes a cached one', async () => {
    const warm = await connect();
    warm.send('alice\n');
    await warm.waitForText('@' + ALICE);
    const client = await connect();
    client.send('carol\nalice\n');
    const expected = '@carol.example.com:7000\r\n@' + ALICE;
    expect(await client.waitForText(expected)).toBe(expected);
  });

  it('serves many lookups on one connection', async () => {
    const client = await connect();
    let expected = '@';
    for (let i = 0; i < 20; i++) {
      client.send(i % 2 ? 'alice\n' : 'alice🛠\n');
      expected += i % 2 ? ALICE : ALICE_TOOL;
      await client.waitForText(expected);
    }
    expect(client.text).toBe(expected);
  });

  it('accepts a line of exactly the limit (255 UTF-16 units)', async () => {
    const client = await connect();
    client.send('a'.repeat(255) + '\n');
    expect(await client.waitForText('@' + NULL)).toBe('@' + NULL);
  });

  it('closes without a byte on a line over the limit', async () => {
    const client = await connect();
    client.send('a'.repeat(256) + '\n');
    await client.closed;
    expect(client.text).toBe('@');
  });

  it('closes without a byte when an unterminated line outgrows the limit', async () => {
    const client = await connect();
    client.send('🛠'.repeat(300));
    await client.closed;
    expect(client.text).toBe('@');
  });

  it('counts the limit in UTF-16 units, like the reference', async () => {
    const client = await connect();
    // 128 emoji are 256 UTF-16 units (and 512 bytes): over the limit.
    client.send('🛠'.repeat(128) + '\n');
    await client.closed;
    expect(client.text).toBe('@');
  });

  it('closes without a byte on invalid UTF-8', async () => {
    const client = await connect();
    client.send(Buffer.from([0x61, 0xff, 0x62, 0x0a]));
    await client.closed;
    expect(client.text).toBe('@');
  });

  it('closes without a byte on an overlong UTF-8 encoding', async () => {
    const client = await connect();
    client.send(Buffer.from([0xc0, 0xaf, 0x0a]));
    await client.closed;
    expect(client.text).toBe('@');
  });

  it('treats a genuine U+FFFD as an ordinary lookup', async () => {
    const client = await connect();
    client.send('a\uFFFDb\n');
    expect(await client.waitForText('@' + NULL)).toBe('@' + NULL);
  });

  it('does not answer lines after @exit in the same read', async () => {
    const client = await connect();
    client.send('alice\n@exit\nalice\n');
    await client.closed;
    expect(client.text).toBe('@' + ALICE);
  });
});
