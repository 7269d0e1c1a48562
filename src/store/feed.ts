import type pg from 'pg';
import { dbErrors, queryDuration } from './metrics.js';

const horizonDuration = queryDuration.labels('feed_horizon');
const changesDuration = queryDuration.labels('feed_changes');

/** One probe of the settled horizon (src/feed/horizon.ts). */
export interface HorizonReading {
  /** The last version drawn from atsign_version_seq (0 before the first), read first. */
  lastVersion: number;
  /**
   * A transaction id assigned after `lastVersion` was read: every transaction that had drawn a
   * version by then has a lower one.
   */
  nextXid: bigint;
  /**
   * Read after `lastVersion` too: the oldest id of a transaction still running in this database,
   * or `nextXid` when there is none (every lower id of this database has ended).
   */
  oldestRunningXid: bigint;
}

/** A change-log entry; `host`, `port` and `status` are null for a deletion. */
export interface LoggedChange {
  version: number;
  atsign: string;
  host: string | null;
  port: number | null;
  status: 'active' | 'suspended' | null;
  changedAt: Date;
}

/** Entries of a version range, and what bounds the log, all as one statement saw them. */
export interface LoggedRange {
  changes: LoggedChange[];
  /** The highest version drawn so far (drawn, not necessarily committed). */
  issued: number;
  /** The highest version trimmed from the log (0 if none): entries at or below it may be gone. */
  trimmedThrough: number;
  /** The version of the last change at or below `after` (0 if none): the predecessor of the first entry. */
  before: number;
}

export interface SnapshotRecord {
  atsign: string;
  host: string;
  port: number;
  status: 'active' | 'suspended';
  version: number;
}

const LAST_VERSION = {
  name: 'atdirectory-feed-last-version',
  // A sequence is read outside MVCC: this sees every nextval, committed or not.
  text: 'SELECT CASE WHEN is_called THEN last_value ELSE 0 END::text AS version FROM atsign_version_seq',
};

// A fresh id bounds the ids of every transaction that drew a version before it, since ids are
// assigned in order (a snapshot's xmax cannot: it is the latest *completed* id + 1, and a younger
// transaction may still be running). Each probe costs one id, about 860 000 a day at 10 a second
// (the default autovacuum_freeze_max_age is 200 million), and a commit record with no flush.
//
// The oldest running id is taken from this database's backends and prepared transactions, not
// from a snapshot's xmin: only they can draw from this database's sequence, and a snapshot's xmin
// would let a long transaction in any other database of the server hold the feed back. Those ids
// are 32-bit; each is widened next to the fresh one (running ids are within 2^31 of it).
const XID_BOUNDS = {
  name: 'atdirectory-feed-xid-bounds',
  text: `WITH fresh AS (SELECT pg_current_xact_id()::text::bigint AS xid),
              running AS (
                SELECT backend_xid AS xid FROM pg_stat_activity
                 WHERE datname = current_database() AND backend_xid IS NOT NULL AND pid <> pg_backend_pid()
                UNION ALL
                SELECT transaction FROM pg_prepared_xacts WHERE database = current_database()
              )
         SELECT fresh.xid::text AS next_xid,
                coalesce(min(fresh.xid + (running.xid::text::bigint - fresh.xid % 4294967296 + 6442450944) % 4294967296 - 2147483648),
                         fresh.xid)::text AS oldest_running
           FROM fresh LEFT JOIN running ON true
          GROUP BY fresh.xid`,
};

// The version of the last change at or below a settled version: the greatest the log holds there,
// or the trim mark when that is greater (it is the greatest version trimmed, so a change's). Exact
// wherever the log reaches, at or above the mark: no entry above the mark has been trimmed.
// What the feed signs as an entry's `previous` and a snapshot's `lastChange`, so both must agree.
const lastChangeThrough = (version: string) => `greatest(
  (SELECT max(version) FROM atsign_changes WHERE version <= ${version}),
  (SELECT trimmed_through_version FROM atsign_change_log_state WHERE trimmed_through_version <= ${version}),
  0)`;

// One statement, so the rows, the trim mark and the predecessor come from one snapshot: a trim
// that commits meanwhile either removed the rows and shows in the mark, or did neither.
const CHANGES = {
  name: 'atdirectory-feed-changes',
  text: `SELECT bounds.issued, bounds.trimmed, bounds.before, c.version, c.atsign, c.host, c.port, c.status, c.changed_at
           FROM (SELECT (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM atsign_version_seq)::text AS issued,
                        (SELECT coalesce(trimmed_through_version, 0) FROM atsign_change_log_state)::text AS trimmed,
                        ${lastChangeThrough('$1')}::text AS before) bounds
           LEFT JOIN LATERAL (
             SELECT version, atsign, host, port, status, changed_at FROM atsign_changes
              WHERE version > $1 AND version <= $2 ORDER BY version LIMIT $3
           ) c ON true`,
};

interface ChangesRow {
  issued: string;
  trimmed: string;
  before: string;
  version: string | null;
  atsign: string;
  host: string | null;
  port: number | null;
  status: 'active' | 'suspended' | null;
  changed_at: Date;
}

/** The change feed's queries. */
export class FeedStore {
  constructor(private readonly pool: pg.Pool) {}

  /** The sequence's last value, then (a separate, later statement) a new transaction id and this database's oldest running one. */
  async readHorizon(): Promise<HorizonReading> {
    const stopTimer = horizonDuration.startTimer();
    try {
      const last = await this.pool.query<{ version: string }>(LAST_VERSION);
      const bounds = await this.pool.query<{ next_xid: string; oldest_running: string }>(XID_BOUNDS);
      return { lastVersion: Number(last.rows[0]!.version), nextXid: BigInt(bounds.rows[0]!.next_xid), oldestRunningXid: BigInt(bounds.rows[0]!.oldest_running) };
    } catch (error) {
      dbErrors.inc();
      throw error;
    } finally {
      stopTimer();
    }
  }

  /** Log entries with `after < version <= through`, in version order, at most `limit`. */
  async changes(after: number, through: number, limit: number): Promise<LoggedRange> {
    const stopTimer = changesDuration.startTimer();
    let rows: ChangesRow[];
    try {
      ({ rows } = await this.pool.query<ChangesRow>({ ...CHANGES, values: [after, through, limit] }));
    } catch (error) {
      dbErrors.inc();
      throw error;
    } finally {
      stopTimer();
    }
    const first = rows[0]!;
    return {
      issued: Number(first.issued),
      trimmedThrough: Number(first.trimmed),
      before: Number(first.before),
      changes: first.version === null ? [] : rows.map(fromChangesRow),
    };
  }
}

function fromChangesRow(row: ChangesRow): LoggedChange {
  return { version: Number(row.version), atsign: row.atsign, host: row.host, port: row.port, status: row.status, changedAt: row.changed_at };
}

/**
 * Every record as one REPEATABLE READ snapshot sees it, read through a cursor in batches, so a
 * directory of any size streams in bounded memory. Holds its connection until `close`.
 */
export class SnapshotCursor {
  private broken: Error | undefined;
  private closed: Promise<void> | undefined;
  private readonly onError = (error: Error) => (this.broken = error);

  private constructor(private readonly client: pg.PoolClient) {
    // A connection lost between statements is reported as an 'error' event, which pg's pool does
    // not listen for while the client is lent out; unheard, it would end the process.
    client.on('error', this.onError);
  }

  /**
   * Starts the transaction. Its snapshot is taken by the first statement after BEGIN (the
   * DECLARE), so anything settled before this is called is in it.
   */
  static async open(pool: pg.Pool): Promise<SnapshotCursor> {
    let client: pg.PoolClient;
    try {
      client = await pool.connect();
    } catch (error) {
      dbErrors.inc();
      throw error;
    }
    const cursor = new SnapshotCursor(client);
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query('DECLARE snapshot_records NO SCROLL CURSOR FOR SELECT atsign, host, port, status, version::text FROM atsigns');
    } catch (error) {
      dbErrors.inc();
      await cursor.close();
      throw error;
    }
    return cursor;
  }

  /** The next records, at most `count`; none when all have been read. */
  async next(count: number): Promise<SnapshotRecord[]> {
    if (this.closed) throw new Error('snapshot cursor read after it was closed');
    try {
      const { rows } = await this.client.query<[string, string, number, 'active' | 'suspended', string]>({
        text: `FETCH FORWARD ${count} FROM snapshot_records`,
        rowMode: 'array',
      });
      return rows.map(([atsign, host, port, status, version]) => ({ atsign, host, port, status, version: Number(version) }));
    } catch (error) {
      dbErrors.inc();
      this.broken ??= error as Error;
      throw error;
    }
  }

  /** The version of the last change at or below `version`, as this snapshot sees the log. */
  async lastChangeThrough(version: number): Promise<number> {
    if (this.closed) throw new Error('snapshot cursor read after it was closed');
    try {
      const { rows } = await this.client.query<{ last_change: string }>(`SELECT ${lastChangeThrough('$1::bigint')}::text AS last_change`, [version]);
      return Number(rows[0]!.last_change);
    } catch (error) {
      dbErrors.inc();
      this.broken ??= error as Error;
      throw error;
    }
  }

  /** Ends the transaction and gives the connection back; later calls wait for the first. */
  close(): Promise<void> {
    this.closed ??= this.end();
    return this.closed;
  }

  private async end(): Promise<void> {
    if (!this.broken) await this.client.query('ROLLBACK').catch((error: Error) => (this.broken = error));
    this.client.off('error', this.onError);
    // Releasing with an error destroys the connection instead of returning it to the pool.
    this.client.release(this.broken);
  }
}
