import { isUtf8 } from 'node:buffer';
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_COMMAND, lookupKey } from '../../src/directory/atsign.js';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { startTestLookup, type TestLookup } from '../support/lookup-harness.js';
import { RawClient } from '../support/raw-client.js';

// The protocol handler against random input, over real TLS, checked against a model of
// shared/protocol.md: every byte answered must be exactly what the model says, and a connection
// must close exactly when the model says it does.

// A Map, not an object literal: the model must not find `__proto__` or `constructor` (a fuzz run
// asked for `__proto__` and the model expected "[object Object]").
const RECORDS = new Map([
  ['alice', 'alice.example.com:6464'],
  ['bob', '10.0.0.2:1'],
  ['alice🛠', 'tools.example.com:2'],
  ['émile', 'e.example.com:3'],
]);
const MAX_LINE_LENGTH = 255;
const MAX_LINE_BYTES = MAX_LINE_LENGTH * 3 + 1;

let database: TestDatabase;
let lookup: TestLookup;

beforeAll(async () => {
  database = await createTestDatabase();
  for (const [atsign, value] of RECORDS) {
    const [host, port] = value.split(':') as [string, string];
    await insertRecord(database.pool, atsign, host, Number(port));
  }
  // No enumeration throttling: the model is about framing and answers.
  lookup = await startTestLookup(database.url, ['--miss-delay-from', '0', '--miss-close-at', '0']);
});

afterAll(async () => {
  await lookup?.stop();
  await database?.drop();
});

interface Expected {
  /** Everything the server sends, prompt included. */
  bytes: string;
  /** Whether the server closes the connection (after sending `bytes`). */
  closes: boolean;
}

/** What protocol.md says the server answers to `input`, sent on one connection. */
function model(input: Buffer): Expected {
  let bytes = '@';
  let offset = 0;
  for (;;) {
    const newline = input.indexOf(0x0a, offset);
    if (newline < 0) return { bytes, closes: input.length - offset > MAX_LINE_BYTES };
    const end = newline > offset && input[newline - 1] === 0x0d ? newline - 1 : newline;
    const raw = input.subarray(offset, end);
    const line = raw.toString('utf8');
    if (raw.length > MAX_LINE_BYTES || line.length > MAX_LINE_LENGTH || !isUtf8(raw)) return { bytes, closes: true };
    const key = lookupKey(line);
    if (key === EXIT_COMMAND) return { bytes, closes: true };
    bytes += `${RECORDS.get(key) ?? 'null'}\r\n@`;
    offset = newline + 1;
  }
}

const knownKeys = fc.constantFrom('alice', 'ALICE', ' bob\t', 'Alice🛠', 'ÉMILE', '@alice', '', ' ');
const exitVariants = fc.constantFrom('@exit', '@EXIT', ' @Exit\t', '@exit ', '@ exit', 'exit', '@exit!');
const text = fc.string({ unit: 'grapheme', maxLength: 40 }).filter((line) => !line.includes('\n'));
const randomBytes = fc.uint8Array({ maxLength: 60 }).map((bytes) => Buffer.from(bytes.filter((byte) => byte !== 0x0a)));
const hugeLine = fc.integer({ min: 200, max: 3000 }).map((length) => 'x'.repeat(length));
const line = fc.oneof(
  { arbitrary: knownKeys.map((key) => Buffer.from(key)), weight: 4 },
  { arbitrary: exitVariants.map((key) => Buffer.from(key)), weight: 1 },
  { arbitrary: text.map((key) => Buffer.from(key)), weight: 3 },
  { arbitrary: randomBytes, weight: 2 },
  { arbitrary: hugeLine.map((key) => Buffer.from(key)), weight: 1 },
);
const session = fc
  .tuple(fc.array(fc.tuple(line, fc.constantFrom('\n', '\r\n')), { maxLength: 8 }), fc.option(line, { nil: undefined }))
  .map(([lines, partial]) => Buffer.concat([...lines.flatMap(([bytes, end]) => [bytes, Buffer.from(end)]), partial ?? Buffer.alloc(0)]));
/** Where to cut the input into writes: each read the server sees may split or join requests. */
const cuts = fc.array(fc.integer({ min: 1, max: 64 }), { minLength: 1, maxLength: 12 });

async function exchange(input: Buffer, chunkSizes: number[]): Promise<{ bytes: string; closed: boolean }> {
  const client = await RawClient.prompted(lookup.port);
  let offset = 0;
  for (let i = 0; offset < input.length; i++) {
    const size = chunkSizes[i % chunkSizes.length]!;
    client.send(input.subarray(offset, offset + size));
    offset += size;
    await new Promise((resolve) => setImmediate(resolve));
  }
  const expected = model(input);
  await client.waitUntil(() => client.bytes.length >= Buffer.byteLength(expected.bytes), 3000);
  // Give a wrong extra answer, or a wrong close, the chance to show itself.
  await client.waitUntil(() => client.isClosed, expected.closes ? 3000 : 30);
  const result = { bytes: client.text, closed: client.isClosed };
  client.close();
  return result;
}

describe('the protocol handler under random input', () => {
  it('answers exactly per protocol.md, however the input is split', async () => {
    await fc.assert(
      fc.asyncProperty(session, cuts, async (input, chunkSizes) => {
        const expected = model(input);
        expect(await exchange(input, chunkSizes)).toEqual({ bytes: expected.bytes, closed: expected.closes });
      }),
      // Keys that name properties of every JavaScript object, always tried.
      { numRuns: 150, examples: [[Buffer.from('__proto__\nconstructor\nalice\n'), [1]]] },
    );
  });

  // Found by the property above: the connection used to be destroyed at once, losing the answer
  // still in its write buffer.
  it('delivers the answers to earlier requests before closing for a bad line', async () => {
    for (const bad of [Buffer.from([0x80]), Buffer.alloc(300, 0x61)]) {
      await database.pool.query("UPDATE atsigns SET port = port WHERE atsign = 'bob'");
      const client = await RawClient.prompted(lookup.port);
      client.send(Buffer.concat([Buffer.from('bob\nnosuch\n'), bad, Buffer.from('\nalice\n')]));
      await client.closed;
      expect(client.text).toBe('@10.0.0.2:1\r\n@null\r\n@');
    }
  });

  it('keeps its memory flat across thousands of hostile connections', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const hostile = [Buffer.alloc(100_000, 0x61), Buffer.from([0xff, 0xfe, 0x00, 0x0a]), Buffer.from('\0\0\0\n@exit\n'), Buffer.from('alice\n'.repeat(500))];
    const round = async () => {
      for (let i = 0; i < 100; i++) {
        await Promise.all(hostile.map(async (input) => {
          const client = await RawClient.prompted(lookup.port);
          client.send(input);
          await client.waitUntil(() => client.isClosed || client.bytes.length >= 1 + 500 * 24, 2000);
          client.close();
        }));
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
      gc();
      return getHeapStatistics().used_heap_size;
    };
    const warm = await round();
    const after = [await round(), await round()];
    // 800 more hostile connections may not leave more than a few MB behind.
    expect(Math.max(...after) - warm).toBeLessThan(8 * 1024 * 1024);
    expect(lookup.logs.filter((entry) => entry.level >= 50)).toEqual([]);
  });
});
