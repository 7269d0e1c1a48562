import type pg from 'pg';

/**
 * Deletes change-log entries older than the retention. Many processes may call this: it is
 * idempotent, and the log records how far back it still reaches so listeners can tell.
 */
export async function trimChangeLog(pool: pg.Pool, retentionMs: number): Promise<number> {
  const { rows } = await pool.query<{ trimmed: string }>(
    'SELECT trim_atsign_changes(make_interval(secs => $1)) AS trimmed',
    [retentionMs / 1000],
  );
  return Number(rows[0]!.trimmed);
}
