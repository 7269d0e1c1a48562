/**
 * Loads N synthetic records `${prefix}0` … for scale runs: one COPY, so a million rows take seconds.
 *
 *   npx tsx loadtest/seed.ts --database-url postgres://… [--count 1000000] [--prefix user]
 *
 * Synthetic data bypasses the row triggers (session_replication_role = replica, which needs a
 * superuser): no history rows, no change-log rows, no notifications, versions assigned here. Restart
 * serving processes afterwards (their caches never saw these rows, so nothing is stale; it only
 * keeps the measurement clean). Existing rows with the same atsigns are replaced.
 */
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

// --json is accepted for symmetry with the other tools: the one line printed is JSON anyway.
const { values } = parseArgs({ options: { 'database-url': { type: 'string' }, count: { type: 'string', default: '1000000' }, prefix: { type: 'string', default: 'user' }, json: { type: 'boolean' } } });
const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL;
const count = Number(values.count);
if (!databaseUrl || !Number.isInteger(count) || count < 1) throw new Error('usage: npx tsx loadtest/seed.ts --database-url URL [--count 1000000] [--prefix user]');
const prefix = values.prefix!;

/** Rows as COPY text, in chunks of 10,000 lines. */
function* rows(firstVersion: number): Generator<string> {
  for (let start = 0; start < count; start += 10_000) {
    let chunk = '';
    for (let i = start; i < Math.min(count, start + 10_000); i++) chunk += `${prefix}${i}\thost${i % 997}.example.com\t${1 + (i % 65_535)}\t${firstVersion + i}\n`;
    yield chunk;
  }
}

const client = new pg.Client({ connectionString: databaseUrl, application_name: 'atdirectory-seed' });
await client.connect();
const started = performance.now();
try {
  await client.query('BEGIN');
  await client.query('SET LOCAL session_replication_role = replica');
  // Versions come from the same sequence triggers use, so later real writes stay ordered after these.
  const first = Number((await client.query<{ first: string }>(`SELECT nextval('atsign_version_seq') AS first`)).rows[0]!.first);
  await client.query(`SELECT setval('atsign_version_seq', $1)`, [first + count]);
  await client.query(`DELETE FROM atsigns WHERE atsign LIKE $1 || '%'`, [prefix.replace(/[\\%_]/g, '\\$&')]);
  await pipeline(Readable.from(rows(first)), client.query(copyFrom('COPY atsigns (atsign, host, port, version) FROM STDIN')));
  await client.query('COMMIT');
  // The replaced rows leave dead tuples behind; index lookups would wade through them.
  await client.query('VACUUM ANALYZE atsigns');
} catch (error) {
  await client.query('ROLLBACK').catch(() => undefined);
  throw error;
} finally {
  await client.end();
}
process.stdout.write(`${JSON.stringify({ seeded: count, prefix, seconds: Math.round((performance.now() - started) / 10) / 100 })}\n`);
