import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { changeMessage, SignatureVerifier, SigningKey } from '../../src/feed/signing.js';
import { verifyChange } from '../../src/mirror/change.js';

const newKey = () => SigningKey.fromPem(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), 'a test key');
const key = newKey();
const verifier = new SignatureVerifier(key.publicKey);

const fields = { version: 101, atsign: 'alice', host: 'alice.example.com', port: 6464, status: 'active' as const, changedAt: '2026-11-30T04:00:00.123Z' };
const signed = (change: typeof fields | Record<string, unknown>, by = key) => ({ ...change, signature: by.sign(changeMessage(change as typeof fields)) });
const data = (entry: unknown) => JSON.stringify(entry);

describe('verifying a feed change', () => {
  it('accepts a signed change and a signed deletion', () => {
    expect(verifyChange(data(signed(fields)), verifier)).toEqual({ change: fields });
    const deletion = { ...fields, host: null, port: null, status: null };
    expect(verifyChange(data(signed(deletion)), verifier)).toEqual({ change: deletion });
  });

  it('refuses any altered field, a foreign key\'s signature and a missing signature', () => {
    const entry = signed(fields);
    for (const altered of [{ host: 'evil.example.com' }, { port: 6465 }, { status: 'suspended' }, { atsign: 'bob' }, { version: 102 }, { changedAt: '2026-11-30T04:00:00.124Z' }]) {
      expect(verifyChange(data({ ...entry, ...altered }), verifier)).toEqual({
        refused: 'signature',
        detail: expect.stringContaining(`does not carry a valid signature of key ${verifier.keyId}`),
      });
    }
    expect(verifyChange(data(signed(fields, newKey())), verifier)).toMatchObject({ refused: 'signature' });
    expect(verifyChange(data({ ...fields }), verifier)).toMatchObject({ refused: 'signature' });
  });

  it('refuses malformed entries with the reason', () => {
    expect(verifyChange('{', verifier)).toEqual({ refused: 'malformed', detail: 'the change is not JSON' });
    expect(verifyChange('null', verifier)).toEqual({ refused: 'malformed', detail: 'the change is not a JSON object' });
    expect(verifyChange(data(signed({ ...fields, version: 0 })), verifier)).toEqual({ refused: 'malformed', detail: 'version is not a positive integer' });
    expect(verifyChange(data(signed({ ...fields, atsign: 7 })), verifier)).toEqual({ refused: 'malformed', detail: 'change 101: atsign and changedAt must be strings' });
    expect(verifyChange(data(signed({ ...fields, port: null })), verifier)).toEqual({
      refused: 'malformed',
      detail: 'change 101: host, port and status must all be set, or all be null for a deletion',
    });
  });

  it('refuses signed values no directory could store, so that they cannot stop a batch', () => {
    expect(verifyChange(data(signed({ ...fields, host: 'a:b' })), verifier)).toEqual({
      refused: 'malformed',
      detail: 'change 101 (@alice): the host is empty or contains ":", "@", whitespace or control characters',
    });
    expect(verifyChange(data(signed({ ...fields, port: 70000 })), verifier)).toEqual({ refused: 'malformed', detail: 'change 101 (@alice): the port is not an integer from 1 to 65535' });
    expect(verifyChange(data(signed({ ...fields, atsign: '' })), verifier)).toEqual({ refused: 'malformed', detail: 'change 101 (@): the atsign is empty, too long or contains NUL' });
  });
});
