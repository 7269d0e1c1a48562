import { NOT_FOUND } from './answer.js';
import { isStorableKey } from './atsign.js';
import type { AnswerCache, Resolution } from './cache.js';
import { cacheHits, cacheMisses, cacheStaleServed } from './metrics.js';
import type { DirectoryChange, RecordSource } from './record.js';

/** Keys that can never be stored, and reads that failed: both answer null. */
const NOT_STORABLE: Resolution = { answer: NOT_FOUND, result: 'not_found' };
const SOURCE_FAILED: Resolution = { answer: NOT_FOUND, result: 'error' };

interface Flight {
  readonly promise: Promise<Resolution>;
  /** The newest change announced for the key while the read was under way. */
  announced?: DirectoryChange;
}

/** Answers keys that have no local record, e.g. by asking upstream roots (src/upstream). */
export interface FallbackSource {
  resolve(key: string): Resolution | Promise<Resolution>;
}

export interface DirectoryResolverOptions {
  source: RecordSource;
  cache: AnswerCache;
  /** Called when the record source fails; the lookup still gets an answer. */
  onSourceError: (error: unknown, atsign: string) => void;
  /**
   * Asked only when the local answer is "no record": a local record, active or suspended, always
   * wins, and one created later takes over at once because the local cache is consulted first.
   */
  fallback?: FallbackSource;
}

/**
 * Answers lookup keys: from the cache when it can, from the record source otherwise, one read per
 * key however many clients ask at once. It also applies announced changes, so the cache follows
 * every write to the database.
 */
export class DirectoryResolver {
  private readonly source: RecordSource;
  private readonly cache: AnswerCache;
  private readonly onSourceError: DirectoryResolverOptions['onSourceError'];
  private readonly fallback: FallbackSource | undefined;
  private readonly inFlight = new Map<string, Flight>();

  constructor(options: DirectoryResolverOptions) {
    this.source = options.source;
    this.cache = options.cache;
    this.onSourceError = options.onSourceError;
    this.fallback = options.fallback;
  }

  /**
   * The answer for a key: the cache entry itself on a hit (the hot path allocates nothing), or a
   * promise when the database must be asked. A stale entry within the stale bound is answered at
   * once and refreshed in the background (CoreDNS's serve_stale), so an unreachable database does
   * not stall clients whose answers are cached.
   */
  resolve(key: string): Resolution | Promise<Resolution> {
    if (!isStorableKey(key)) return NOT_STORABLE;
    const entry = this.cache.get(key);
    if (entry) {
      if (this.cache.isFresh(entry)) {
        cacheHits.inc();
        return entry.result === 'not_found' && this.fallback !== undefined ? this.fallback.resolve(key) : entry;
      }
      if (this.cache.isServable(entry)) {
        cacheStaleServed.inc();
        void this.read(key);
        return entry.result === 'not_found' && this.fallback !== undefined ? this.fallback.resolve(key) : entry;
      }
    }
    cacheMisses.inc();
    const fallback = this.fallback;
    if (fallback === undefined) return this.read(key);
    // A failed read is not "no record": the key might be suspended here, so it is not forwarded.
    return this.read(key).then((resolution) => (resolution.result === 'not_found' ? fallback.resolve(key) : resolution));
  }

  /**
   * Applies an announced change. Cached keys are updated in place; a key being read right now
   * remembers the change, so the read's older result cannot overwrite it; other keys are left
   * alone, since the database already holds what their first lookup will read.
   */
  applyChange(change: DirectoryChange): void {
    const flight = this.inFlight.get(change.atsign);
    if (flight && (!flight.announced || flight.announced.version < change.version)) {
      flight.announced = change;
    }
    const cached = this.cache.peek(change.atsign);
    if (cached && cached.version < change.version) {
      this.cache.offer(change.atsign, change.record, change.version);
    }
  }

  /** Forgets everything: used when the process cannot prove it saw every change. */
  clear(): void {
    this.cache.clear();
  }

  private read(key: string): Promise<Resolution> {
    const existing = this.inFlight.get(key);
    if (existing) return existing.promise;
    const flight: Flight = {
      promise: this.source.findRecord(key).then(
        (record) => {
          this.inFlight.delete(key);
          const announced = flight.announced;
          if (announced && announced.version > (record?.version ?? 0)) {
            return this.cache.offer(key, announced.record, announced.version);
          }
          return this.cache.offer(key, record, record?.version ?? 0);
        },
        (error: unknown) => {
          this.inFlight.delete(key);
          this.onSourceError(error, key);
          // Not cached as a miss: the atsign must resolve as soon as the database is back.
          return SOURCE_FAILED;
        },
      ),
    };
    this.inFlight.set(key, flight);
    return flight.promise;
  }
}
