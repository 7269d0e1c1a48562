import { LRUCache } from 'lru-cache';
import { AnswerBuffer, NOT_FOUND, encodeAnswer } from './answer.js';
import { cacheEvictions, cacheSizes } from './metrics.js';
import type { DirectoryRecord } from './record.js';

/** What a lookup produced: the bytes to send and, for metrics, why. */
export interface Resolution {
  /** The bytes to send, prompt included. */
  readonly answer: Buffer;
  readonly result: 'found' | 'suspended' | 'not_found' | 'error';
}

export interface CacheEntry extends Resolution {
  /** Version of the record (or deletion) this entry reflects; 0 when no record was ever seen. */
  readonly version: number;
  readonly result: 'found' | 'suspended' | 'not_found';
  /** When the entry goes stale: milliseconds after the cache's `epoch` (see AnswerCache). */
  readonly expiry: number;
}

/**
 * An active record's entry is its answer: a Buffer of `host:port\r\n@` that also carries the
 * version and expiry. As separate objects, the entry and its Buffer took 168 bytes of heap per
 * cached atsign; as one, 112 (docs/benchmarks.md, Memory).
 */
class FoundEntry extends AnswerBuffer implements CacheEntry {
  version = 0;
  expiry = 0;

  get answer(): Buffer {
    return this as unknown as Buffer;
  }

  get result(): 'found' {
    return 'found';
  }
}

/** A suspended or absent record's entry: the shared `null` answer. */
class NullEntry implements CacheEntry {
  constructor(
    readonly result: 'suspended' | 'not_found',
    readonly version: number,
    readonly expiry: number,
  ) {}

  get answer(): Buffer {
    return NOT_FOUND;
  }
}

type Entry = FoundEntry | NullEntry;

/**
 * The number as V8's small integer when it is one. Arithmetic on timestamps yields heap numbers even
 * when the result is a small integer, and a single one stored in a field makes V8 box that field in
 * every entry (16 bytes each).
 */
const small = (n: number): number => (n === (n | 0) ? n | 0 : n);

export interface AnswerCacheOptions {
  /** Capacity of the positive cache: atsigns that have a record, active or suspended. */
  maxEntries: number;
  /** Capacity of the negative cache: atsigns with no record. Separate, so misses cannot evict hits. */
  negativeMaxEntries: number;
  /** Milliseconds a positive entry is fresh. */
  ttl: number;
  /** Milliseconds a negative entry is fresh. */
  negativeTtl: number;
  /** Milliseconds past expiry during which an entry may still be served (see DirectoryResolver). */
  maxStale: number;
  /** Clock, replaceable in unit tests. */
  now?: () => number;
}

/**
 * Two LRU caches of ready answers, in the manner of CoreDNS's success and denial caches. Every
 * write goes through `offer`, which never lets an older version replace a newer one: that single
 * rule is what keeps a slow database read from undoing a change that was already announced.
 */
export class AnswerCache {
  private readonly positive: LRUCache<string, Entry>;
  private readonly negative: LRUCache<string, Entry>;
  private readonly now: () => number;
  /**
   * Expiry times count from here rather than from 1970 so that they fit V8's small integers
   * (31 bits and a sign: 24 days) and are stored inside the entry; a timestamp would be a separate
   * 16-byte heap number per entry. A process up for longer than that only pays those bytes again.
   */
  private readonly epoch: number;

  constructor(private readonly options: AnswerCacheOptions) {
    const positiveEvictions = cacheEvictions.labels('positive');
    const negativeEvictions = cacheEvictions.labels('negative');
    this.positive = new LRUCache({ max: options.maxEntries, dispose: (_entry, _key, reason) => reason === 'evict' && positiveEvictions.inc() });
    this.negative = new LRUCache({ max: options.negativeMaxEntries, dispose: (_entry, _key, reason) => reason === 'evict' && negativeEvictions.inc() });
    this.now = options.now ?? Date.now;
    this.epoch = this.now();
    cacheSizes.add(this);
  }

  /** Stops reporting this cache's size (the process that used it has stopped). */
  release(): void {
    cacheSizes.delete(this);
  }

  /** The entry for a key, fresh or stale, marking it recently used. */
  get(key: string): CacheEntry | undefined {
    return this.positive.get(key) ?? this.negative.get(key);
  }

  /** The entry for a key without touching its recency. */
  peek(key: string): CacheEntry | undefined {
    return this.positive.peek(key) ?? this.negative.peek(key);
  }

  isFresh(entry: CacheEntry): boolean {
    return this.now() - this.epoch < entry.expiry;
  }

  isServable(entry: CacheEntry): boolean {
    return this.now() - this.epoch < entry.expiry + this.options.maxStale;
  }

  /**
   * Caches what the database said about `key` at `version` (a missing record at version 0 means
   * "none seen"), unless a newer version is already cached. Returns the entry now in force.
   */
  offer(key: string, record: DirectoryRecord | null, version: number): CacheEntry {
    const current = this.peek(key);
    if (current && current.version > version) return current;
    if (current && current.version === version && this.isFresh(current)) return current;
    const entry = this.entryFor(record, version);
    if (record) {
      this.negative.delete(key);
      this.positive.set(key, entry);
    } else {
      this.positive.delete(key);
      this.negative.set(key, entry);
    }
    return entry;
  }

  /** Drops a key whatever its version. */
  delete(key: string): void {
    this.positive.delete(key);
    this.negative.delete(key);
  }

  clear(): void {
    this.positive.clear();
    this.negative.clear();
  }

  get size(): { positive: number; negative: number } {
    return { positive: this.positive.size, negative: this.negative.size };
  }

  private entryFor(record: DirectoryRecord | null, version: number): Entry {
    const age = this.now() - this.epoch;
    if (!record) return new NullEntry('not_found', small(version), small(age + this.options.negativeTtl));
    if (record.status !== 'active') return new NullEntry('suspended', small(version), small(age + this.options.ttl));
    const entry = encodeAnswer(record.host, record.port, FoundEntry);
    entry.version = small(version);
    entry.expiry = small(age + this.options.ttl);
    return entry;
  }
}

