import { describe, expect, it } from 'vitest';
import { NOT_FOUND } from '../../src/directory/answer.js';
import { AnswerCache } from '../../src/directory/cache.js';
import type { DirectoryRecord } from '../../src/directory/record.js';

function setup(options: Partial<{ maxEntries: number; negativeMaxEntries: number; ttl: number; negativeTtl: number; maxStale: number; start: number }> = {}) {
  let now = options.start ?? 1_000_000;
  const cache = new AnswerCache({
    maxEntries: options.maxEntries ?? 10,
    negativeMaxEntries: options.negativeMaxEntries ?? 10,
    ttl: options.ttl ?? 1000,
    negativeTtl: options.negativeTtl ?? 100,
    maxStale: options.maxStale ?? 5000,
    now: () => now,
  });
  return { cache, advance: (ms: number) => (now += ms) };
}

const record = (host: string, port: number, version: number, status: DirectoryRecord['status'] = 'active'): DirectoryRecord => ({
  atsign: 'alice',
  host,
  port,
  status,
  version,
});

describe('AnswerCache entries', () => {
  it('are, for an active record, the ready answer itself: a Buffer of the wire bytes', () => {
    const { cache } = setup();
    const entry = cache.offer('alice', record('a.example', 6464, 3), 3);
    expect(Buffer.isBuffer(entry.answer)).toBe(true);
    expect(entry.answer.toString()).toBe('a.example:6464\r\n@');
    expect(entry.answer.length).toBe('a.example:6464\r\n@'.length);
    expect(entry.result).toBe('found');
    expect(entry.version).toBe(3);
    // A hit allocates nothing: the same object every time, its answer the same Buffer.
    expect(cache.get('alice')).toBe(entry);
    expect(cache.get('alice')!.answer).toBe(entry.answer);
  });

  it('answer the shared null for a suspended or absent record', () => {
    const { cache } = setup();
    const suspended = cache.offer('mallory', record('m.example', 1, 4, 'suspended'), 4);
    const absent = cache.offer('nobody', null, 0);
    expect(suspended).toMatchObject({ result: 'suspended', version: 4 });
    expect(absent).toMatchObject({ result: 'not_found', version: 0 });
    expect(suspended.answer).toBe(NOT_FOUND);
    expect(absent.answer).toBe(NOT_FOUND);
  });

  it('keep answers apart when many are packed into one slab', () => {
    const { cache } = setup({ maxEntries: 5000 });
    for (let i = 0; i < 5000; i++) cache.offer(`user${i}`, record(`host${i}.example.com`, i + 1, i + 1), i + 1);
    for (const i of [0, 1, 2047, 2048, 4999]) expect(cache.get(`user${i}`)!.answer.toString()).toBe(`host${i}.example.com:${i + 1}\r\n@`);
  });

  it('keep expiry times small integers even with a wall-clock timestamp', () => {
    const { cache, advance } = setup({ start: Date.now(), ttl: 600_000 });
    advance(3_600_000);
    const entry = cache.offer('alice', record('a.example', 1, 1), 1);
    expect(Number.isInteger(entry.expiry)).toBe(true);
    expect(entry.expiry).toBeLessThan(2 ** 31);
  });
});

describe('AnswerCache.offer', () => {
  it('never lets an older version replace a newer one', () => {
    const { cache } = setup();
    cache.offer('alice', record('new.example', 2, 5), 5);
    const kept = cache.offer('alice', record('old.example', 1, 4), 4);
    expect(kept.version).toBe(5);
    expect(cache.peek('alice')!.answer.toString()).toBe('new.example:2\r\n@');
    // Nor an older deletion, nor an absence read before the record existed.
    cache.offer('alice', null, 3);
    cache.offer('alice', null, 0);
    expect(cache.peek('alice')).toMatchObject({ result: 'found', version: 5 });
  });

  it('keeps a fresh entry of the same version, and replaces a stale one (a refresh)', () => {
    const { cache, advance } = setup({ ttl: 1000 });
    const first = cache.offer('alice', record('a.example', 1, 7), 7);
    expect(cache.offer('alice', record('a.example', 1, 7), 7)).toBe(first);
    advance(1000);
    const refreshed = cache.offer('alice', record('a.example', 1, 7), 7);
    expect(refreshed).not.toBe(first);
    expect(cache.isFresh(refreshed)).toBe(true);
  });

  it('moves a key between the positive and negative caches as its record comes and goes', () => {
    const { cache } = setup();
    cache.offer('alice', null, 0);
    expect(cache.size).toEqual({ positive: 0, negative: 1 });
    cache.offer('alice', record('a.example', 1, 1), 1);
    expect(cache.size).toEqual({ positive: 1, negative: 0 });
    cache.offer('alice', null, 2);
    expect(cache.size).toEqual({ positive: 0, negative: 1 });
    expect(cache.peek('alice')).toMatchObject({ result: 'not_found', version: 2 });
  });

  it('lets misses evict only misses', () => {
    const { cache } = setup({ maxEntries: 2, negativeMaxEntries: 2 });
    cache.offer('alice', record('a.example', 1, 1), 1);
    cache.offer('bob', record('b.example', 2, 2), 2);
    for (let i = 0; i < 10; i++) cache.offer(`nobody${i}`, null, 0);
    expect(cache.size).toEqual({ positive: 2, negative: 2 });
    expect(cache.peek('alice')?.result).toBe('found');
    expect(cache.peek('nobody0')).toBeUndefined();
    expect(cache.peek('nobody9')?.result).toBe('not_found');
  });
});

describe('AnswerCache freshness', () => {
  it('is fresh for the TTL, then servable for the stale bound, then neither', () => {
    const { cache, advance } = setup({ ttl: 1000, maxStale: 5000 });
    const entry = cache.offer('alice', record('a.example', 1, 1), 1);
    advance(999);
    expect(cache.isFresh(entry)).toBe(true);
    advance(1);
    expect(cache.isFresh(entry)).toBe(false);
    expect(cache.isServable(entry)).toBe(true);
    advance(4999);
    expect(cache.isServable(entry)).toBe(true);
    advance(1);
    expect(cache.isServable(entry)).toBe(false);
  });

  it('gives absent records the negative TTL and suspended ones the positive TTL', () => {
    const { cache, advance } = setup({ ttl: 1000, negativeTtl: 100 });
    const absent = cache.offer('nobody', null, 0);
    const suspended = cache.offer('mallory', record('m.example', 1, 1, 'suspended'), 1);
    advance(100);
    expect(cache.isFresh(absent)).toBe(false);
    expect(cache.isFresh(suspended)).toBe(true);
    advance(900);
    expect(cache.isFresh(suspended)).toBe(false);
  });

  it('treats a zero negative TTL as never fresh', () => {
    const { cache } = setup({ negativeTtl: 0 });
    expect(cache.isFresh(cache.offer('nobody', null, 0))).toBe(false);
  });
});

describe('AnswerCache.delete and clear', () => {
  it('drop keys whatever their version', () => {
    const { cache } = setup();
    cache.offer('alice', record('a.example', 1, 9), 9);
    cache.offer('nobody', null, 0);
    cache.delete('alice');
    expect(cache.peek('alice')).toBeUndefined();
    cache.offer('alice', record('old.example', 1, 1), 1);
    expect(cache.peek('alice')?.version).toBe(1);
    cache.clear();
    expect(cache.size).toEqual({ positive: 0, negative: 0 });
  });
});
