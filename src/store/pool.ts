import pg from 'pg';
import type { Logger } from 'pino';
import { dbErrors, trackPool } from './metrics.js';

// int8 columns (versions, transaction ids) arrive as strings; callers convert the ones they use.

export interface PoolOptions {
  connectionString: string;
  max: number;
  connectTimeoutMs: number;
  statementTimeoutMs: number;
  applicationName: string;
  logger: Logger;
}

/**
 * The query pool. Every query carries a server-side statement timeout and a client-side query
 * timeout of the same length, so a stalled database costs a bounded wait rather than a hung lookup.
 */
export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.connectionString,
    max: options.max,
    connectionTimeoutMillis: options.connectTimeoutMs,
    statement_timeout: options.statementTimeoutMs,
    query_timeout: options.statementTimeoutMs + 500,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: options.applicationName,
  });
  // An idle client whose connection breaks emits here; without a listener the process would exit.
  pool.on('error', (error) => {
    dbErrors.inc();
    options.logger.warn({ err: error }, 'database connection lost');
  });
  trackPool(options.applicationName.replace(/^atdirectory-/, ''), pool);
  return pool;
}

/** Masks the password of a connection string for logs. */
export function describeDatabase(connectionString: string): string {
  try {
    const url = new URL(connectionString);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '(unparseable connection string)';
  }
}
