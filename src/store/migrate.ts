import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Logger } from 'pino';
import { migrate } from 'postgres-migrations';

/** `migrations/` at the package root, from both `src/store` (tests) and `dist/store` (built). */
export const MIGRATIONS_DIRECTORY = fileURLToPath(new URL('../../migrations', import.meta.url));

/**
 * Applies pending migrations. postgres-migrations takes an advisory lock, so several processes
 * starting at once apply each migration exactly once. Returns the names of those applied now.
 */
export async function applyMigrations(connectionString: string, connectTimeoutMs: number, logger: Logger): Promise<string[]> {
  const client = new pg.Client({ connectionString, connectionTimeoutMillis: connectTimeoutMs, application_name: 'atdirectory-migrate' });
  // A lost connection also fails the statement in progress, which is where it is handled.
  client.on('error', () => undefined);
  await client.connect();
  try {
    const applied = await migrate({ client }, MIGRATIONS_DIRECTORY, { logger: (message) => logger.debug(message) });
    return applied.map((migration) => migration.name);
  } finally {
    await client.end();
  }
}
