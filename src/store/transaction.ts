import type pg from 'pg';
import { dbErrors, queryDuration } from './metrics.js';

const writeDuration = queryDuration.labels('admin_write');

/** Who a write is attributed to in atsign_history, and why. */
export interface WriteContext {
  /** An API key id, or "cli". */
  actor: string;
  reason?: string;
  /** Overrides the action the history trigger derives (e.g. "import"). */
  action?: string;
}

/**
 * Runs `work` in one transaction whose writes the history trigger attributes to `context`. Rolls
 * back on any error, so a failed write leaves nothing behind.
 */
export async function inTransaction<T>(pool: pg.Pool, context: WriteContext, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const stopTimer = writeDuration.startTimer();
  const client = await pool.connect().catch((error: unknown) => {
    dbErrors.inc();
    stopTimer();
    throw error;
  });
  try {
    await client.query('BEGIN');
    await client.query(
      `SELECT set_config('atdirectory.actor', $1, true), set_config('atdirectory.reason', $2, true), set_config('atdirectory.action', $3, true)`,
      [context.actor, context.reason ?? '', context.action ?? ''],
    );
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    client.release();
    stopTimer();
  }
}
