import { generateKeyPairSync } from 'node:crypto';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignatureVerifier, SigningKey } from '../../src/feed/signing.js';
import { ApiKeyStore } from '../../src/store/api-keys.js';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { eventually } from '../support/lookup-harness.js';
import { scrape } from '../support/metrics.js';
import { lookupOnce } from '../support/raw-client.js';
import { spawnServe, type ServeProcess } from '../support/serve-process.js';
import { TamperingProxy } from '../support/tampering-proxy.js';

// Three `serve` processes on loopback, as docs/federation.md draws them: a central directory (on
// the test PostgreSQL), a private directory that answers its own atsigns and forwards the rest to
// the central's port 64, and a mirror on its own embedded PostgreSQL that follows the central's
// signed feed through a proxy able to tamper with it.

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function api(port: number, token?: string) {
  return (method: string, path: string, body?: unknown) =>
    fetch(`http://127.0.0.1:${port}${path}`, {
      method,
      headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
}

describe('federation: a central, a private directory with it upstream, and a mirror of it', () => {
  const directories: string[] = [];
  let centralDatabase: TestDatabase;
  let privateDatabase: TestDatabase;
  let central: ServeProcess;
  let privateDirectory: ServeProcess;
  let mirror: ServeProcess;
  let proxy: TamperingProxy & { url: string };
  let centralArgs: string[];
  let mirrorArgs: string[];
  let mirrorEnv: Record<string, string>;
  let keyId: string;
  let publicKey: string;
  let centralAdmin: ReturnType<typeof api>;
  let mirrorAdmin: ReturnType<typeof api>;

  const centralPut = async (atsign: string, host: string, port: number) => expect((await centralAdmin('PUT', `/v1/atsigns/${atsign}`, { host, port })).status).toBeLessThan(300);
  const mirrorAnswers = (atsign: string, expected: string, timeoutMs = 5000) => eventually(async () => (await lookupOnce(mirror.port, atsign)) === expected, timeoutMs, 25);
  const mirrorMetric = async (name: string) => (await scrape(mirror.opsPort!)).get(name) ?? 0;
  const readyz = async () => (await (await fetch(`http://127.0.0.1:${mirror.opsPort}/readyz`)).json()) as { ready: boolean; checks: Record<string, string> };

  beforeAll(async () => {
    const temporary = async (name: string) => {
      // Under /tmp and world-readable: as root, the embedded PostgreSQL runs as `postgres`.
      const directory = await mkdtemp(join(tmpdir(), `atdirectory-test-${name}-`));
      await chmod(directory, 0o755);
      directories.push(directory);
      return directory;
    };
    [centralDatabase, privateDatabase] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    const centralDir = await temporary('central');
    // Fixed ports, so that the central comes back where the others look for it.
    const [lookupPort, adminPort] = [await freePort(), await freePort()];
    centralArgs = ['--lookup-port', String(lookupPort), '--admin-port', String(adminPort), '--data-dir', centralDir];
    central = await spawnServe(centralArgs, { DATABASE_URL: centralDatabase.url });
    const keys = new ApiKeyStore(centralDatabase.pool);
    centralAdmin = api(adminPort, (await keys.create('ops', 'admin')).token);
    ({ keyId, publicKey } = (await (await fetch(`http://127.0.0.1:${adminPort}/v1/identity`)).json()) as { keyId: string; publicKey: string });

    const upstreamArgs = ['--upstream', `127.0.0.1:${lookupPort}`, '--upstream-ca', join(centralDir, 'tls', 'cert.pem')];
    privateDirectory = await spawnServe(upstreamArgs, { DATABASE_URL: privateDatabase.url });

    proxy = await TamperingProxy.start(`http://127.0.0.1:${adminPort}`, { tampering: { atsign: 'tampered', action: 'rewrite-host', host: 'evil.example.com' } });
    // Unreachable at first: the mirror must not report ready before its first snapshot.
    proxy.hold();
    const mirrorDir = await temporary('mirror');
    mirrorArgs = ['--data-dir', mirrorDir, '--mirror', proxy.url, '--mirror-key', publicKey, '--mirror-retry', '1s'];
    mirrorEnv = { ATDIR_MIRROR_TOKEN: (await keys.create('mirror', 'read')).token };
    await centralPut('alice', 'alice.example.com', 6464);
    mirror = await spawnServe(mirrorArgs, mirrorEnv);
    // The mirror's own admin key, made in its embedded database as an operator would.
    const credentials = JSON.parse(await readFile(join(mirrorDir, 'postgres.credentials.json'), 'utf8')) as { url: string };
    const mirrorPool = new pg.Pool({ connectionString: credentials.url, max: 1 });
    try {
      mirrorAdmin = api(mirror.adminPort!, (await new ApiKeyStore(mirrorPool).create('ops', 'admin')).token);
    } finally {
      await mirrorPool.end();
    }
  });

  afterAll(async () => {
    await Promise.all([mirror?.stop(), privateDirectory?.stop(), central?.stop()]);
    await proxy?.close();
    await Promise.all([centralDatabase?.drop(), privateDatabase?.drop()]);
    await Promise.all(directories.map((directory) => rm(directory, { recursive: true, force: true })));
  });

  it('the mirror is not ready before its first snapshot, then answers what the central holds', async () => {
    expect(await readyz()).toEqual({ ready: false, checks: expect.objectContaining({ mirror: `waiting for the first snapshot of ${proxy.url}` }) });
    expect(await lookupOnce(mirror.port, 'alice')).toBe('@null\r\n@');
    proxy.release();
    expect(await mirrorAnswers('alice', '@alice.example.com:6464\r\n@')).toBe(true);
    expect(await eventually(async () => (await readyz()).ready)).toBe(true);
  });

  it('the private directory answers its own atsigns, suspensions included, and forwards the rest', async () => {
    await centralPut('shared', 'central.example.com', 6464);
    await centralPut('hidden', 'central.example.com', 6464);
    await insertRecord(privateDatabase.pool, 'shared', 'private.example.com', 7000);
    await insertRecord(privateDatabase.pool, 'local', 'private.example.com', 7001);
    await insertRecord(privateDatabase.pool, 'hidden', 'private.example.com', 7002, 'suspended');
    expect(await lookupOnce(privateDirectory.port, 'local')).toBe('@private.example.com:7001\r\n@');
    expect(await lookupOnce(privateDirectory.port, 'shared')).toBe('@private.example.com:7000\r\n@');
    expect(await lookupOnce(privateDirectory.port, 'hidden')).toBe('@null\r\n@');
    expect(await lookupOnce(privateDirectory.port, 'alice')).toBe('@alice.example.com:6464\r\n@');
    expect(await lookupOnce(privateDirectory.port, 'nobody')).toBe('@null\r\n@');
  });

  it('a write on the central answers on the mirror\'s port 64 within a second', async () => {
    const written = Date.now();
    await centralPut('bob', 'bob.example.com', 6464);
    expect(await mirrorAnswers('bob', '@bob.example.com:6464\r\n@', 1000)).toBe(true);
    expect(Date.now() - written).toBeLessThan(1000);
  });

  it('refuses a tampered feed entry, never answers it, and applies the genuine one when asked again', async () => {
    const seen = new Set<string>();
    await centralPut('tampered', 'genuine.example.com', 6464);
    expect(
      await eventually(async () => {
        const answer = await lookupOnce(mirror.port, 'tampered');
        seen.add(answer);
        return answer === '@genuine.example.com:6464\r\n@';
      }, 5000, 10),
    ).toBe(true);
    expect(proxy.tampered).toBe(1);
    expect(seen.has('@evil.example.com:6464\r\n@')).toBe(false);
    expect(await mirrorMetric(`atdirectory_mirror_changes_refused_total{source="${keyId}",reason="signature"}`)).toBe(1);
    // Never stored, so never answered by any process of the mirror.
    const history = (await (await mirrorAdmin('GET', '/v1/atsigns/tampered/history')).json()) as { items: Array<{ newValue: { host: string } | null }> };
    expect(history.items.map((item) => item.newValue?.host)).toEqual(['genuine.example.com']);
  });

  it('notices a change dropped on the way at the next one, and obtains it from the central', async () => {
    proxy.tamperWith({ atsign: 'tampered', action: 'drop' });
    expect((await centralAdmin('PATCH', '/v1/atsigns/tampered', { status: 'suspended', reason: 'phishing' })).status).toBe(200);
    expect(await eventually(() => proxy.tampered === 2)).toBe(true);
    expect(await lookupOnce(mirror.port, 'tampered')).toBe('@genuine.example.com:6464\r\n@');
    await centralPut('after-drop', 'after.example.com', 6464);
    expect(await mirrorAnswers('tampered', '@null\r\n@')).toBe(true);
    expect(await mirrorAnswers('after-drop', '@after.example.com:6464\r\n@')).toBe(true);
    expect(await mirrorMetric(`atdirectory_mirror_changes_refused_total{source="${keyId}",reason="gap"}`)).toBe(1);
    expect(mirror.logs.some((line) => line.msg.startsWith('refused data from a mirror source') && String(line.reason).endsWith('a change between them did not arrive'))).toBe(true);
  });

  it('keeps answering with the central stopped, and catches up when it is back', async () => {
    expect(await central.stop()).toBe(0);
    expect(await eventually(async () => (await mirrorMetric(`atdirectory_mirror_connected{source="${keyId}"}`)) === 0)).toBe(true);
    expect(await lookupOnce(mirror.port, 'alice')).toBe('@alice.example.com:6464\r\n@');
    // A registrar writing straight into the central's database while its process is down.
    await insertRecord(centralDatabase.pool, 'carol', 'carol.example.com', 6464);
    const status = (await (await mirrorAdmin('GET', '/v1/mirror')).json()) as { sources: Array<{ connected: boolean; lastError: string | null }> };
    expect(status.sources[0]).toMatchObject({ connected: false, lastError: expect.any(String) });

    central = await spawnServe(centralArgs, { DATABASE_URL: centralDatabase.url });
    expect(await mirrorAnswers('carol', '@carol.example.com:6464\r\n@', 5000)).toBe(true);
    expect(await mirrorMetric(`atdirectory_mirror_connected{source="${keyId}"}`)).toBe(1);
  });

  it('blocks an atsign and the whole source, with exact answers', async () => {
    const put = await mirrorAdmin('PUT', '/v1/blocks/atsigns/alice', { reason: 'impersonation' });
    expect(put.status).toBe(201);
    expect(await mirrorAnswers('alice', '@null\r\n@')).toBe(true);
    expect(await lookupOnce(mirror.port, 'bob')).toBe('@bob.example.com:6464\r\n@');
    expect((await mirrorAdmin('DELETE', '/v1/blocks/atsigns/alice')).status).toBe(204);
    expect(await mirrorAnswers('alice', '@alice.example.com:6464\r\n@')).toBe(true);

    expect((await mirrorAdmin('PUT', `/v1/blocks/sources/${keyId}`, { reason: 'audit' })).status).toBe(201);
    expect(await mirrorAnswers('alice', '@null\r\n@')).toBe(true);
    expect(await mirrorAnswers('bob', '@null\r\n@')).toBe(true);
    expect((await mirrorAdmin('DELETE', `/v1/blocks/sources/${keyId}`)).status).toBe(204);
    expect(await mirrorAnswers('alice', '@alice.example.com:6464\r\n@')).toBe(true);
    expect(await mirrorAnswers('bob', '@bob.example.com:6464\r\n@')).toBe(true);
  });

  it('refuses registrar writes with mirror-read-only', async () => {
    const response = await mirrorAdmin('PUT', '/v1/atsigns/dave', { host: 'dave.example.com', port: 6464 });
    expect(response.status).toBe(409);
    expect(await response.json()).toEqual({
      type: '/problems/mirror-read-only',
      title: 'Mirror is read-only',
      status: 409,
      detail: 'this directory mirrors others and takes no registrar writes; write to its source',
      instance: '/v1/atsigns/dave',
    });
  });

  it('restarted with a --mirror-key the central does not sign with, refuses its snapshot and answers what it holds', async () => {
    expect(await mirror.stop()).toBe(0);
    const wrongKey = SigningKey.fromPem(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), 'another key').publicKey;
    mirror = await spawnServe(mirrorArgs.map((arg) => (arg === publicKey ? wrongKey : arg)), mirrorEnv);
    const refused = `atdirectory_mirror_snapshots_total{source="${new SignatureVerifier(wrongKey).keyId}",result="refused"}`;
    expect(await eventually(async () => (await mirrorMetric(refused)) >= 1)).toBe(true);
    expect(await lookupOnce(mirror.port, 'alice')).toBe('@alice.example.com:6464\r\n@');
    // It holds the records of an earlier snapshot of this source, so it stays ready.
    expect((await readyz()).ready).toBe(true);
    expect(mirror.logs.some((line) => line.msg.startsWith('refused data from a mirror source') && String(line.reason).includes('not the --mirror-key given'))).toBe(true);
  });
});
