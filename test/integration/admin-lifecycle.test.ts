import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { NOTIFIED_WITHIN_MS, timeUntil } from '../support/propagation.js';
import { RawClient } from '../support/raw-client.js';
import { CLI, cleanEnv, spawnServe, spawnServes, type ServeProcess } from '../support/serve-process.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import net from 'node:net';
import { once } from 'node:events';

// The self-hoster's whole story, on two real `serve` processes sharing a database: the first
// serves the admin API, the second only lookups. The API never talks to caches; the change must
// reach the second process through the database's notification.

let database: TestDatabase;
let dataDir: string;
let writer: ServeProcess;
let reader: ServeProcess;
let token: string;
const clients: RawClient[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), 'atdirectory-test-'));
  const common = ['--database-url', database.url, '--data-dir', dataDir, '--no-migrate', '--miss-delay-from', '0', '--miss-close-at', '0'];
  [writer, reader] = (await spawnServes([common, [...common, '--no-admin']])) as [ServeProcess, ServeProcess];
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'keys', 'create', '--registrar', 'selfhost', '--scope', 'registrar', '--database-url', database.url], {
    env: cleanEnv({}),
  });
  token = stdout.trim();
});

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all([writer?.stop(), reader?.stop()]);
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

function api(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`http://127.0.0.1:${writer.adminPort}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
}

async function connect(server: ServeProcess): Promise<RawClient> {
  const client = await RawClient.prompted(server.port);
  clients.push(client);
  return client;
}

it('create, look up, move, suspend, reactivate and delete; the second process follows by notification', async () => {
  expect(writer.adminPort).toBeGreaterThan(0);
  expect(reader.adminPort).toBeUndefined();
  const [viaWriter, viaReader] = await Promise.all([connect(writer), connect(reader)]);

  expect((await api('PUT', '/v1/atsigns/@SelfHost', { host: 'home.example.net', port: 6464 })).status).toBe(201);
  expect(await viaWriter.ask('selfhost')).toBe('home.example.net:6464');
  expect(await viaReader.ask('@selfhost'.slice(1))).toBe('home.example.net:6464');

  let since = performance.now();
  expect((await api('PATCH', '/v1/atsigns/selfhost', { host: 'vps.example.org', port: 7000 })).status).toBe(200);
  expect(await timeUntil(viaReader, 'selfhost', 'vps.example.org:7000', since)).toBeLessThan(NOTIFIED_WITHIN_MS);

  since = performance.now();
  expect((await api('PATCH', '/v1/atsigns/selfhost', { status: 'suspended', reason: 'reported phishing' })).status).toBe(200);
  expect(await timeUntil(viaReader, 'selfhost', 'null', since)).toBeLessThan(NOTIFIED_WITHIN_MS);
  expect(await viaWriter.ask('selfhost')).toBe('null');

  since = performance.now();
  const reactivated = await api('PATCH', '/v1/atsigns/selfhost', { status: 'active' });
  expect(await reactivated.json()).toMatchObject({ status: 'active', suspensionReason: null });
  expect(await timeUntil(viaReader, 'selfhost', 'vps.example.org:7000', since)).toBeLessThan(NOTIFIED_WITHIN_MS);

  since = performance.now();
  expect((await api('DELETE', '/v1/atsigns/selfhost')).status).toBe(204);
  expect(await timeUntil(viaReader, 'selfhost', 'null', since)).toBeLessThan(NOTIFIED_WITHIN_MS);
  expect(await viaWriter.ask('selfhost')).toBe('null');
  expect((await api('GET', '/v1/atsigns/selfhost')).status).toBe(404);

  const { rows } = await database.pool.query('SELECT action, actor, reason, old_value, new_value FROM atsign_history WHERE atsign = $1 ORDER BY id', ['selfhost']);
  const keyId = token.split('_')[1];
  expect(rows.map((row) => [row.action, row.actor, row.reason])).toEqual([
    ['create', keyId, null],
    ['update', keyId, null],
    ['suspend', keyId, 'reported phishing'],
    ['reactivate', keyId, null],
    ['delete', keyId, null],
  ]);
  expect(rows[1].old_value).toMatchObject({ host: 'home.example.net', port: 6464 });
  expect(rows[1].new_value).toMatchObject({ host: 'vps.example.org', port: 7000 });
});

it('records writes made with plain SQL in the history as actor "sql"', async () => {
  await database.pool.query("INSERT INTO atsigns (atsign, host, port, registrar) VALUES ('legacy', 'l.example', 1, 'selfhost')");
  const history = (await (await api('GET', '/v1/atsigns/legacy/history')).json()) as { items: Array<{ action: string; actor: string }> };
  expect(history.items).toMatchObject([{ action: 'create', actor: 'sql' }]);
});

it('stops within the drain timeout although an admin connection was opened and never sent a request', async () => {
  const admin = await spawnServe(['--database-url', database.url, '--data-dir', dataDir, '--no-migrate', '--drain-timeout', '1s']);
  const silent = net.connect(admin.adminPort!, '127.0.0.1');
  try {
    await once(silent, 'connect');
    const started = performance.now();
    expect(await admin.stop(20_000)).toBe(0);
    expect(performance.now() - started).toBeLessThan(5000);
  } finally {
    silent.destroy();
    // Stopped already when the test passed; this catches a failure before the stop.
    await admin.stop(1000);
  }
});
