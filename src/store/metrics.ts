import type pg from 'pg';
import { Counter, Gauge, Histogram } from 'prom-client';
import { registry } from '../ops/registry.js';

export const queryDuration = new Histogram({
  name: 'atdirectory_db_query_duration_seconds',
  help: 'Database query time, by query.',
  labelNames: ['query'] as const,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [registry],
});

export const dbErrors = new Counter({
  name: 'atdirectory_db_errors_total',
  help: 'Failed database queries and connections.',
  registers: [registry],
});

const pools = new Map<pg.Pool, string>();

/** Reports a pool's sizes until it is ended. */
export function trackPool(name: string, pool: pg.Pool): void {
  pools.set(pool, name);
}

function livePools(): Array<[pg.Pool, string]> {
  for (const pool of pools.keys()) if (pool.ending) pools.delete(pool);
  return [...pools];
}

// Pool sizes are read at scrape time, summed per pool name.
new Gauge({
  name: 'atdirectory_db_pool_connections',
  help: 'Connections in the pools, by state (idle, active) and pool (lookup, admin).',
  labelNames: ['state', 'pool'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [pool, name] of livePools()) {
      this.inc({ state: 'idle', pool: name }, pool.idleCount);
      this.inc({ state: 'active', pool: name }, pool.totalCount - pool.idleCount);
    }
  },
});

new Gauge({
  name: 'atdirectory_db_pool_waiting',
  help: 'Queries waiting for a pooled connection, by pool.',
  labelNames: ['pool'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [pool, name] of livePools()) this.inc({ pool: name }, pool.waitingCount);
  },
});

export const changesApplied = new Counter({
  name: 'atdirectory_changes_applied_total',
  help: 'Change notifications (and catch-up entries) applied to this process\'s cache.',
  registers: [registry],
});

export const listenerConnected = new Gauge({
  name: 'atdirectory_change_listener_connected',
  help: '1 while the change listener is connected and caught up; 0 while it is reconnecting.',
  registers: [registry],
});

export const changePropagation = new Histogram({
  name: 'atdirectory_change_propagation_seconds',
  help: 'From a change being written in the database to its notification being applied here.',
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  registers: [registry],
});

export const listenerReconnects = new Counter({
  name: 'atdirectory_change_listener_reconnects_total',
  help: 'Times the change listener lost its connection and connected again.',
  registers: [registry],
});
