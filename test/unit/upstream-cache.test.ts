import { describe, expect, it } from 'vitest';
import { NOT_FOUND, encodeAnswer } from '../../src/directory/answer.js';
import { UpstreamCache } from '../../src/upstream/cache.js';

function setup(maxEntries = 10) {
  let now = 1_000_000;
  const cache = new UpstreamCache({ maxEntries, ttl: 1000, negativeTtl: 100, maxStale: 5000, now: () => now });
  return { cache, advance: (ms: number) => (now += ms) };
}

const found = (host: string) => ({ kind: 'found' as const, answer: encodeAnswer(host, 64) });
const notFound = { kind: 'not_found' as const };

describe('UpstreamCache', () => {
  it('stores answers as ready resolutions: host:port found, null not_found with the shared NOT_FOUND bytes', () => {
    const { cache } = setup();
    expect(cache.store('alice', found('a.example'))).toMatchObject({ result: 'found' });
    expect(String(cache.get('alice')!.answer)).toBe('a.example:64\r\n@');
    expect(cache.store('nobody', notFound).answer).toBe(NOT_FOUND);
    expect(cache.get('nobody')).toMatchObject({ result: 'not_found' });
  });

  it('keeps positive answers fresh for the TTL and negative ones for the negative TTL', () => {
    const { cache, advance } = setup();
    const positive = cache.store('alice', found('a.example'));
    const negative = cache.store('nobody', notFound);
    advance(99);
    expect([cache.isFresh(positive), cache.isFresh(negative)]).toEqual([true, true]);
    advance(1);
    expect([cache.isFresh(positive), cache.isFresh(negative)]).toEqual([true, false]);
    advance(900);
    expect(cache.isFresh(positive)).toBe(false);
  });

  it('serves an expired answer only within the stale bound', () => {
    const { cache, advance } = setup();
    const entry = cache.store('alice', found('a.example'));
    advance(1000 + 4999);
    expect(cache.isServable(entry)).toBe(true);
    advance(1);
    expect(cache.isServable(entry)).toBe(false);
  });

  it('counts positive and negative entries through replacement and eviction', () => {
    const { cache } = setup(3);
    cache.store('a', notFound);
    cache.store('b', notFound);
    expect(cache.size).toEqual({ positive: 0, negative: 2 });
    cache.store('a', found('a.example'));
    expect(cache.size).toEqual({ positive: 1, negative: 1 });
    cache.store('c', notFound);
    cache.store('d', found('d.example'));
    // "b", the least recently used, was evicted.
    expect(cache.get('b')).toBeUndefined();
    expect(cache.size).toEqual({ positive: 2, negative: 1 });
    cache.store('d', notFound);
    expect(cache.size).toEqual({ positive: 1, negative: 2 });
  });
});
