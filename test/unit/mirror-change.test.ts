import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { changeMessage, SignatureVerifier, SigningKey } from '../../src/feed/signing.js';
import { chainLink, verifyChange, type FeedChange } from '../../src/mirror/change.js';

const newKey = () => SigningKey.fromPem(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), 'a test key');
const key = newKey();
const verifier = new SignatureVerifier(key.publicKey);

const fields = { version: 101, previous: 99, atsign: 'alice', host: 'alice.example.com', port: 6464, status: 'active' as const, changedAt: '2026-11-30T04:00:00.123Z' };
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
    for (const altered of [{ previous: 100 }, { host: 'evil.example.com' }, { port: 6465 }, { status: 'suspended' }, { atsign: 'bob' }, { version: 102 }, { changedAt: '2026-11-30T04:00:00.124Z' }]) {
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
    for (const previous of [101, 102, -1, 1.5, '99', undefined]) {
      expect(verifyChange(data(signed({ ...fields, previous })), verifier)).toEqual({ refused: 'malformed', detail: 'change 101: previous is not an integer from 0 below the version' });
    }
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

describe('the chain of changes', () => {
  const change = (version: number, previous: number): FeedChange => ({ ...fields, version, previous });

  it('takes the change that names the last one applied, across versions that carried none', () => {
    expect(chainLink(change(101, 99), 99)).toBe('next');
    // 100 rolled back: the source says so by naming 99, which no reader could tell from versions.
    expect(chainLink(change(105, 101), 101)).toBe('next');
    expect(chainLink(change(1, 0), 0)).toBe('next');
  });

  it('ignores a replay of what is applied', () => {
    expect(chainLink(change(101, 99), 101)).toBe('applied');
    expect(chainLink(change(99, 98), 101)).toBe('applied');
  });

  it('refuses a change whose predecessor is not the last one applied: one was dropped', () => {
    // 103 (the suspension, say) was kept from the mirror: 104 names it.
    expect(chainLink(change(104, 103), 101)).toBe('gap');
    // A forged settled event moved the resume point; the next change still names what was skipped.
    expect(chainLink(change(160, 150), 101)).toBe('gap');
    // Never a genuine entry: its predecessor is older than a change already applied.
    expect(chainLink(change(104, 99), 101)).toBe('gap');
  });
});
