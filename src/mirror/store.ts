import type pg from 'pg';
import { dbErrors, queryDuration } from '../store/metrics.js';
import { inTransactionOnce } from '../store/transaction.js';
import type { FeedChange, MirroredRecord } from './change.js';
import { SnapshotRefused, type VerifiedSnapshot } from './snapshot.js';

const applyDuration = queryDuration.labels('mirror_apply');

/** A source as configured: where it is and the key it must sign with. */
export interface ConfiguredSource {
  url: string;
  publicKey: string;
  keyId: string;
}

/** A source as stored: its row id and how far this mirror has followed it. */
export interface StoredSource {
  id: number;
  /** Null until a snapshot of it has been applied (or again once its key changed). */
  versionApplied: number | null;
  /** The version of its last change applied here (the `previous` its next change must name); null with versionApplied. */
  lastChange: number | null;
  snapshotVersion: number | null;
  snapshotAt: Date | null;
  /** When a change or snapshot of it was last committed. */
  updatedAt: Date;
}

interface SourceRow {
  id: number;
  version_applied: string | null;
  last_change: string | null;
  snapshot_version: string | null;
  snapshot_at: Date | null;
  updated_at: Date;
}

/** SQLSTATE unique_violation: a snapshot that names an atsign twice. */
const UNIQUE_VIOLATION = '23505';

/**
 * The mirror's writes. Each is one transaction through the SQL functions of migrations/4, which
 * derive the directory's own `atsigns` from what the sources publish and the local blocks; the
 * triggers on `atsigns` then log, notify and record history as for any write, attributed to the
 * actor `mirror:<key id>`.
 */
export class MirrorStore {
  constructor(private readonly pool: pg.Pool) {}

  /**
   * Makes the stored sources those configured, in their order. A source no longer configured is
   * dropped with its records; one whose key changed keeps answering its records but must be
   * snapshotted again. Returns the stored state of each configured source, in order.
   */
  async syncSources(sources: readonly ConfiguredSource[]): Promise<StoredSource[]> {
    return inTransactionOnce(this.pool, { actor: 'mirror' }, async (client) => {
      await client.query('SELECT mirror_lock()');
      const { rows: before } = await client.query<{ url: string; position: number; public_key: string }>('SELECT url, position, public_key FROM mirror_sources');
      await client.query('DELETE FROM mirror_sources WHERE NOT (url = ANY($1::text[]))', [sources.map((source) => source.url)]);
      const stored: StoredSource[] = [];
      for (const [position, source] of sources.entries()) {
        const { rows } = await client.query<SourceRow>(
          `INSERT INTO mirror_sources AS s (url, public_key, key_id, position) VALUES ($1, $2, $3, $4)
           ON CONFLICT (url) DO UPDATE
              SET position = EXCLUDED.position, public_key = EXCLUDED.public_key, key_id = EXCLUDED.key_id,
                  version_applied = CASE WHEN s.public_key = EXCLUDED.public_key THEN s.version_applied END
           RETURNING id, version_applied::text, last_change::text, snapshot_version::text, snapshot_at, updated_at`,
          [source.url, source.publicKey, source.keyId, position],
        );
        stored.push(fromRow(rows[0]!));
      }
      const changed = before.some((row) => {
        const position = sources.findIndex((source) => source.url === row.url);
        return position === -1 || position !== row.position || sources[position]!.publicKey !== row.public_key;
      });
      // The set of sources, their precedence or a key (which blocks name) changed: any atsign may
      // answer differently now.
      if (changed) await client.query('SELECT mirror_derive_all()');
      return stored;
    });
  }

  /**
   * Applies verified changes of one source, in order, and records with them `reached` (where to
   * resume) and `lastChange` (the last change of the source's chain applied).
   */
  async applyChanges(source: { id: number; keyId: string }, changes: readonly FeedChange[], reached: number, lastChange: number): Promise<void> {
    const stopTimer = applyDuration.startTimer();
    try {
      await inTransactionOnce(this.pool, { actor: `mirror:${source.keyId}` }, (client) =>
        client.query('SELECT mirror_apply_changes($1, $2::text[], $3::text[], $4::integer[], $5::text[], $6::bigint[], $7, $8)', [
          source.id,
          changes.map((change) => change.atsign),
          changes.map((change) => change.host),
          changes.map((change) => change.port),
          changes.map((change) => change.status),
          changes.map((change) => change.version),
          reached,
          lastChange,
        ]),
      );
    } catch (error) {
      dbErrors.inc();
      throw error;
    } finally {
      stopTimer();
    }
  }

  /**
   * Replaces everything one source publishes with a snapshot, in one transaction. `read` streams
   * the snapshot, staging its records through the function it is given into a temporary table of
   * this transaction, and resolves once the snapshot is verified; only then is anything replaced.
   * If it throws, nothing has changed.
   */
  async replaceFromSnapshot(
    source: { id: number; keyId: string },
    read: (stage: (records: MirroredRecord[]) => Promise<void>) => Promise<VerifiedSnapshot>,
  ): Promise<VerifiedSnapshot> {
    return inTransactionOnce(this.pool, { actor: `mirror:${source.keyId}` }, async (client) => {
      await client.query(
        `CREATE TEMPORARY TABLE mirror_snapshot_rows (
           atsign text PRIMARY KEY, host text NOT NULL, port integer NOT NULL, status text NOT NULL, version bigint NOT NULL
         ) ON COMMIT DROP`,
      );
      const verified = await read(async (records) => {
        try {
          await client.query(
            `INSERT INTO mirror_snapshot_rows (atsign, host, port, status, version)
             SELECT atsign_key(atsign), host, port, status, version
               FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::bigint[]) AS r(atsign, host, port, status, version)`,
            [
              records.map((record) => record.atsign),
              records.map((record) => record.host),
              records.map((record) => record.port),
              records.map((record) => record.status),
              records.map((record) => record.version),
            ],
          );
        } catch (error) {
          if ((error as { code?: string }).code === UNIQUE_VIOLATION) throw new SnapshotRefused(`the snapshot lists an atsign twice: ${(error as { detail?: string }).detail ?? ''}`);
          throw error;
        }
      });
      await client.query('SELECT mirror_replace_snapshot($1, $2, $3)', [source.id, verified.version, verified.lastChange]);
      return verified;
    });
  }
}

function fromRow(row: SourceRow): StoredSource {
  return {
    id: row.id,
    versionApplied: row.version_applied === null ? null : Number(row.version_applied),
    lastChange: row.last_change === null ? null : Number(row.last_change),
    snapshotVersion: row.snapshot_version === null ? null : Number(row.snapshot_version),
    snapshotAt: row.snapshot_at,
    updatedAt: row.updated_at,
  };
}
