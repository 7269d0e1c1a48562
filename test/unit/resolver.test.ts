import { describe, expect, it } from 'vitest';
import { NOT_FOUND } from '../../src/directory/answer.js';
import { AnswerCache, type Resolution } from '../../src/directory/cache.js';
import type { DirectoryChange, DirectoryRecord, RecordSource } from '../../src/directory/record.js';
import { DirectoryResolver } from '../../src/directory/resolver.js';

/** A record source whose reads the test completes by hand, to stage races exactly. */
class ManualSource implements RecordSource {
  readonly pending: Array<{ atsign: string; resolve: (record: DirectoryRecord | null) => void; reject: (error: Error) => void }> = [];
  findRecord(atsign: string): Promise<DirectoryRecord | null> {
    return new Promise((resolve, reject) => this.pending.push({ atsign, resolve, reject }));
  }
}

function setup(options: Partial<{ ttl: number; negativeTtl: number; maxStale: number }> = {}) {
  let now = 1_000_000;
  const cache = new AnswerCache({
    maxEntries: 10,
    negativeMaxEntries: 10,
    ttl: options.ttl ?? 1000,
    negativeTtl: options.negativeTtl ?? 100,
    maxStale: options.maxStale ?? 5000,
    now: () => now,
  });
  const source = new ManualSource();
  const errors: unknown[] = [];
  const resolver = new DirectoryResolver({ source, cache, onSourceError: (error) => errors.push(error) });
  return { resolver, source, cache, errors, advance: (ms: number) => (now += ms) };
}

const record = (atsign: string, host: string, port: number, version: number, status: DirectoryRecord['status'] = 'active'): DirectoryRecord => ({
  atsign,
  host,
  port,
  status,
  version,
});
const change = (atsign: string, version: number, next: DirectoryRecord | null): DirectoryChange => ({ atsign, version, record: next, changedAt: 0 });
const text = (resolution: Resolution | Promise<Resolution>) =>
  resolution instanceof Promise ? resolution.then((resolved) => String(resolved.answer)) : String(resolution.answer);
const now = (resolution: Resolution | Promise<Resolution>): Resolution => {
  expect(resolution).not.toBeInstanceOf(Promise);
  return resolution as Resolution;
};

describe('DirectoryResolver', () => {
  it('answers from the cache synchronously after the first read', async () => {
    const { resolver, source } = setup();
    const first = resolver.resolve('alice');
    source.pending[0]!.resolve(record('alice', 'a.example', 1, 1));
    expect(await text(first)).toBe('a.example:1\r\n@');
    expect(now(resolver.resolve('alice'))).toMatchObject({ result: 'found' });
    expect(String(now(resolver.resolve('alice')).answer)).toBe('a.example:1\r\n@');
  });

  it('shares one read among concurrent misses of a key', async () => {
    const { resolver, source } = setup();
    const answers = Array.from({ length: 50 }, () => resolver.resolve('alice'));
    expect(source.pending).toHaveLength(1);
    source.pending[0]!.resolve(record('alice', 'a.example', 1, 1));
    expect(new Set(await Promise.all(answers.map(text)))).toEqual(new Set(['a.example:1\r\n@']));
  });

  it('never asks the source for keys that cannot be stored', () => {
    const { resolver, source } = setup();
    expect(now(resolver.resolve('@alice'))).toEqual({ answer: NOT_FOUND, result: 'not_found' });
    expect(now(resolver.resolve(''))).toEqual({ answer: NOT_FOUND, result: 'not_found' });
    expect(source.pending).toHaveLength(0);
  });

  it('answers null for a suspended record and caches it with its version', async () => {
    const { resolver, source, cache } = setup();
    const answer = resolver.resolve('mallory');
    source.pending[0]!.resolve(record('mallory', 'm.example', 1, 7, 'suspended'));
    expect(await answer).toMatchObject({ answer: NOT_FOUND, result: 'suspended' });
    expect(cache.peek('mallory')).toMatchObject({ version: 7, result: 'suspended' });
  });

  it('applies a newer change to a cached key, and ignores an older one', async () => {
    const { resolver, source } = setup();
    const first = resolver.resolve('alice');
    source.pending[0]!.resolve(record('alice', 'a.example', 1, 5));
    await first;
    resolver.applyChange(change('alice', 6, record('alice', 'b.example', 2, 6)));
    expect(String(now(resolver.resolve('alice')).answer)).toBe('b.example:2\r\n@');
    resolver.applyChange(change('alice', 4, record('alice', 'old.example', 3, 4)));
    expect(String(now(resolver.resolve('alice')).answer)).toBe('b.example:2\r\n@');
    resolver.applyChange(change('alice', 8, null));
    expect(now(resolver.resolve('alice'))).toMatchObject({ answer: NOT_FOUND, result: 'not_found' });
  });

  it('replaces a cached miss as soon as the record is created', async () => {
    const { resolver, source } = setup();
    const first = resolver.resolve('bob');
    source.pending[0]!.resolve(null);
    expect(await first).toMatchObject({ answer: NOT_FOUND, result: 'not_found' });
    resolver.applyChange(change('bob', 3, record('bob', 'b.example', 1, 3)));
    expect(String(now(resolver.resolve('bob')).answer)).toBe('b.example:1\r\n@');
  });

  it('does not let a read that started before a change overwrite it', async () => {
    const { resolver, source } = setup();
    const answer = resolver.resolve('alice');
    resolver.applyChange(change('alice', 9, record('alice', 'new.example', 2, 9)));
    source.pending[0]!.resolve(record('alice', 'old.example', 1, 8));
    expect(await text(answer)).toBe('new.example:2\r\n@');
    expect(String(now(resolver.resolve('alice')).answer)).toBe('new.example:2\r\n@');
  });

  it('does not let a read that missed a creation cache the miss', async () => {
    const { resolver, source } = setup();
    const answer = resolver.resolve('carol');
    resolver.applyChange(change('carol', 2, record('carol', 'c.example', 1, 2)));
    source.pending[0]!.resolve(null);
    expect(await text(answer)).toBe('c.example:1\r\n@');
  });

  it('leaves keys it has never cached alone when a change arrives', () => {
    const { resolver, cache } = setup();
    resolver.applyChange(change('dave', 2, record('dave', 'd.example', 1, 2)));
    expect(cache.peek('dave')).toBeUndefined();
  });

  it('serves a stale entry at once and refreshes it in the background, once', async () => {
    const { resolver, source, advance } = setup({ ttl: 1000, maxStale: 5000 });
    const first = resolver.resolve('alice');
    source.pending[0]!.resolve(record('alice', 'a.example', 1, 1));
    await first;
    advance(2000);
    expect(String(now(resolver.resolve('alice')).answer)).toBe('a.example:1\r\n@');
    expect(String(now(resolver.resolve('alice')).answer)).toBe('a.example:1\r\n@');
    expect(source.pending).toHaveLength(2);
    source.pending[1]!.resolve(record('alice', 'a2.example', 1, 2));
    await new Promise((resolve) => setImmediate(resolve));
    expect(String(now(resolver.resolve('alice')).answer)).toBe('a2.example:1\r\n@');
  });

  it('keeps serving a stale entry while the source fails, within the stale bound only', async () => {
    const { resolver, source, advance, errors } = setup({ ttl: 1000, maxStale: 5000 });
    const first = resolver.resolve('alice');
    source.pending[0]!.resolve(record('alice', 'a.example', 1, 1));
    await first;
    advance(3000);
    expect(String(now(resolver.resolve('alice')).answer)).toBe('a.example:1\r\n@');
    source.pending[1]!.reject(new Error('connection refused'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(errors).toHaveLength(1);
    expect(String(now(resolver.resolve('alice')).answer)).toBe('a.example:1\r\n@');
    advance(5000);
    const beyond = resolver.resolve('alice');
    expect(beyond).toBeInstanceOf(Promise);
    source.pending.at(-1)!.reject(new Error('connection refused'));
    expect(await beyond).toEqual({ answer: NOT_FOUND, result: 'error' });
  });

  it('does not cache a miss caused by a failing source', async () => {
    const { resolver, source, cache } = setup();
    const answer = resolver.resolve('erin');
    source.pending[0]!.reject(new Error('connection refused'));
    expect(await answer).toEqual({ answer: NOT_FOUND, result: 'error' });
    expect(cache.peek('erin')).toBeUndefined();
    const retry = resolver.resolve('erin');
    source.pending[1]!.resolve(record('erin', 'e.example', 1, 1));
    expect(await text(retry)).toBe('e.example:1\r\n@');
  });

  it('forgets everything on clear', async () => {
    const { resolver, source, cache } = setup();
    const first = resolver.resolve('alice');
    source.pending[0]!.resolve(record('alice', 'a.example', 1, 1));
    await first;
    resolver.clear();
    expect(cache.size).toEqual({ positive: 0, negative: 0 });
  });
});
