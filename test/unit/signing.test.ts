import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { changeMessage, SignatureVerifier, SigningKey, snapshotMessage } from '../../src/feed/signing.js';

const dir = await mkdtemp(join(tmpdir(), 'atdir-signing-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

const change = { version: 42, previous: 39, atsign: 'alice🛠', host: 'alice.example.com', port: 6464, status: 'active' as const, changedAt: '2026-11-30T04:00:00.000Z' };

describe('feed signing', () => {
  it('generates a key once, mode 0600, and reads the same key back', async () => {
    const path = join(dir, 'keys', 'signing-key.pem');
    const first = await SigningKey.load(path, { generate: true });
    const second = await SigningKey.load(path, { generate: true });
    expect(first.generated).toBe(true);
    expect(second.generated).toBe(false);
    expect(second.key.publicKey).toBe(first.key.publicKey);
    expect(Buffer.from(first.key.publicKey, 'base64')).toHaveLength(32);
    expect(first.key.keyId).toMatch(/^[0-9a-f]{16}$/);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('gives processes that start together on one data directory the same, whole key', async () => {
    const path = join(dir, 'together', 'signing-key.pem');
    const loads = await Promise.all(Array.from({ length: 20 }, () => SigningKey.load(path, { generate: true })));
    expect(new Set(loads.map((load) => load.key.publicKey)).size).toBe(1);
    expect(loads.filter((load) => load.generated)).toHaveLength(1);
    expect(await readdir(join(dir, 'together'))).toEqual(['signing-key.pem']);
  });

  it('signs changes and snapshots so that only the unaltered message verifies', async () => {
    const { key } = await SigningKey.load(join(dir, 'k2.pem'), { generate: true });
    const verifier = new SignatureVerifier(key.publicKey);
    const signature = key.sign(changeMessage(change));
    expect(verifier.verify(changeMessage(change), signature)).toBe(true);
    expect(verifier.verify(changeMessage({ ...change, port: 6465 }), signature)).toBe(false);
    expect(verifier.verify(changeMessage({ ...change, host: null, port: null, status: null }), signature)).toBe(false);
    // The predecessor is signed: an entry cannot be made to look as if it followed another.
    expect(verifier.verify(changeMessage({ ...change, previous: 41 }), signature)).toBe(false);
    const snapshot = { version: 42, lastChange: 39, count: 3, sha256: 'ab'.repeat(32) };
    // A change signature is not a snapshot signature even over look-alike fields.
    expect(verifier.verify(snapshotMessage(snapshot), signature)).toBe(false);
    expect(verifier.verify(snapshotMessage(snapshot), key.sign(snapshotMessage(snapshot)))).toBe(true);
    expect(verifier.verify(snapshotMessage({ ...snapshot, lastChange: 40 }), key.sign(snapshotMessage(snapshot)))).toBe(false);
  });

  it('signs the exact v2 messages: the predecessor of a change, the last change of a snapshot', () => {
    expect(changeMessage(change).toString()).toBe('["atdirectory.change.v2",42,39,"alice🛠","alice.example.com",6464,"active","2026-11-30T04:00:00.000Z"]');
    expect(snapshotMessage({ version: 42, lastChange: 39, count: 3, sha256: 'ab' }).toString()).toBe('["atdirectory.snapshot.v2",42,39,3,"ab"]');
  });

  it('rejects missing, malformed and foreign signatures without throwing', async () => {
    const { key } = await SigningKey.load(join(dir, 'k3.pem'), { generate: true });
    const { key: other } = await SigningKey.load(join(dir, 'k4.pem'), { generate: true });
    const verifier = new SignatureVerifier(key.publicKey);
    const message = changeMessage(change);
    expect(verifier.verify(message, undefined)).toBe(false);
    expect(verifier.verify(message, 'not base64 at all')).toBe(false);
    expect(verifier.verify(message, other.sign(message))).toBe(false);
  });

  it('refuses keys that are not Ed25519, and public keys that are not 32 bytes', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' });
    await writeFile(join(dir, 'rsa.pem'), rsa);
    await expect(SigningKey.load(join(dir, 'rsa.pem'), { generate: false })).rejects.toThrow(`${join(dir, 'rsa.pem')} is a rsa key; the feed is signed with Ed25519`);
    await expect(SigningKey.load(join(dir, 'missing.pem'), { generate: false })).rejects.toThrow(`cannot read the signing key ${join(dir, 'missing.pem')}`);
    expect(() => new SignatureVerifier('abc')).toThrow('expected a 32-byte Ed25519 public key in base64');
    expect(await readFile(join(dir, 'rsa.pem'), 'utf8')).toContain('PRIVATE KEY');
  });
});
