import { describe, expect, it } from 'vitest';
import { NOT_FOUND, PROMPT, encodeAnswer } from '../../src/directory/answer.js';
import { isStorableKey, lookupKey } from '../../src/directory/atsign.js';
import { MissWindow } from '../../src/lookup/miss-window.js';

describe('lookupKey', () => {
  it.each([
    ['alice', 'alice'],
    ['ALICE', 'alice'],
    [' \t alice\r', 'alice'],
    ['\u00a0\u2003Alice\ufeff', 'alice'],
    ['ALICE🛠', 'alice🛠'],
    ['@Alice', '@alice'],
    ['a.l.i.c.e', 'a.l.i.c.e'],
    ['ÄLICE', 'älice'],
    ['ΣΑΣ', 'σας'],
    ['@EXIT', '@exit'],
    ['', ''],
  ])('%j → %j', (line, key) => {
    expect(lookupKey(line)).toBe(key);
  });

  it('does not normalise Unicode forms (the reference does not)', () => {
    expect(lookupKey('e\u0301')).not.toBe(lookupKey('\u00e9'));
  });

  it('knows which keys can never be stored', () => {
    expect(isStorableKey('@alice')).toBe(false);
    expect(isStorableKey('')).toBe(false);
    expect(isStorableKey('alice')).toBe(true);
  });
});

describe('answers', () => {
  it('are the exact wire bytes', () => {
    expect(String(encodeAnswer('alice.example.com', 6464))).toBe('alice.example.com:6464\r\n@');
    expect(String(NOT_FOUND)).toBe('null\r\n@');
    expect(String(PROMPT)).toBe('@');
  });
});

describe('MissWindow', () => {
  it('counts misses within the window and forgets older ones', () => {
    const window = new MissWindow(1000, 10);
    expect(window.record(0)).toBe(1);
    expect(window.record(500)).toBe(2);
    expect(window.record(1000)).toBe(2);
    expect(window.record(1400)).toBe(3);
    expect(window.record(5000)).toBe(1);
  });

  it('keeps no more than its cap', () => {
    const window = new MissWindow(60_000, 3);
    for (let i = 0; i < 1000; i++) window.record(i);
    expect(window.record(1000)).toBe(3);
  });
});
