import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { eventually } from '../support/lookup-harness.js';
import { deltas, scrape } from '../support/metrics.js';
import { lookupOnce } from '../support/raw-client.js';
import { spawnServe, type ServeProcess } from '../support/serve-process.js';

let database: TestDatabase;
let dataDir: string;
let server: ServeProcess;

beforeAll(async () => {
  database = await createTestDatabase();
  await insertRecord(database.pool, 'alice', 'alice.example.com', 6464);
  dataDir = await mkdtemp(join(tmpdir(), 'atdirectory-test-'));
  server = await spawnServe(['--database-url', database.url, '--data-dir', dataDir, '--workers', '2']);
});

afterAll(async () => {
  await server?.stop();
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

const workerPids = () => new Set(server.logs.filter((line) => line.role === 'worker').map((line) => line.pid as number));

it('serves lookups from every worker, each following changes', async () => {
  expect(server.logs.find((line) => line.msg.startsWith('atdirectory serving lookups'))).toMatchObject({ lookup: { workers: 2 } });
  for (let i = 0; i < 10; i++) expect(await lookupOnce(server.port, 'alice')).toBe('@alice.example.com:6464\r\n@');
  await database.pool.query("UPDATE atsigns SET port = 7000 WHERE atsign = 'alice'");
  expect(await eventually(async () => (await lookupOnce(server.port, 'alice')) === '@alice.example.com:7000\r\n@', 2000)).toBe(true);
  // Round-robin spreads connections; every worker must have applied the change.
  for (let i = 0; i < 10; i++) expect(await lookupOnce(server.port, 'alice')).toBe('@alice.example.com:7000\r\n@');
  expect(workerPids().size).toBe(2);
});

it('aggregates every worker into one scrape, and is ready only when every worker is', async () => {
  const before = await scrape(server.opsPort!);
  for (let i = 0; i < 20; i++) await lookupOnce(server.port, 'alice');
  const after = await scrape(server.opsPort!);
  expect(deltas(before, after, ['atdirectory_lookups_total{result="found"}', 'atdirectory_connections_total'])).toEqual({
    'atdirectory_lookups_total{result="found"}': 20,
    atdirectory_connections_total: 20,
  });
  const readyz = await fetch(`http://127.0.0.1:${server.opsPort}/readyz`);
  expect(readyz.status).toBe(200);
});

it('replaces a worker that dies', async () => {
  const [victim] = [...workerPids()];
  process.kill(victim!, 'SIGKILL');
  expect(await eventually(() => server.logs.some((line) => line.msg === 'lookup worker died; starting a replacement'), 5000)).toBe(true);
  expect(await eventually(() => workerPids().size === 3, 10_000)).toBe(true);
  for (let i = 0; i < 10; i++) expect(await lookupOnce(server.port, 'alice')).toBe('@alice.example.com:7000\r\n@');
});

it('stops every worker and exits 0 on SIGTERM', async () => {
  const pids = [...workerPids()];
  expect(await server.stop()).toBe(0);
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };
  expect(pids.filter(alive)).toEqual([]);
});
