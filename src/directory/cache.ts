import { LRUCache } from 'lru-cache';
import { NOT_FOUND, encodeAnswer } from './answer.js';
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
  /** Milliseconds timestamp after which the entry is stale. */
  readonly expiresAt: number;
}

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
  private readonly positive: LRUCache<string, CacheEntry>;
  private readonly negative: LRUCache<string, CacheEntry>;
  private readonly now: () => number;

  constructor(private readonly options: AnswerCacheOptions) {
    const positiveEvictions = cacheEvictions.labels('positive');
    const negativeEvictions = cacheEvictions.labels('negative');
    this.positive = new LRUCache({ max: options.maxEntries, dispose: (_entry, _key, reason) => reason === 'evict' && positiveEvictions.inc() });
    this.negative = new LRUCache({ max: options.negativeMaxEntries, dispose: (_entry, _key, reason) => reason === 'evict' && negativeEvictions.inc() });
    this.now = options.now ?? Date.now;
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
    return this.now() < entry.expiresAt;
  }

  isServable(entry: CacheEntry): boolean {
    return this.now() < entry.expiresAt + this.options.maxStale;
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

  private entryFor(record: DirectoryRecord | null, version: number): CacheEntry {
    if (!record) {
      return { answer: NOT_FOUND, version, result: 'not_found', expiresAt: this.now() + this.options.negativeTtl };
    }
    const expiresAt = this.now() + this.options.ttl;
    if (record.status !== 'active') return { answer: NOT_FOUND, version, result: 'suspended', expiresAt };
    return { answer: encodeAnswer(record.host, record.port), version, result: 'found', expiresAt };
  }
}

