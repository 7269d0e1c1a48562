import type pg from 'pg';
import { inTransaction, type WriteContext } from './transaction.js';

export interface StoredAtsign {
  atsign: string;
  host: string;
  port: number;
  status: 'active' | 'suspended';
  suspensionReason: string | null;
  registrar: string | null;
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface HistoryEntry {
  version: number;
  action: string;
  oldValue: Record<string, unknown> | null;
  newValue: Record<string, unknown> | null;
  actor: string;
  reason: string | null;
  changedAt: string;
}

/** Conditions a write must meet, checked under the row lock. */
export interface WriteConditions {
  /** The version the writer last saw (If-Match); the write fails if the record has moved on. */
  expectedVersion?: number | '*';
  /** Only records owned by this registrar may be touched; undefined means any. */
  owner?: string;
}

export class AtsignNotFound extends Error {}
export class VersionMismatch extends Error {}
export class NotOwner extends Error {}

export interface AtsignChanges {
  host?: string;
  port?: number;
  status?: 'active' | 'suspended';
  suspensionReason?: string | null;
}

export interface ListQuery {
  registrar?: string;
  prefix?: string;
  status?: 'active' | 'suspended';
  /** Keyset: atsigns after this one, in byte order. */
  after?: string;
  limit: number;
}

const COLUMNS = `atsign, host, port, status, suspension_reason, registrar, version, created_at, updated_at`;

interface AtsignRow {
  atsign: string;
  host: string;
  port: number;
  status: 'active' | 'suspended';
  suspension_reason: string | null;
  registrar: string | null;
  version: string;
  created_at: Date;
  updated_at: Date;
}

function fromRow(row: AtsignRow): StoredAtsign {
  return {
    atsign: row.atsign,
    host: row.host,
    port: row.port,
    status: row.status,
    suspensionReason: row.suspension_reason,
    registrar: row.registrar,
    version: Number(row.version),
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

/**
 * Reads and writes of directory records for the admin API. Every write is one transaction with its
 * history row (written by the trigger); the change reaches the lookup caches by notification, never
 * from here.
 */
export class AtsignStore {
  constructor(private readonly pool: pg.Pool) {}

  async get(atsign: string): Promise<StoredAtsign | null> {
    const { rows } = await this.pool.query<AtsignRow>(`SELECT ${COLUMNS} FROM atsigns WHERE atsign = $1`, [atsign]);
    return rows[0] ? fromRow(rows[0]) : null;
  }

  /** Creates or replaces host and port. A new record belongs to `registrar`. */
  async put(
    atsign: string,
    target: { host: string; port: number; registrar: string },
    conditions: WriteConditions,
    context: WriteContext,
  ): Promise<{ record: StoredAtsign; created: boolean }> {
    return inTransaction(this.pool, context, async (client) => {
      const current = await this.lock(client, atsign, conditions, { mayBeAbsent: true });
      if (!current) {
        // Two creators may race past the lock (there is no row to lock yet): the loser updates.
        const { rows } = await client.query<AtsignRow & { created: boolean }>(
          `INSERT INTO atsigns (atsign, host, port, registrar) VALUES ($1, $2, $3, $4)
           ON CONFLICT (atsign) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port
             WHERE $5::text IS NULL OR atsigns.registrar IS NOT DISTINCT FROM $5::text
           RETURNING ${COLUMNS}, (xmax = 0) AS created`,
          [atsign, target.host, target.port, target.registrar, conditions.owner ?? null],
        );
        if (!rows[0]) throw new NotOwner();
        return { record: fromRow(rows[0]), created: rows[0].created };
      }
      const { rows } = await client.query<AtsignRow>(`UPDATE atsigns SET host = $2, port = $3 WHERE atsign = $1 RETURNING ${COLUMNS}`, [
        atsign,
        target.host,
        target.port,
      ]);
      return { record: fromRow(rows[0]!), created: false };
    });
  }

  async patch(atsign: string, changes: AtsignChanges, conditions: WriteConditions, context: WriteContext): Promise<StoredAtsign> {
    return inTransaction(this.pool, context, async (client) => {
      const current = (await this.lock(client, atsign, conditions, { mayBeAbsent: false }))!;
      // A field left out (undefined) keeps its value.
      const next = { ...current };
      for (const [field, value] of Object.entries(changes) as Array<[keyof AtsignChanges, never]>) {
        if (value !== undefined) next[field] = value;
      }
      const { rows } = await client.query<AtsignRow>(
        `UPDATE atsigns SET host = $2, port = $3, status = $4, suspension_reason = $5 WHERE atsign = $1 RETURNING ${COLUMNS}`,
        [atsign, next.host, next.port, next.status, next.status === 'suspended' ? next.suspensionReason : null],
      );
      return fromRow(rows[0]!);
    });
  }

  async delete(atsign: string, conditions: WriteConditions, context: WriteContext): Promise<void> {
    await inTransaction(this.pool, context, async (client) => {
      await this.lock(client, atsign, conditions, { mayBeAbsent: false });
      await client.query('DELETE FROM atsigns WHERE atsign = $1', [atsign]);
    });
  }

  async list(query: ListQuery): Promise<StoredAtsign[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    const add = (condition: (placeholder: string) => string, value: unknown) => {
      values.push(value);
      where.push(condition(`$${values.length}`));
    };
    if (query.registrar !== undefined) add((p) => `registrar = ${p}`, query.registrar);
    if (query.status !== undefined) add((p) => `status = ${p}`, query.status);
    if (query.prefix) add((p) => `starts_with(atsign COLLATE "C", ${p})`, query.prefix);
    if (query.prefix) add((p) => `atsign COLLATE "C" >= ${p}`, query.prefix);
    if (query.after !== undefined) add((p) => `atsign COLLATE "C" > ${p}`, query.after);
    values.push(query.limit);
    const { rows } = await this.pool.query<AtsignRow>(
      `SELECT ${COLUMNS} FROM atsigns ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY atsign COLLATE "C" LIMIT $${values.length}`,
      values,
    );
    return rows.map(fromRow);
  }

  async history(atsign: string): Promise<HistoryEntry[]> {
    const { rows } = await this.pool.query<{
      version: string;
      action: string;
      old_value: Record<string, unknown> | null;
      new_value: Record<string, unknown> | null;
      actor: string;
      reason: string | null;
      changed_at: Date;
    }>('SELECT version, action, old_value, new_value, actor, reason, changed_at FROM atsign_history WHERE atsign = $1 ORDER BY id', [atsign]);
    return rows.map((row) => ({
      version: Number(row.version),
      action: row.action,
      oldValue: row.old_value,
      newValue: row.new_value,
      actor: row.actor,
      reason: row.reason,
      changedAt: row.changed_at.toISOString(),
    }));
  }

  /** Locks the record and checks the write's conditions against it. */
  private async lock(
    client: pg.PoolClient,
    atsign: string,
    conditions: WriteConditions,
    { mayBeAbsent }: { mayBeAbsent: boolean },
  ): Promise<StoredAtsign | null> {
    const { rows } = await client.query<AtsignRow>(`SELECT ${COLUMNS} FROM atsigns WHERE atsign = $1 FOR UPDATE`, [atsign]);
    const current = rows[0] ? fromRow(rows[0]) : null;
    if (!current) {
      // If-Match on a record that does not exist fails (RFC 9110 13.1.1).
      if (conditions.expectedVersion !== undefined) throw new VersionMismatch();
      if (!mayBeAbsent) throw new AtsignNotFound();
      return null;
    }
    if (conditions.owner !== undefined && current.registrar !== conditions.owner) throw new NotOwner();
    if (conditions.expectedVersion !== undefined && conditions.expectedVersion !== '*' && conditions.expectedVersion !== current.version) {
      throw new VersionMismatch();
    }
    return current;
  }
}
