import type pg from 'pg';
import type { Config } from '../config.js';
import { createLogger } from '../ops/logger.js';
import { openDatabase } from '../serve/database.js';
import { createPool } from '../store/pool.js';

/**
 * For one-shot commands (keys, import): opens the configured or embedded database, migrated, runs
 * `work` with a small pool, and closes everything, the embedded server included, however it ends.
 * Info-level logs are quietened to warnings: these commands' output is their result.
 */
export async function withDatabase<T>(config: Config, applicationName: string, work: (pool: pg.Pool) => Promise<T>): Promise<T> {
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const database = await openDatabase({ ...config, migrate: true }, logger);
  const pool = createPool({
    connectionString: database.url,
    max: 2,
    connectTimeoutMs: config.dbConnectTimeout,
    statementTimeoutMs: 60_000,
    applicationName,
    logger,
  });
  try {
    return await work(pool);
  } finally {
    await pool.end();
    await database.stop();
  }
}
