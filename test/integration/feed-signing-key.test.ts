import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SigningKey } from '../../src/feed/signing.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { scrape } from '../support/metrics.js';
import { spawnServe, type ServeProcess } from '../support/serve-process.js';

// `serve` loads the feed's signing key, or generates one at first start and keeps it.

let database: TestDatabase;
let dataDir: string;

beforeAll(async () => {
  database = await createTestDatabase();
  dataDir = await mkdtemp(join(tmpdir(), 'atdirectory-signing-'));
});

afterAll(async () => {
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

async function identityOf(server: ServeProcess): Promise<{ algorithm: string; publicKey: string; keyId: string }> {
  const response = await fetch(`http://127.0.0.1:${server.adminPort}/v1/identity`);
  expect(response.status).toBe(200);
  return (await response.json()) as { algorithm: string; publicKey: string; keyId: string };
}

async function withServe<T>(args: string[], use: (server: ServeProcess) => Promise<T>): Promise<T> {
  const server = await spawnServe(['--database-url', database.url, '--data-dir', dataDir, '--no-migrate', ...args]);
  try {
    return await use(server);
  } finally {
    await server.stop();
  }
}

describe('signing key at serve start', () => {
  it('generates a key under --data-dir (mode 0600) at first start and keeps it across restarts', async () => {
    const first = await withServe([], async (server) => {
      expect(server.logs.find((line) => line.msg.startsWith('generated the change-feed signing key'))).toBeDefined();
      const metrics = await scrape(server.opsPort!);
      expect(metrics.has('atdirectory_feed_settled_version')).toBe(true);
      expect(metrics.has('atdirectory_db_pool_connections{state="idle",pool="snapshot"}')).toBe(true);
      return identityOf(server);
    });
    expect((await stat(join(dataDir, 'signing-key.pem'))).mode & 0o777).toBe(0o600);
    const second = await withServe([], async (server) => {
      expect(server.logs.find((line) => line.msg === 'change-feed signing key loaded')).toBeDefined();
      return identityOf(server);
    });
    expect(second).toEqual(first);
    expect(first.algorithm).toBe('Ed25519');
  });

  it('signs with the key given by --signing-key', async () => {
    const path = join(dataDir, 'given.pem');
    await writeFile(path, generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
    const given = (await SigningKey.load(path, { generate: false })).key;
    const identity = await withServe(['--signing-key', path], identityOf);
    expect(identity).toEqual({ algorithm: 'Ed25519', publicKey: given.publicKey, keyId: given.keyId });
  });

  it('refuses to start when --signing-key is missing or not an Ed25519 key, rather than generate one', async () => {
    await expect(spawnServe(['--database-url', database.url, '--data-dir', dataDir, '--no-migrate', '--signing-key', join(dataDir, 'absent.pem')], {}, { startTimeoutMs: 20_000 })).rejects.toThrow(
      /cannot read the signing key .*absent\.pem/,
    );
    const ecdsa = join(dataDir, 'ecdsa.pem');
    await writeFile(ecdsa, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
    await expect(spawnServe(['--database-url', database.url, '--data-dir', dataDir, '--no-migrate', '--signing-key', ecdsa], {}, { startTimeoutMs: 20_000 })).rejects.toThrow(
      /is a ec key; the feed is signed with Ed25519/,
    );
  });
});
