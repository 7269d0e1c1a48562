import { describe, expect, it } from 'vitest';
import { NOT_FOUND, encodeAnswer } from '../../src/directory/answer.js';
import { AnswerCache, type Resolution } from '../../src/directory/cache.js';
import type { DirectoryRecord, RecordSource } from '../../src/directory/record.js';
import { DirectoryResolver, type FallbackSource } from '../../src/directory/resolver.js';

/** Records the test holds in a map; `failing` makes every read fail. */
class MapSource implements RecordSource {
  readonly records = new Map<string, DirectoryRecord>();
  failing = false;
  async findRecord(atsign: string): Promise<DirectoryRecord | null> {
    if (this.failing) throw new Error('database unavailable');
    return this.records.get(atsign) ?? null;
  }
}

/** Answers every key it is asked with one fixed resolution, synchronously, and remembers the keys. */
class RecordingFallback implements FallbackSource {
  readonly asked: string[] = [];
  readonly answer: Resolution = { answer: encodeAnswer('upstream.example', 64), result: 'found' };
  resolve(key: string): Resolution {
    this.asked.push(key);
    return this.answer;
  }
}

function setup() {
  const cache = new AnswerCache({ maxEntries: 10, negativeMaxEntries: 10, ttl: 60_000, negativeTtl: 60_000, maxStale: 60_000 });
  const source = new MapSource();
  const fallback = new RecordingFallback();
  const resolver = new DirectoryResolver({ source, cache, onSourceError: () => undefined, fallback });
  return { resolver, source, fallback };
}

const record = (atsign: string, host: string, version: number, status: DirectoryRecord['status'] = 'active'): DirectoryRecord => ({
  atsign,
  host,
  port: 64,
  status,
  version,
});

describe('DirectoryResolver with a fallback', () => {
  it('answers local records, active or suspended, without asking the fallback', async () => {
    const { resolver, source, fallback } = setup();
    source.records.set('alice', record('alice', 'alice.local', 1));
    source.records.set('mallory', record('mallory', 'mallory.local', 2, 'suspended'));
    expect(String((await resolver.resolve('alice')).answer)).toBe('alice.local:64\r\n@');
    expect((await resolver.resolve('mallory')).answer).toBe(NOT_FOUND);
    expect((await resolver.resolve('mallory')).answer).toBe(NOT_FOUND);
    expect(fallback.asked).toEqual([]);
  });

  it('asks the fallback for a key with no local record, after the read and then from the cached miss', async () => {
    const { resolver, fallback } = setup();
    expect(await resolver.resolve('bob')).toBe(fallback.answer);
    // The local miss is cached; the fallback's synchronous answer passes straight through.
    expect(resolver.resolve('bob')).toBe(fallback.answer);
    expect(fallback.asked).toEqual(['bob', 'bob']);
  });

  it('never forwards keys that cannot be stored', () => {
    const { resolver, fallback } = setup();
    expect(resolver.resolve('@bob')).toMatchObject({ answer: NOT_FOUND, result: 'not_found' });
    expect(fallback.asked).toEqual([]);
  });

  it('does not forward when the database cannot be read: the key might be suspended here', async () => {
    const { resolver, source, fallback } = setup();
    source.failing = true;
    expect(await resolver.resolve('bob')).toMatchObject({ answer: NOT_FOUND, result: 'error' });
    expect(fallback.asked).toEqual([]);
  });

  it('lets a record created locally take over from the fallback at once', async () => {
    const { resolver, fallback } = setup();
    await resolver.resolve('bob');
    resolver.applyChange({ atsign: 'bob', version: 7, record: record('bob', 'bob.local', 7), changedAt: 0 });
    expect(String((resolver.resolve('bob') as Resolution).answer)).toBe('bob.local:64\r\n@');
    expect(fallback.asked).toEqual(['bob']);
  });

  it('forwards again once the local record is deleted', async () => {
    const { resolver, source, fallback } = setup();
    source.records.set('bob', record('bob', 'bob.local', 1));
    await resolver.resolve('bob');
    resolver.applyChange({ atsign: 'bob', version: 2, record: null, changedAt: 0 });
    expect(resolver.resolve('bob')).toBe(fallback.answer);
  });
});
