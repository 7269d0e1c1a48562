import { mkdtemp, rm } from 'node:fs/promises';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { developmentCertificate } from '../../src/tls/certificate.js';
import { startTestAdmin, type TestAdmin } from '../support/admin-harness.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { PostgresProxy } from '../support/postgres-proxy.js';

let database: TestDatabase;
let dataDir: string;

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), 'atdirectory-test-'));
});

afterAll(async () => {
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('database unreachable', () => {
  it('fails writes fast with 503 problem+json and writes nothing; recovers by itself', async () => {
    const proxy = await PostgresProxy.start(database.url);
    const admin = await startTestAdmin(proxy.url);
    try {
      const token = await admin.key('admin');
      expect((await admin.request('PUT', '/v1/atsigns/before', { token, body: { host: 'b.example', port: 1 } })).status).toBe(201);
      proxy.cut();
      const started = performance.now();
      const refused = await admin.request('PUT', '/v1/atsigns/during', { token, body: { host: 'd.example', port: 1 } });
      expect(performance.now() - started).toBeLessThan(3000);
      expect(refused.status).toBe(503);
      expect(await refused.json()).toMatchObject({ type: '/problems/database-unavailable', status: 503 });
      proxy.restore();
      const { rows } = await database.pool.query("SELECT count(*)::int AS n FROM atsigns WHERE atsign = 'during'");
      expect(rows[0].n).toBe(0);
      expect((await admin.request('PUT', '/v1/atsigns/after', { token, body: { host: 'a.example', port: 1 } })).status).toBe(201);
    } finally {
      await admin.stop();
      await proxy.stop();
    }
  });
});

describe('?verify=true', () => {
  let server: tls.Server;
  let port: number;
  let admin: TestAdmin;
  let token: string;

  beforeAll(async () => {
    const certificate = await developmentCertificate(dataDir);
    server = tls.createServer({ cert: certificate.cert, key: certificate.key }, (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
    admin = await startTestAdmin(database.url, { verifyCa: certificate.cert });
    token = await admin.key('admin');
  });

  afterAll(async () => {
    await admin?.stop();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('saves when host:port answers TLS with a certificate valid for host', async () => {
    const response = await admin.request('PUT', '/v1/atsigns/verified?verify=true', { token, body: { host: 'localhost', port } });
    expect(response.status).toBe(201);
  });

  it('checks a move too', async () => {
    await admin.request('PUT', '/v1/atsigns/movable', { token, body: { host: 'localhost', port } });
    const refused = await admin.request('PATCH', '/v1/atsigns/movable?verify=true', { token, body: { port: 1 } });
    expect(refused.status).toBe(422);
    const moved = await admin.request('PATCH', '/v1/atsigns/movable?verify=true', { token, body: { host: '127.0.0.1' } });
    expect(await moved.json()).toMatchObject({ host: '127.0.0.1' });
  });

  it.each([
    ['nothing listens on the port', () => ({ host: 'localhost', port: 1 }), 'ECONNREFUSED'],
    ['the certificate does not name the host', () => ({ host: 'localhost.localdomain', port }), ''],
  ])('refuses, saving nothing, when %s', async (_name, target, detail) => {
    const response = await admin.request('PUT', '/v1/atsigns/typo?verify=true', { token, body: target() });
    expect(response.status).toBe(422);
    const body = (await response.json()) as { type: string; detail: string };
    expect(body.type).toBe('/problems/verify-failed');
    expect(body.detail).toContain(detail);
    expect(body.detail).toContain('nothing was saved');
    expect((await admin.request('GET', '/v1/atsigns/typo', { token })).status).toBe(404);
  });

  it('refuses a certificate it does not trust', async () => {
    const untrusting = await startTestAdmin(database.url);
    try {
      const key = await untrusting.key('admin');
      const response = await untrusting.request('PUT', '/v1/atsigns/selfsigned?verify=true', { token: key, body: { host: 'localhost', port } });
      expect(response.status).toBe(422);
      expect(((await response.json()) as { detail: string }).detail).toMatch(/self[- ]signed/);
    } finally {
      await untrusting.stop();
    }
  });
});
