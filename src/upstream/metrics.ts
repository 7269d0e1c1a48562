import { Counter, Gauge, Histogram } from 'prom-client';
import { hotCounterFamily } from '../ops/hot-metrics.js';
import { registry } from '../ops/registry.js';

export type UpstreamQueryResult = 'found' | 'not_found' | 'error' | 'timeout' | 'bad_answer';
export const UPSTREAM_QUERY_RESULTS: readonly UpstreamQueryResult[] = ['found', 'not_found', 'error', 'timeout', 'bad_answer'];

export const upstreamQueries = new Counter({
  name: 'atdirectory_upstream_queries_total',
  help: 'Queries sent to an upstream root for atsigns with no local record, by upstream and result (loop probes excluded).',
  labelNames: ['upstream', 'result'] as const,
  registers: [registry],
});

export const upstreamQueryDuration = new Histogram({
  name: 'atdirectory_upstream_query_duration_seconds',
  help: 'Time from a query being handed to an upstream to its reply or failure.',
  labelNames: ['upstream'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});

/** What an upstream set reports at scrape time, per upstream. */
export interface UpstreamStatus {
  upstream: string;
  up: boolean;
  connections: number;
}

/** Upstream sets whose state is reported; each joins when started and leaves when stopped. */
export const upstreamStatuses = new Set<{ statuses(): Iterable<UpstreamStatus> }>();

function collectStatuses(combine: (status: UpstreamStatus, previous: number | undefined) => number): Map<string, number> {
  const values = new Map<string, number>();
  for (const set of upstreamStatuses) {
    for (const status of set.statuses()) values.set(status.upstream, combine(status, values.get(status.upstream)));
  }
  return values;
}

new Gauge({
  name: 'atdirectory_upstream_up',
  help: '1 while an upstream is in use, 0 while it is down (after three failures in a row) or refused (a loop).',
  labelNames: ['upstream'] as const,
  // Across workers: up only where every worker finds it up.
  aggregator: 'min',
  registers: [registry],
  collect() {
    this.reset();
    for (const [upstream, up] of collectStatuses((status, previous) => Math.min(previous ?? 1, status.up ? 1 : 0))) this.set({ upstream }, up);
  },
});

new Gauge({
  name: 'atdirectory_upstream_connections',
  help: 'Kept-open connections to an upstream with the prompt received.',
  labelNames: ['upstream'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [upstream, open] of collectStatuses((status, previous) => (previous ?? 0) + status.connections)) this.set({ upstream }, open);
  },
});

const rejected = new Counter({
  name: 'atdirectory_upstream_rejected_total',
  help: 'Upstream use refused: inflight (a lookup answered null because --upstream-max-inflight queries were running), loop (an upstream that leads back here).',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const upstreamRejectedBy = {
  inflight: rejected.labels('inflight'),
  loop: rejected.labels('loop'),
};

/** Caches whose sizes are reported; a cache joins when made and leaves when released. */
export const upstreamCacheSizes = new Set<{ readonly size: { positive: number; negative: number } }>();

new Gauge({
  name: 'atdirectory_upstream_cache_entries',
  help: 'Upstream answers cached: positive (host:port) and negative (null).',
  labelNames: ['kind'] as const,
  registers: [registry],
  collect() {
    let positive = 0;
    let negative = 0;
    for (const cache of upstreamCacheSizes) {
      positive += cache.size.positive;
      negative += cache.size.negative;
    }
    this.set({ kind: 'positive' }, positive);
    this.set({ kind: 'negative' }, negative);
  },
});

/** Per lookup, so allocation-free: an upstream cache hit is as cheap as a local one. */
export const upstreamCacheResults = hotCounterFamily<'hit' | 'stale' | 'miss'>({
  name: 'atdirectory_upstream_cache_results_total',
  help: 'Lookups of atsigns with no local record: hit (a fresh upstream answer), stale (an expired one, served while every upstream fails), miss (asked upstream, or refused at the in-flight bound).',
  labelName: 'result',
  labelValues: ['hit', 'stale', 'miss'],
  registers: [registry],
});
