import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiKeyStore } from '../../src/store/api-keys.js';
import { createPool } from '../../src/store/pool.js';
import { readinessCheck } from '../../src/serve/readiness.js';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { eventually, startTestLookup } from '../support/lookup-harness.js';
import { deltas, scrape } from '../support/metrics.js';
import { PostgresProxy } from '../support/postgres-proxy.js';
import { RawClient, connectTcp } from '../support/raw-client.js';
import { spawnServe, type ServeProcess } from '../support/serve-process.js';

let database: TestDatabase;
let dataDir: string;

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), 'atdirectory-test-'));
  await insertRecord(database.pool, 'alice', 'alice.example.com', 6464);
  await insertRecord(database.pool, 'mallory', 'mallory.example.com', 6464, 'suspended');
});

afterAll(async () => {
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('/metrics after a scripted mix of lookups', () => {
  let server: ServeProcess;

  beforeAll(async () => {
    server = await spawnServe(['--database-url', database.url, '--data-dir', dataDir, '--miss-delay', '100ms', '--handshake-timeout', '300ms']);
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('shows exactly the expected deltas', async () => {
    const before = await scrape(server.opsPort!);
    const a = await RawClient.prompted(server.port);
    const script: Array<[string, string]> = [['alice', 'alice.example.com:6464'], ['alice', 'alice.example.com:6464'], ['nosuch', 'null']];
    for (const [atsign, answer] of script) {
      expect(await a.ask(atsign)).toBe(answer);
    }
    const b = await RawClient.prompted(server.port);
    expect(await b.ask('mallory')).toBe('null');
    const c = await RawClient.prompted(server.port);
    expect(await c.ask('x1')).toBe('null');
    expect(await c.ask('x2')).toBe('null');
    c.send('x3\n');
    await c.closed;
    for (const client of [a, b]) client.close();
    await database.pool.query("UPDATE atsigns SET port = 7000 WHERE atsign = 'alice'");
    await database.pool.query("INSERT INTO atsigns (atsign, host, port) VALUES ('bob', 'bob.example.com', 1)");
    expect(await eventually(async () => ((await scrape(server.opsPort!)).get('atdirectory_changes_applied_total') ?? 0) - (before.get('atdirectory_changes_applied_total') ?? 0) === 2)).toBe(true);
    await eventually(async () => ((await scrape(server.opsPort!)).get('atdirectory_connections_open') ?? 0) === (before.get('atdirectory_connections_open') ?? 0));

    const after = await scrape(server.opsPort!);
    expect(
      deltas(before, after, [
        'atdirectory_lookups_total{result="found"}',
        'atdirectory_lookups_total{result="not_found"}',
        'atdirectory_lookups_total{result="suspended"}',
        'atdirectory_lookups_total{result="throttled"}',
        'atdirectory_lookups_total{result="error"}',
        'atdirectory_lookup_duration_seconds_count',
        'atdirectory_cache_hits_total',
        'atdirectory_cache_misses_total',
        'atdirectory_cache_stale_served_total',
        'atdirectory_connections_total',
        'atdirectory_connections_rejected_total{reason="throttled"}',
        'atdirectory_tls_handshakes_total{version="TLSv1.3",resumed="false"}',
        'atdirectory_changes_applied_total',
        'atdirectory_connections_open',
      ]),
    ).toEqual({
      'atdirectory_lookups_total{result="found"}': 2,
      'atdirectory_lookups_total{result="not_found"}': 3,
      'atdirectory_lookups_total{result="suspended"}': 1,
      'atdirectory_lookups_total{result="throttled"}': 1,
      'atdirectory_lookups_total{result="error"}': 0,
      'atdirectory_lookup_duration_seconds_count': 6,
      'atdirectory_cache_hits_total': 1,
      'atdirectory_cache_misses_total': 6,
      'atdirectory_cache_stale_served_total': 0,
      'atdirectory_connections_total': 3,
      'atdirectory_connections_rejected_total{reason="throttled"}': 1,
      'atdirectory_tls_handshakes_total{version="TLSv1.3",resumed="false"}': 3,
      'atdirectory_changes_applied_total': 2,
      'atdirectory_connections_open': 0,
    });
    // alice moved while cached: the positive entry was updated in place, not added to.
    expect(after.get('atdirectory_cache_entries{kind="positive"}')).toBe(2);
    // nosuch, x1, x2 and x3: the third miss is read (and cached) before throttling closes the connection.
    expect(after.get('atdirectory_cache_entries{kind="negative"}')).toBe(4);
    expect(after.get('atdirectory_change_listener_connected')).toBe(1);
    expect(after.get('atdirectory_tls_certificate_expiry_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000);
    expect([...after.keys()].some((name) => name.startsWith('atdirectory_build_info{version="'))).toBe(true);
    expect(after.has('process_cpu_user_seconds_total')).toBe(true);
  });

  it('counts probes that never complete TLS, and logs nothing at error level for them', async () => {
    const before = await scrape(server.opsPort!);
    const hangsUp = await connectTcp(server.port);
    hangsUp.destroy();
    const silent = await connectTcp(server.port);
    await new Promise((resolve) => silent.once('close', resolve));
    await eventually(async () => ((await scrape(server.opsPort!)).get('atdirectory_tls_handshake_failures_total{reason="timeout"}') ?? 0) > (before.get('atdirectory_tls_handshake_failures_total{reason="timeout"}') ?? 0));
    const after = await scrape(server.opsPort!);
    expect(deltas(before, after, ['atdirectory_connections_total', 'atdirectory_tls_handshake_failures_total{reason="timeout"}', 'atdirectory_tls_handshake_failures_total{reason="closed"}'])).toEqual({
      atdirectory_connections_total: 2,
      'atdirectory_tls_handshake_failures_total{reason="timeout"}': 1,
      'atdirectory_tls_handshake_failures_total{reason="closed"}': 1,
    });
    expect(server.logs.filter((line) => line.level >= 50)).toEqual([]);
  });

  it('counts admin requests by route pattern and status, and refused authentications by reason', async () => {
    const { token } = await new ApiKeyStore(database.pool).create('observability', 'admin');
    const admin = (method: string, path: string, authorization?: string, body?: unknown) =>
      fetch(`http://127.0.0.1:${server.adminPort}${path}`, {
        method,
        headers: { ...(authorization ? { authorization } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
        body: body ? JSON.stringify(body) : undefined,
      });
    const before = await scrape(server.opsPort!);
    expect((await admin('PUT', '/v1/atsigns/carol', `Bearer ${token}`, { host: 'carol.example.com', port: 6464 })).status).toBe(201);
    expect((await admin('PUT', '/v1/atsigns/dave', `Bearer ${token}`, { host: 'dave.example.com', port: 6464 })).status).toBe(201);
    expect((await admin('GET', '/v1/atsigns/nosuch', `Bearer ${token}`)).status).toBe(404);
    expect((await admin('GET', '/v1/atsigns/carol')).status).toBe(401);
    expect((await admin('GET', '/v1/atsigns/carol', 'Bearer atd_nosuchkey_secret')).status).toBe(401);
    expect((await admin('GET', '/nowhere')).status).toBe(404);
    const after = await scrape(server.opsPort!);
    expect(
      deltas(before, after, [
        'atdirectory_admin_requests_total{route="/v1/atsigns/:atsign",method="PUT",status="201"}',
        'atdirectory_admin_requests_total{route="/v1/atsigns/:atsign",method="GET",status="404"}',
        'atdirectory_admin_requests_total{route="/v1/atsigns/:atsign",method="GET",status="401"}',
        'atdirectory_admin_requests_total{route="unmatched",method="GET",status="404"}',
        'atdirectory_admin_request_duration_seconds_count{route="/v1/atsigns/:atsign",method="PUT"}',
        'atdirectory_admin_auth_failures_total{reason="missing"}',
        'atdirectory_admin_auth_failures_total{reason="invalid"}',
      ]),
    ).toEqual({
      'atdirectory_admin_requests_total{route="/v1/atsigns/:atsign",method="PUT",status="201"}': 2,
      'atdirectory_admin_requests_total{route="/v1/atsigns/:atsign",method="GET",status="404"}': 1,
      'atdirectory_admin_requests_total{route="/v1/atsigns/:atsign",method="GET",status="401"}': 2,
      'atdirectory_admin_requests_total{route="unmatched",method="GET",status="404"}': 1,
      'atdirectory_admin_request_duration_seconds_count{route="/v1/atsigns/:atsign",method="PUT"}': 2,
      'atdirectory_admin_auth_failures_total{reason="missing"}': 1,
      'atdirectory_admin_auth_failures_total{reason="invalid"}': 1,
    });
    expect(server.logs.some((line) => JSON.stringify(line).includes(token))).toBe(false);
  });

  it('answers /healthz, and nothing but the three paths', async () => {
    const health = await fetch(`http://127.0.0.1:${server.opsPort}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok' });
    expect((await fetch(`http://127.0.0.1:${server.opsPort}/v1/atsigns`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${server.opsPort}/metrics`, { method: 'POST' })).status).toBe(405);
  });
});

describe('logs', () => {
  it('write one debug line per connection close and nothing per lookup; at info, nothing for either', async () => {
    for (const level of ['debug', 'info']) {
      const server = await spawnServe(['--database-url', database.url, '--data-dir', dataDir, '--log-level', level]);
      try {
        const client = await RawClient.prompted(server.port);
        expect(await client.ask('alice')).toMatch(/^alice\.example\.com:/);
        expect(await client.ask('nosuch')).toBe('null');
        client.close();
        await client.closed;
        await eventually(() => server.logs.some((line) => line.msg === 'lookup connection closed'), level === 'debug' ? 2000 : 300);
        const closeLine = server.logs.find((line) => line.msg === 'lookup connection closed');
        if (level === 'debug') {
          expect(closeLine).toMatchObject({ level: 20, lookups: 2, remoteAddress: expect.stringMatching(/127\.0\.0\.1/) });
          expect(server.logs.filter((line) => line.msg === 'lookup connection closed')).toHaveLength(1);
        } else {
          expect(closeLine).toBeFalsy();
        }
        expect(server.logs.filter((line) => /alice|nosuch/.test(JSON.stringify(line)))).toEqual([]);
      } finally {
        await server.stop();
      }
    }
  });
});

describe('/readyz', () => {
  it('turns 503 naming the database when PostgreSQL goes away, and 200 when it is back', async () => {
    const proxy = await PostgresProxy.start(database.url);
    const server = await spawnServe(['--database-url', proxy.url, '--data-dir', dataDir, '--db-connect-timeout', '500ms', '--listener-heartbeat', '200ms']);
    try {
      const readyz = async () => {
        const response = await fetch(`http://127.0.0.1:${server.opsPort}/readyz`);
        return { status: response.status, body: (await response.json()) as { ready: boolean; checks: Record<string, string> } };
      };
      expect(await readyz()).toEqual({ status: 200, body: { ready: true, checks: { database: 'ok', migrations: 'ok', changeListener: 'ok', tls: 'ok' } } });
      proxy.cut();
      expect(await eventually(async () => (await readyz()).body.checks.changeListener === 'disconnected', 5000, 50)).toBe(true);
      const down = await readyz();
      expect(down.status).toBe(503);
      expect(down.body.checks.database).toMatch(/^unreachable: /);
      proxy.restore();
      expect(await eventually(async () => (await readyz()).status === 200, 5000, 50)).toBe(true);
    } finally {
      await server.stop();
      await proxy.stop();
    }
  });

  it('turns 503 naming the change listener when only the listener is down', async () => {
    const proxy = await PostgresProxy.start(database.url);
    const lookup = await startTestLookup(proxy.url, ['--listener-heartbeat', '200ms', '--db-connect-timeout', '300ms']);
    const direct = createPool({ connectionString: database.url, max: 1, connectTimeoutMs: 1000, statementTimeoutMs: 1000, applicationName: 'atdirectory-readiness', logger: pino({ level: 'silent' }) });
    try {
      const check = readinessCheck({ pool: direct, listening: async () => lookup.process.listening(), tls: () => true });
      expect(await check()).toMatchObject({ ready: true });
      proxy.cut();
      expect(await eventually(async () => !(await check()).ready, 5000, 50)).toBe(true);
      expect(await check()).toEqual({ ready: false, checks: { database: 'ok', migrations: 'ok', changeListener: 'disconnected', tls: 'ok' } });
      proxy.restore();
      expect(await eventually(async () => (await check()).ready, 5000, 50)).toBe(true);
    } finally {
      await direct.end();
      await lookup.stop();
      await proxy.stop();
    }
  });

  it('reports missing migrations', async () => {
    const fresh = await createTestDatabase();
    const pool = createPool({ connectionString: fresh.url, max: 1, connectTimeoutMs: 1000, statementTimeoutMs: 1000, applicationName: 'atdirectory-readiness', logger: pino({ level: 'silent' }) });
    try {
      await fresh.pool.query("DELETE FROM migrations WHERE id = (SELECT max(id) FROM migrations)");
      const check = readinessCheck({ pool, listening: async () => true, tls: () => true });
      expect((await check()).checks.migrations).toMatch(/^\d+ of \d+ migrations applied$/);
    } finally {
      await pool.end();
      await fresh.drop();
    }
  });
});

