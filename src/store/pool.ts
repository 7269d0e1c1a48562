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
  /** Queries waiting for a connection beyond which new ones fail at once (default 1000). */
  maxWaiting?: number;
}

/** The pool's wait queue is full: the database is not keeping up, and waiting longer would not help. */
export class PoolQueueFull extends Error {
  readonly code = 'ATDIR_POOL_QUEUE_FULL';

  constructor(waiting: number) {
    super(`${waiting} queries are already waiting for a database connection`);
  }
}

type ConnectCallback = (error: Error | undefined, client: pg.PoolClient | undefined, done: (release?: unknown) => void) => void;

/**
 * pg's pool queues without limit; a slow database under a flood of cache misses would grow the
 * queue (and every waiter's latency) until the connect timeout. This one refuses beyond a bound.
 */
class BoundedPool extends pg.Pool {
  constructor(
    config: pg.PoolConfig,
    private readonly maxWaiting: number,
  ) {
    super(config);
  }

  override connect(): Promise<pg.PoolClient>;
  override connect(callback: ConnectCallback): void;
  override connect(callback?: ConnectCallback): Promise<pg.PoolClient> | void {
    if (this.waitingCount >= this.maxWaiting && this.idleCount === 0) {
      dbErrors.inc();
      const error = new PoolQueueFull(this.waitingCount);
      if (!callback) return Promise.reject(error);
      process.nextTick(() => callback(error, undefined, () => undefined));
      return;
    }
    return callback ? super.connect(callback) : super.connect();
  }
}

/**
 * The query pool. Every query carries a server-side statement timeout and a client-side query
 * timeout of the same length, so a stalled database costs a bounded wait rather than a hung lookup.
 */
export function createPool(options: PoolOptions): pg.Pool {
  const pool = new BoundedPool({
    connectionString: options.connectionString,
    max: options.max,
    connectionTimeoutMillis: options.connectTimeoutMs,
    statement_timeout: options.statementTimeoutMs,
    query_timeout: options.statementTimeoutMs + 500,
    idleTimeoutMillis: 30_000,
    keepAlive: true,
    application_name: options.applicationName,
  }, options.maxWaiting ?? 1000);
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
