import { readdirSync } from 'node:fs';
import type pg from 'pg';
import type { Readiness } from '../ops/server.js';
import { MIGRATIONS_DIRECTORY } from '../store/migrate.js';

/** Migrations the code expects: the files, plus the bookkeeping table postgres-migrations adds. */
const EXPECTED_MIGRATIONS = readdirSync(MIGRATIONS_DIRECTORY).filter((file) => file.endsWith('.sql')).length + 1;

export interface ReadinessSources {
  pool: pg.Pool;
  /** Whether every lookup process's change listener is connected and caught up. */
  listening: () => Promise<boolean>;
  /** Whether the lookup port serves with a loaded certificate. */
  tls: () => boolean;
}

/** /readyz: the database answers, its schema is current, the listeners follow changes, TLS is loaded. */
export function readinessCheck(sources: ReadinessSources): () => Promise<Readiness> {
  return async () => {
    const checks: Record<string, string> = {};
    try {
      const { rows } = await sources.pool.query<{ applied: number }>('SELECT count(*)::int AS applied FROM migrations');
      checks.database = 'ok';
      const applied = rows[0]!.applied;
      checks.migrations = applied >= EXPECTED_MIGRATIONS ? 'ok' : `${applied} of ${EXPECTED_MIGRATIONS} migrations applied`;
    } catch (error) {
      checks.database = `unreachable: ${(error as Error).message}`;
      checks.migrations = 'unknown';
    }
    checks.changeListener = (await sources.listening()) ? 'ok' : 'disconnected';
    checks.tls = sources.tls() ? 'ok' : 'not loaded';
    return { ready: Object.values(checks).every((value) => value === 'ok'), checks };
  };
}
