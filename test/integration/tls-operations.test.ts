import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomBytes, X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { developmentCertificate, type CertificatePair } from '../../src/tls/certificate.js';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { eventually } from '../support/lookup-harness.js';
import { RawClient } from '../support/raw-client.js';
import { spawnServe, type ServeProcess } from '../support/serve-process.js';

let database: TestDatabase;
let dir: string;
let pairA: CertificatePair;
let pairB: CertificatePair;

beforeAll(async () => {
  database = await createTestDatabase();
  await insertRecord(database.pool, 'alice', 'alice.example.com', 6464);
  dir = await mkdtemp(join(tmpdir(), 'atdirectory-tls-'));
  // Two different self-signed pairs (each made in its own directory).
  pairA = await developmentCertificate(join(dir, 'a'));
  pairB = await developmentCertificate(join(dir, 'b'));
});

afterAll(async () => {
  await database?.drop();
  await rm(dir, { recursive: true, force: true });
});

/** The fingerprint of the certificate a new connection is served. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()!.fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

const fingerprint = (pair: CertificatePair) => new X509Certificate(pair.cert).fingerprint256;

async function install(pair: CertificatePair, certPath: string, keyPath: string): Promise<void> {
  await copyFile(pair.keyPath, keyPath);
  await copyFile(pair.certPath, certPath);
}

describe('certificate rotation', () => {
  let server: ServeProcess;
  let certPath: string;
  let keyPath: string;

  beforeAll(async () => {
    certPath = join(dir, 'served-cert.pem');
    keyPath = join(dir, 'served-key.pem');
    await install(pairA, certPath, keyPath);
    server = await spawnServe(['--database-url', database.url, '--data-dir', dir, '--tls-cert', certPath, '--tls-key', keyPath, '--tls-reload-interval', '100ms', '--workers', '2']);
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('serves a changed pair to new handshakes without dropping established connections', async () => {
    expect(await servedFingerprint(server.port)).toBe(fingerprint(pairA));
    const established = await RawClient.prompted(server.port);
    await install(pairB, certPath, keyPath);
    // Every worker reloads; new connections land on either.
    expect(await eventually(async () => (await Promise.all([1, 2, 3, 4].map(() => servedFingerprint(server.port)))).every((served) => served === fingerprint(pairB)), 5000, 100)).toBe(true);
    expect(await established.ask('alice')).toBe('alice.example.com:6464');
    established.close();
    expect(server.logs.filter((line) => line.msg === 'TLS certificate reloaded')).toHaveLength(2);
  });

  it('refuses a bad new pair, says so, and keeps serving the previous one', async () => {
    const before = await servedFingerprint(server.port);
    // A key that does not belong to the certificate.
    await copyFile(pairA.keyPath, keyPath);
    expect(await eventually(() => server.logs.filter((line) => line.msg === 'new TLS certificate refused; still serving the previous one').length === 2, 5000, 50)).toBe(true);
    const refusal = server.logs.find((line) => line.msg === 'new TLS certificate refused; still serving the previous one') as unknown as { level: number; err: { message: string } };
    expect(refusal.level).toBe(50);
    expect(refusal.err.message).toBe(`--tls-key ${keyPath} does not belong to the certificate in --tls-cert ${certPath}`);
    expect(await servedFingerprint(server.port)).toBe(before);
    const client = await RawClient.prompted(server.port);
    expect(await client.ask('alice')).toBe('alice.example.com:6464');
    client.close();
  });
});

describe('certificate chains', () => {
  const hasOpenssl = (() => {
    try {
      execFileSync('openssl', ['version']);
      return true;
    } catch {
      return false;
    }
  })();

  it.skipIf(!hasOpenssl)('serves an RSA leaf with its intermediate, verifiable from the root alone', async () => {
    const at = (name: string) => join(dir, `rsa-${name}`);
    const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('root.key'), '-out', at('root.pem'), '-days', '2', '-subj', '/CN=test root', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign');
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('mid.key'), '-out', at('mid.csr'), '-subj', '/CN=test intermediate');
    await writeFile(at('mid.ext'), 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n');
    openssl('x509', '-req', '-in', at('mid.csr'), '-CA', at('root.pem'), '-CAkey', at('root.key'), '-CAcreateserial', '-out', at('mid.pem'), '-days', '2', '-extfile', at('mid.ext'));
    openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', at('leaf.key'), '-out', at('leaf.csr'), '-subj', '/CN=root.test');
    await writeFile(at('leaf.ext'), 'subjectAltName=DNS:root.test,IP:127.0.0.1\n');
    openssl('x509', '-req', '-in', at('leaf.csr'), '-CA', at('mid.pem'), '-CAkey', at('mid.key'), '-CAcreateserial', '-out', at('leaf.pem'), '-days', '2', '-extfile', at('leaf.ext'));
    await writeFile(at('chain.pem'), Buffer.concat([await readFile(at('leaf.pem')), await readFile(at('mid.pem'))]));

    const server = await spawnServe(['--database-url', database.url, '--data-dir', dir, '--tls-cert', at('chain.pem'), '--tls-key', at('leaf.key')]);
    try {
      const answer = await new Promise<string>((resolve, reject) => {
        // Verified as an SDK verifies: against the root only, for the address it dialled.
        const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca: [readFileSync(at('root.pem'))] }, () => socket.write('alice\n'));
        let text = '';
        socket.on('data', (chunk: Buffer) => {
          text += chunk;
          if (text.endsWith('\r\n@')) {
            socket.destroy();
            resolve(text);
          }
        });
        socket.once('error', reject);
      });
      expect(answer).toBe('@alice.example.com:6464\r\n@');
    } finally {
      await server.stop();
    }
  });
});

describe('session tickets', () => {
  /** Connects `count` times in a row, each time offering the ticket from the one before. */
  async function resumptions(port: number, count: number): Promise<boolean[]> {
    const resumed: boolean[] = [];
    let session: Buffer | undefined;
    for (let i = 0; i < count; i++) {
      const client = await RawClient.connect(port, '127.0.0.1', undefined, session);
      await client.waitForReads(1);
      resumed.push(client.socket.isSessionReused());
      // A TLS 1.3 ticket follows the handshake (a resumed session may not get a new one).
      await eventually(() => client.session !== undefined, session ? 200 : 2000);
      session = client.session ?? session;
      client.close();
    }
    return resumed;
  }

  it('resume across workers with a shared --tls-ticket-keys file, and follow it when it changes', async () => {
    const keysPath = join(dir, 'ticket-keys');
    await writeFile(keysPath, randomBytes(48).toString('base64') + '\n');
    const server = await spawnServe(['--database-url', database.url, '--data-dir', dir, '--workers', '2', '--tls-ticket-keys', keysPath, '--tls-reload-interval', '100ms']);
    try {
      expect(await resumptions(server.port, 6)).toEqual([false, true, true, true, true, true]);
      const client = await RawClient.connect(server.port);
      await client.waitForReads(1);
      await eventually(() => client.session !== undefined, 2000);
      const oldTicket = client.session!;
      client.close();
      await writeFile(keysPath, randomBytes(48));
      expect(await eventually(() => server.logs.filter((line) => line.msg === 'TLS ticket keys reloaded').length === 2, 5000, 50)).toBe(true);
      // A ticket sealed with the old keys no longer opens a session.
      const stale = await RawClient.connect(server.port, '127.0.0.1', undefined, oldTicket);
      expect(stale.socket.isSessionReused()).toBe(false);
      stale.close();
    } finally {
      await server.stop();
    }
  });

  it('resume across the workers of one process group without a file', async () => {
    const server = await spawnServe(['--database-url', database.url, '--data-dir', dir, '--workers', '2']);
    try {
      expect(await resumptions(server.port, 6)).toEqual([false, true, true, true, true, true]);
    } finally {
      await server.stop();
    }
  });

  it('refuses to start with a ticket-key file of the wrong size, naming the setting', async () => {
    const keysPath = join(dir, 'short-keys');
    await writeFile(keysPath, randomBytes(32));
    await expect(spawnServe(['--database-url', database.url, '--data-dir', dir, '--tls-ticket-keys', keysPath])).rejects.toThrow(
      `--tls-ticket-keys ${keysPath} must hold exactly 48 bytes (raw, base64 or hex); it holds 32`,
    );
  });
});
