import type pg from 'pg';

/** Records of one import batch, as parallel arrays (one array parameter per column). */
export interface ImportBatch {
  atsigns: string[];
  hosts: string[];
  ports: number[];
}

/**
 * Creates or replaces a batch of records in one statement: the arrays travel as three parameters
 * and `unnest` turns them into rows, so a thousand records cost one round trip. New records belong
 * to `registrar`; an existing one is replaced only when `owner` is undefined or owns it. Rows are
 * written in key order, so that concurrent imports lock shared rows in the same order and cannot
 * deadlock. The batch must not name an atsign twice (one statement cannot change a row twice).
 *
 * Returns, per atsign written, whether it was created; an atsign absent from the result belongs to
 * another registrar and was left alone.
 */
export async function upsertBatch(client: pg.PoolClient, batch: ImportBatch, registrar: string | null, owner: string | undefined): Promise<Map<string, boolean>> {
  const order = batch.atsigns.map((_, index) => index).sort((a, b) => (batch.atsigns[a]! < batch.atsigns[b]! ? -1 : 1));
  const { rows } = await client.query<{ atsign: string; created: boolean }>(
    `INSERT INTO atsigns (atsign, host, port, registrar)
     SELECT atsign, host, port, $4::text FROM unnest($1::text[], $2::text[], $3::integer[]) WITH ORDINALITY AS batch(atsign, host, port, position)
     ORDER BY position
     ON CONFLICT (atsign) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port
       WHERE $5::text IS NULL OR atsigns.registrar IS NOT DISTINCT FROM $5::text
     RETURNING atsign, (xmax = 0) AS created`,
    [order.map((i) => batch.atsigns[i]), order.map((i) => batch.hosts[i]), order.map((i) => batch.ports[i]), registrar, owner ?? null],
  );
  return new Map(rows.map((row) => [row.atsign, row.created]));
}
