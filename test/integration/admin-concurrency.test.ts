import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestAdmin, type TestAdmin } from '../support/admin-harness.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

let database: TestDatabase;
let admin: TestAdmin;
let token: string;

beforeAll(async () => {
  database = await createTestDatabase();
  admin = await startTestAdmin(database.url);
  token = await admin.key('admin');
});

afterAll(async () => {
  await admin?.stop();
  await database?.drop();
});

it('50 concurrent PUTs to one new atsign leave one final version and 50 history rows', async () => {
  const responses = await Promise.all(
    Array.from({ length: 50 }, (_, i) => admin.request('PUT', '/v1/atsigns/race', { token, body: { host: `h${i}.example`, port: 1000 + i } })),
  );
  const results = await Promise.all(responses.map(async (response) => ({ status: response.status, body: (await response.json()) as { version: number } })));
  // Any refusal is shown whole: under load, which problem it was is the diagnosis.
  expect(results.filter((result) => result.status !== 200 && result.status !== 201)).toEqual([]);
  expect(results.filter((result) => result.status === 201)).toHaveLength(1);
  const versions = results.map((result) => result.body.version);
  expect(new Set(versions).size).toBe(50);

  const { rows } = await database.pool.query('SELECT host, port, version FROM atsigns WHERE atsign = $1', ['race']);
  expect(rows).toHaveLength(1);
  expect(Number(rows[0].version)).toBe(Math.max(...versions));
  const history = (await (await admin.request('GET', '/v1/atsigns/race/history', { token })).json()) as { items: Array<{ action: string; version: number }> };
  expect(history.items).toHaveLength(50);
  expect(history.items.filter((entry) => entry.action === 'create')).toHaveLength(1);
  expect(history.items.at(-1)!.version).toBe(Number(rows[0].version));
  expect(`h${rows[0].port - 1000}.example`).toBe(rows[0].host);
});

it('If-Match lets exactly one of several writers that read the same version win', async () => {
  const created = await admin.request('PUT', '/v1/atsigns/guarded', { token, body: { host: 'a.example', port: 1 } });
  const etag = created.headers.get('etag')!;
  expect(etag).toMatch(/^"\d+"$/);
  const responses = await Promise.all(
    Array.from({ length: 10 }, (_, i) => admin.request('PATCH', '/v1/atsigns/guarded', { token, body: { port: 100 + i }, headers: { 'if-match': etag } })),
  );
  const statuses = responses.map((response) => response.status);
  expect(statuses.filter((status) => status === 200)).toHaveLength(1);
  expect(statuses.filter((status) => status === 412)).toHaveLength(9);
  const winner = responses[statuses.indexOf(200)]!;
  const current = await admin.request('GET', '/v1/atsigns/guarded', { token });
  expect(current.headers.get('etag')).toBe(winner.headers.get('etag'));
  expect((await admin.request('DELETE', '/v1/atsigns/guarded', { token, headers: { 'if-match': etag } })).status).toBe(412);
  expect((await admin.request('DELETE', '/v1/atsigns/guarded', { token, headers: { 'if-match': current.headers.get('etag')! } })).status).toBe(204);
});

it('pages through every atsign exactly once while others are being written', async () => {
  const values = Array.from({ length: 250 }, (_, i) => `('page${String(i).padStart(3, '0')}', 'p.example', 1)`).join(',');
  await database.pool.query(`INSERT INTO atsigns (atsign, host, port) VALUES ${values}`);
  const seen: string[] = [];
  let cursor: string | null = null;
  let page = 0;
  do {
    const query: string = `?prefix=page&limit=40${cursor ? `&cursor=${cursor}` : ''}`;
    const body = (await (await admin.request('GET', `/v1/atsigns${query}`, { token })).json()) as { items: Array<{ atsign: string }>; nextCursor: string | null };
    seen.push(...body.items.map((item) => item.atsign));
    cursor = body.nextCursor;
    // Concurrent writes: new atsigns before the cursor, updates and deletions after it.
    await database.pool.query(`INSERT INTO atsigns (atsign, host, port) VALUES ('page000a${page}', 'p.example', 1)`);
    await database.pool.query("UPDATE atsigns SET port = port + 1 WHERE atsign LIKE 'page2%'");
    page++;
  } while (cursor);
  const original = Array.from({ length: 250 }, (_, i) => `page${String(i).padStart(3, '0')}`);
  expect(seen.filter((atsign) => original.includes(atsign))).toEqual(original);
  expect(new Set(seen).size).toBe(seen.length);
});

it('caps the page size', async () => {
  const body = (await (await admin.request('GET', '/v1/atsigns?limit=5000', { token })).json()) as { items: unknown[] };
  expect(body.items.length).toBeLessThanOrEqual(1000);
});
