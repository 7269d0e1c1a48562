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

/** SQLSTATE read_only_sql_transaction: the connection reached a node that is (now) a standby. */
const READ_ONLY = '25006';

/**
 * Runs `work` in one transaction whose writes the history trigger attributes to `context`. Rolls
 * back on any error, so a failed write leaves nothing behind. After a failover, a pooled connection
 * may still point at the old primary, now read-only: that connection is discarded and the whole
 * transaction retried once on a fresh one (safe, since the failed attempt was rolled back).
 */
export async function inTransaction<T>(pool: pg.Pool, context: WriteContext, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const stopTimer = writeDuration.startTimer();
  try {
    return await inTransactionOnce(pool, context, work);
  } catch (error) {
    if ((error as { code?: string }).code !== READ_ONLY) throw error;
    return await inTransactionOnce(pool, context, work);
  } finally {
    stopTimer();
  }
}

/**
 * One transaction attributed to `context`, never retried: for work that cannot run twice, such as
 * one that consumes a stream. A connection that reached a read-only node is discarded all the same.
 */
export async function inTransactionOnce<T>(pool: pg.Pool, context: WriteContext, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect().catch((error: unknown) => {
    dbErrors.inc();
    throw error;
  });
  let broken: Error | undefined;
  // A connection lost between statements is reported as an 'error' event, not by a query; pg's pool
  // stops listening while a client is lent out, and an unheard 'error' would end the process.
  const onError = (error: Error) => (broken = error);
  client.on('error', onError);
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
    if ((error as { code?: string }).code === READ_ONLY) broken = error as Error;
    throw error;
  } finally {
    client.off('error', onError);
    // Releasing with an error destroys the connection instead of returning it to the pool.
    client.release(broken);
  }
}
