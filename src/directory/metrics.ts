import { Counter, Gauge } from 'prom-client';
import { hotCounter } from '../ops/hot-metrics.js';
import { registry } from '../ops/registry.js';

export const cacheHits = hotCounter({
  name: 'atdirectory_cache_hits_total',
  help: 'Lookups answered from the cache with a fresh entry.',
  registers: [registry],
});

export const cacheMisses = hotCounter({
  name: 'atdirectory_cache_misses_total',
  help: 'Lookups that had to wait for the database (no entry, or one past the stale bound).',
  registers: [registry],
});

export const cacheStaleServed = hotCounter({
  name: 'atdirectory_cache_stale_served_total',
  help: 'Lookups answered from an expired entry (within --cache-max-stale) while it was refreshed.',
  registers: [registry],
});

export const cacheEvictions = new Counter({
  name: 'atdirectory_cache_evictions_total',
  help: 'Entries evicted because a cache was full, by cache.',
  labelNames: ['kind'] as const,
  registers: [registry],
});

/** Caches whose sizes are reported; a cache joins when made and leaves when its process stops. */
export const cacheSizes = new Set<{ readonly size: { positive: number; negative: number } }>();

new Gauge({
  name: 'atdirectory_cache_entries',
  help: 'Entries in the positive (has a record) and negative (no record) caches.',
  labelNames: ['kind'] as const,
  registers: [registry],
  // Read at scrape time: keeping a gauge current on every insert would tax the hot path.
  collect() {
    let positive = 0;
    let negative = 0;
    for (const cache of cacheSizes) {
      positive += cache.size.positive;
      negative += cache.size.negative;
    }
    this.set({ kind: 'positive' }, positive);
    this.set({ kind: 'negative' }, negative);
  },
});
