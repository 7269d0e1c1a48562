import { LRUCache } from 'lru-cache';
import { NOT_FOUND } from '../directory/answer.js';
import type { Resolution } from '../directory/cache.js';
import { upstreamCacheSizes } from './metrics.js';
import type { UpstreamReply } from './reply.js';

/** An upstream answer as served: the entry itself is the lookup's resolution, so a hit allocates nothing. */
export interface UpstreamEntry extends Resolution {
  readonly result: 'found' | 'not_found';
  /** Milliseconds timestamp after which the upstream is asked again. */
  readonly expiresAt: number;
}

export interface UpstreamCacheOptions {
  /** Capacity, positive and negative entries together. */
  maxEntries: number;
  /** Milliseconds a `host:port` answer is fresh. */
  ttl: number;
  /** Milliseconds a `null` answer is fresh. */
  negativeTtl: number;
  /** Milliseconds past expiry during which an answer may be served while every upstream fails. */
  maxStale: number;
  /** Clock, replaceable in unit tests. */
  now?: () => number;
}

/**
 * Answers from upstream roots, kept apart from the local cache: no notification ever announces an
 * upstream change, so these entries live by TTL alone, and filling this cache with forwarded
 * misses cannot evict a local answer.
 */
export class UpstreamCache {
  private readonly entries: LRUCache<string, UpstreamEntry>;
  private readonly now: () => number;
  private negatives = 0;

  constructor(private readonly options: UpstreamCacheOptions) {
    this.now = options.now ?? Date.now;
    this.entries = new LRUCache({
      max: options.maxEntries,
      dispose: (entry) => {
        if (entry.result === 'not_found') this.negatives--;
      },
    });
    upstreamCacheSizes.add(this);
  }

  /** Stops reporting this cache's size (the process that used it has stopped). */
  release(): void {
    upstreamCacheSizes.delete(this);
  }

  /** The entry for a key, fresh or stale, marking it recently used. */
  get(key: string): UpstreamEntry | undefined {
    return this.entries.get(key);
  }

  isFresh(entry: UpstreamEntry): boolean {
    return this.now() < entry.expiresAt;
  }

  isServable(entry: UpstreamEntry): boolean {
    return this.now() < entry.expiresAt + this.options.maxStale;
  }

  /** Caches an upstream's reply and returns the entry, ready to serve. */
  store(key: string, reply: Exclude<UpstreamReply, { kind: 'bad' }>): UpstreamEntry {
    const entry: UpstreamEntry =
      reply.kind === 'found'
        ? { answer: reply.answer, result: 'found', expiresAt: this.now() + this.options.ttl }
        : { answer: NOT_FOUND, result: 'not_found', expiresAt: this.now() + this.options.negativeTtl };
    this.entries.set(key, entry);
    if (entry.result === 'not_found') this.negatives++;
    return entry;
  }

  get size(): { positive: number; negative: number } {
    return { positive: this.entries.size - this.negatives, negative: this.negatives };
  }
}
