import type { Config } from '../config.js';
import { createLogger } from '../ops/logger.js';
import { openDatabase } from '../serve/database.js';

/** `atdirectory migrate`: applies pending migrations and exits. */
export async function migrateCommand(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel);
  const database = await openDatabase({ ...config, migrate: true }, logger);
  await database.stop();
  logger.info({ database: database.description }, 'database schema is current');
}
