import { chmod, mkdtemp, readFile, readlink, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { lookupOnce } from '../support/raw-client.js';
import { spawnServe, type ServeProcess } from '../support/serve-process.js';

// `serve` with no database configured: a real embedded PostgreSQL under the data directory.

let dataDir: string;
let server: ServeProcess | undefined;

beforeAll(async () => {
  // Under /tmp: as root the embedded server runs as `postgres`, which must reach the directory.
  dataDir = await mkdtemp(join(tmpdir(), 'atdirectory-test-embedded-'));
  await chmod(dataDir, 0o755);
});

afterAll(async () => {
  await server?.stop();
  await rm(dataDir, { recursive: true, force: true });
});

/** The URL the README tells operators to use. */
async function embeddedUrl(): Promise<string> {
  return (JSON.parse(await readFile(join(dataDir, 'postgres.credentials.json'), 'utf8')) as { url: string }).url;
}


function postgresRunningIn(directory: string): Promise<boolean> {
  return readFile(join(directory, 'postgres', 'postmaster.pid'), 'utf8').then(
    (text) => {
      try {
        process.kill(Number(text.split('\n')[0]), 0);
        return true;
      } catch {
        return false;
      }
    },
    () => false,
  );
}

it.skipIf(process.getuid?.() !== 0)('works as an ordinary user too', async () => {
  const userDataDir = await mkdtemp(join(tmpdir(), 'atdirectory-test-embedded-user-'));
  await chmod(userDataDir, 0o777);
  try {
    const asNobody = await spawnServe(['--data-dir', join(userDataDir, 'data')], { HOME: userDataDir }, { asUser: 'nobody' });
    expect(await lookupOnce(asNobody.port, 'alice')).toBe('@null\r\n@');
    const nobody = (await stat(join(userDataDir, 'data', 'postgres'))).uid;
    expect(nobody).not.toBe(0);
    expect((await stat(join(userDataDir, 'data', 'tls', 'cert.pem'))).uid).toBe(nobody);
    expect(await asNobody.stop()).toBe(0);
    expect(await postgresRunningIn(join(userDataDir, 'data'))).toBe(false);
  } finally {
    await rm(userDataDir, { recursive: true, force: true });
  }
});

it.skipIf(process.getuid?.() !== 0)('as root, starts afresh in a data directory deleted and made again at the same unreachable path', async () => {
  // A 0700 parent: the postgres user cannot reach it, so the cluster is kept under /var/lib/atdirectory.
  const parent = await mkdtemp(join(tmpdir(), 'atdirectory-test-embedded-private-'));
  const data = join(parent, 'data');
  try {
    for (const round of [1, 2]) {
      const started = await spawnServe(['--data-dir', data]);
      expect(await lookupOnce(started.port, 'alice'), `round ${round}`).toBe('@null\r\n@');
      expect(await started.stop()).toBe(0);
      if (round === 1) await rm(data, { recursive: true, force: true });
    }
  } finally {
    // The clusters (the live one and the one moved aside) live beside each other under /var/lib.
    const cluster = await readlink(join(data, 'postgres')).catch(() => undefined);
    if (cluster) await rm(dirname(cluster), { recursive: true, force: true });
    await rm(parent, { recursive: true, force: true });
  }
});

it('starts an embedded PostgreSQL, answers rows inserted into it, and keeps them across restarts', async () => {
  server = await spawnServe(['--data-dir', dataDir]);
  const ready = server.logs.find((line) => line.msg.startsWith('atdirectory serving lookups'))!;
  expect(String(ready.database)).toContain(`embedded PostgreSQL postgres://atdirectory:***@127.0.0.1:`);
  expect(String(ready.database)).toContain(join(dataDir, 'postgres'));
  expect(ready.dataDir).toBe(dataDir);

  const database = new pg.Client({ connectionString: await embeddedUrl() });
  await database.connect();
  await database.query("INSERT INTO atsigns (atsign, host, port) VALUES ('alice', 'alice.example.com', 6464)");
  await database.end();
  expect(await lookupOnce(server.port, 'alice')).toBe('@alice.example.com:6464\r\n@');

  expect(await server.stop()).toBe(0);
  expect(await postgresRunningIn(dataDir)).toBe(false);

  server = await spawnServe(['--data-dir', dataDir]);
  expect(server.logs.some((line) => line.msg === 'creating the embedded PostgreSQL cluster')).toBe(false);
  expect(await lookupOnce(server.port, 'alice')).toBe('@alice.example.com:6464\r\n@');
  expect(await server.stop()).toBe(0);
  server = undefined;
  expect(await postgresRunningIn(dataDir)).toBe(false);
});
