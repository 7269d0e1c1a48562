import { createHash, generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SignatureVerifier, SigningKey, snapshotMessage } from '../../src/feed/signing.js';
import type { MirroredRecord } from '../../src/mirror/change.js';
import { readSnapshot, SnapshotRefused } from '../../src/mirror/snapshot.js';

const newKey = () => SigningKey.fromPem(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), 'a test key');
const key = newKey();
const verifier = new SignatureVerifier(key.publicKey);

const records: MirroredRecord[] = [
  { atsign: 'alice', host: 'alice.example.com', port: 6464, status: 'active', version: 101 },
  { atsign: 'alice🛠', host: 'vip.ve.atsign.zone', port: 25000, status: 'suspended', version: 102 },
  { atsign: 'bob', host: '10.0.0.1', port: 1, status: 'active', version: 155 },
];

/** A snapshot as GET /v1/snapshot sends it, with parts of it replaceable. */
function snapshot(options: { by?: SigningKey; recordLines?: string[]; end?: Record<string, unknown>; header?: Record<string, unknown> } = {}): string {
  const by = options.by ?? key;
  const recordLines = options.recordLines ?? records.map((record) => JSON.stringify({ type: 'record', ...record }));
  const body = recordLines.map((line) => `${line}\n`).join('');
  const sha256 = createHash('sha256').update(body).digest('hex');
  const end = { version: 150, lastChange: 148, count: recordLines.length, sha256, signature: by.sign(snapshotMessage({ version: 150, lastChange: 148, count: recordLines.length, sha256 })) };
  const header = { type: 'snapshot', version: 150, publicKey: by.publicKey, createdAt: '2026-11-30T04:00:02.000Z', ...options.header };
  return `${JSON.stringify(header)}\n${body}${JSON.stringify({ type: 'end', ...end, ...options.end })}\n`;
}

async function* chunked(text: string, size: number): AsyncIterable<Uint8Array> {
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

async function read(text: string, chunkSize = 7, batchSize = 2) {
  const staged: MirroredRecord[][] = [];
  const verified = await readSnapshot(chunked(text, chunkSize), verifier, async (batch) => void staged.push(batch), batchSize);
  return { verified, staged };
}

async function refusal(text: string): Promise<string> {
  const error = await read(text).then(() => undefined, (caught: unknown) => caught);
  expect(error).toBeInstanceOf(SnapshotRefused);
  return (error as Error).message;
}

describe('reading a snapshot', () => {
  it('stages every record in batches and resolves with the verified version, however the bytes arrive', async () => {
    for (const chunkSize of [1, 7, 4096]) {
      const { verified, staged } = await read(snapshot(), chunkSize);
      expect(verified).toEqual({ version: 150, lastChange: 148, count: 3 });
      expect(staged).toEqual([records.slice(0, 2), records.slice(2)]);
    }
  });

  it('accepts an empty directory and an end line without its newline', async () => {
    expect((await read(snapshot({ recordLines: [] }))).verified).toEqual({ version: 150, lastChange: 148, count: 0 });
    expect((await read(snapshot().replace(/\n$/, ''))).verified.count).toBe(3);
  });

  it('refuses a snapshot from another key at its first line', async () => {
    const other = newKey();
    expect(await refusal(snapshot({ by: other }))).toBe(`the source signs with public key ${JSON.stringify(other.publicKey)}, not the --mirror-key given (key id ${verifier.keyId})`);
  });

  it('refuses a wrong signature, count, digest, version or last change in the end line', async () => {
    const good = JSON.parse(snapshot().trim().split('\n').at(-1)!) as { signature: string };
    expect(await refusal(snapshot({ end: { signature: newKey().sign(Buffer.from('x')) } }))).toBe(`the end line does not carry a valid signature of key ${verifier.keyId}`);
    expect(await refusal(snapshot({ end: { count: 2 } }))).toBe('the end line counts 2 records, 3 were received');
    expect(await refusal(snapshot({ end: { sha256: 'ab'.repeat(32) } }))).toBe('the SHA-256 of the record lines does not match the end line');
    expect(await refusal(snapshot({ end: { version: 151, signature: good.signature } }))).toBe('the end line is for version 151, the header for 150');
    // A moved lastChange would make the mirror accept a change that skips others, or refuse good ones.
    expect(await refusal(snapshot({ end: { lastChange: 140 } }))).toBe(`the end line does not carry a valid signature of key ${verifier.keyId}`);
    for (const lastChange of [151, -1, '148', undefined]) {
      expect(await refusal(snapshot({ end: { lastChange } }))).toBe("the end line's lastChange is not an integer from 0 to the version 150");
    }
  });

  it('refuses a record changed in transit, though every line is well-formed', async () => {
    const text = snapshot().replace('alice.example.com', 'evil.example.com');
    expect(await refusal(text)).toBe('the SHA-256 of the record lines does not match the end line');
  });

  it('refuses a stream cut short, anything after the end line, and lines that are not records', async () => {
    const text = snapshot();
    expect(await refusal(text.split('\n').slice(0, 3).join('\n') + '\n')).toBe('the snapshot ended after 2 records without its end line');
    expect(await refusal('')).toBe('the snapshot is empty');
    expect(await refusal(`${text}{"type":"record"}\n`)).toBe('the snapshot continues after its end line');
    expect(await refusal(snapshot({ recordLines: ['{"type":"other"}'] }))).toBe('expected a record or end line, got type "other"');
    expect(await refusal(snapshot({ recordLines: ['not json'] }))).toBe('a snapshot line is not JSON');
    expect(await refusal(snapshot({ recordLines: ['{"type":"record","atsign":"a","host":"h:1","port":1,"status":"active","version":1}'] }))).toBe(
      '@a: the host is empty or contains ":", "@", whitespace or control characters',
    );
    expect(await refusal(`{"type":"record"}\n`)).toBe('the first line is not the snapshot header');
  });

  it('refuses a line longer than any record instead of buffering it', async () => {
    expect(await refusal(`${'x'.repeat(70 * 1024)}`)).toBe('a snapshot line is longer than 65536 bytes');
  });
});
