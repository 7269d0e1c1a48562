import { NOT_FOUND } from '../directory/answer.js';
import type { Resolution } from '../directory/cache.js';
import type { FallbackSource } from '../directory/resolver.js';
import type { UpstreamCache, UpstreamEntry } from './cache.js';
import { loopAnswer, loopProbeKey } from './loop.js';
import { upstreamCacheResults, upstreamRejectedBy } from './metrics.js';
import type { ServableReply } from './upstreams.js';

/** What the forwarder needs of the upstream roots. */
export interface UpstreamQueries {
  query(key: string): Promise<ServableReply | undefined>;
  readonly allDown: boolean;
}

export interface UpstreamForwarderOptions {
  upstreams: UpstreamQueries;
  cache: UpstreamCache;
  /** Upstream queries in flight at most; beyond, a lookup that needs one answers null at once. */
  maxInflight: number;
  instanceId: string;
}

/** Every upstream failed, or too many queries were in flight: null, and nothing cached. */
const UNANSWERED: Resolution = { answer: NOT_FOUND, result: 'error' };
const NOT_FORWARDED: Resolution = { answer: NOT_FOUND, result: 'not_found' };

/**
 * Longest key forwarded, in UTF-16 units. The reference root closes the connection, unanswered, on
 * a longer line (protocol.md): forwarding one would let a client fail our upstream at will.
 */
export const LONGEST_FORWARDED_KEY = 255;

interface Flight {
  readonly promise: Promise<Resolution>;
  /** Lookups waiting on it, counted as misses or stale answers when it lands. */
  waiting: number;
}

/**
 * The resolver's fallback for atsigns with no local record: the upstream cache first, then one
 * upstream query per key however many lookups ask at once. While every upstream is down an expired
 * answer (within --cache-max-stale) is served at once; when a query fails it is served too, and
 * otherwise the lookup gets null. Our own loop probe is answered here, before anything is asked.
 */
export class UpstreamForwarder implements FallbackSource {
  private readonly upstreams: UpstreamQueries;
  private readonly cache: UpstreamCache;
  private readonly maxInflight: number;
  private readonly flights = new Map<string, Flight>();
  private readonly probeKey: string;
  private readonly probeAnswer: Resolution;

  constructor(options: UpstreamForwarderOptions) {
    this.upstreams = options.upstreams;
    this.cache = options.cache;
    this.maxInflight = options.maxInflight;
    this.probeKey = loopProbeKey(options.instanceId);
    this.probeAnswer = { answer: loopAnswer(options.instanceId), result: 'found' };
  }

  resolve(key: string): Resolution | Promise<Resolution> {
    if (key === this.probeKey) return this.probeAnswer;
    if (key.length > LONGEST_FORWARDED_KEY) return NOT_FORWARDED;
    const entry = this.cache.get(key);
    if (entry !== undefined) {
      if (this.cache.isFresh(entry)) {
        upstreamCacheResults.hit.inc();
        return entry;
      }
      if (this.upstreams.allDown && this.cache.isServable(entry)) {
        upstreamCacheResults.stale.inc();
        if (!this.flights.has(key) && this.flights.size < this.maxInflight) this.fly(key);
        return entry;
      }
    }
    let flight = this.flights.get(key);
    if (flight === undefined) {
      if (this.flights.size >= this.maxInflight) {
        upstreamCacheResults.miss.inc();
        upstreamRejectedBy.inflight.inc();
        return UNANSWERED;
      }
      flight = this.fly(key);
    }
    flight.waiting++;
    return flight.promise;
  }

  /** Upstream queries in flight now. */
  get inflight(): number {
    return this.flights.size;
  }

  private fly(key: string): Flight {
    const flight: Flight = {
      waiting: 0,
      promise: this.upstreams.query(key).then(
        (reply) => this.land(key, flight, reply),
        () => this.land(key, flight, undefined),
      ),
    };
    this.flights.set(key, flight);
    return flight;
  }

  private land(key: string, flight: Flight, reply: ServableReply | undefined): Resolution {
    this.flights.delete(key);
    if (reply !== undefined) {
      upstreamCacheResults.miss.count += flight.waiting;
      return this.cache.store(key, reply);
    }
    const stale: UpstreamEntry | undefined = this.cache.get(key);
    if (stale !== undefined && this.cache.isServable(stale)) {
      upstreamCacheResults.stale.count += flight.waiting;
      return stale;
    }
    upstreamCacheResults.miss.count += flight.waiting;
    return UNANSWERED;
  }
}
