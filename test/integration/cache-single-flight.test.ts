import { afterAll, beforeAll, expect, it } from 'vitest';
import { pino } from 'pino';
import { AnswerCache } from '../../src/directory/cache.js';
import type { DirectoryRecord, RecordSource } from '../../src/directory/record.js';
import { DirectoryResolver } from '../../src/directory/resolver.js';
import { LookupServer } from '../../src/lookup/server.js';
import { createPool } from '../../src/store/pool.js';
import { PostgresRecordSource } from '../../src/store/records.js';
import { developmentCertificate } from '../../src/tls/certificate.js';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { RawClient } from '../support/raw-client.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The real store, counting the reads that reach it. */
class CountingSource implements RecordSource {
  reads = 0;
  constructor(private readonly inner: RecordSource) {}
  findRecord(atsign: string): Promise<DirectoryRecord | null> {
    this.reads++;
    return this.inner.findRecord(atsign);
  }
}

let database: TestDatabase;
let server: LookupServer;
let source: CountingSource;
let pool: ReturnType<typeof createPool>;
let dataDir: string;

beforeAll(async () => {
  database = await createTestDatabase();
  await insertRecord(database.pool, 'dave', 'dave.example.com', 6464);
  const logger = pino({ level: 'silent' });
  pool = createPool({ connectionString: database.url, max: 10, connectTimeoutMs: 3000, statementTimeoutMs: 2000, applicationName: 'test', logger });
  source = new CountingSource(new PostgresRecordSource(pool));
  const cache = new AnswerCache({ maxEntries: 100, negativeMaxEntries: 100, ttl: 60_000, negativeTtl: 60_000, maxStale: 0 });
  const resolver = new DirectoryResolver({ source, cache, onSourceError: () => undefined });
  dataDir = await mkdtemp(join(tmpdir(), 'atdirectory-test-'));
  const certificate = await developmentCertificate(dataDir);
  server = new LookupServer(
    {
      host: '127.0.0.1',
      port: 0,
      cert: certificate.cert,
      key: certificate.key,
      handshakeTimeoutMs: 5000,
      idleTimeoutMs: 60_000,
      admission: { maxConnections: 0, maxConnectionsPerClient: 0, clientRate: 0, clientBurst: 1, ipv6PrefixLength: 64, overloadDelayMs: 0 },
      connection: { maxLineLength: 255, missDelayFrom: 2, missDelayMs: 3000, missCloseAt: 3, missWindowMs: 60_000, requestTimeoutMs: 10_000, writeTimeoutMs: 30_000 },
      logger,
    },
    resolver,
  );
  await server.listen();
});

afterAll(async () => {
  await server?.close(1000);
  await pool?.end();
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

it('100 concurrent lookups of one uncached atsign cause one database read', async () => {
  const clients = await Promise.all(Array.from({ length: 100 }, () => RawClient.connect(server.address.port)));
  await Promise.all(clients.map((client) => client.waitForReads(1)));
  for (const client of clients) client.send('dave\n');
  const expected = '@dave.example.com:6464\r\n@';
  const answers = await Promise.all(clients.map((client) => client.waitForText(expected)));
  expect(answers).toEqual(Array(100).fill(expected));
  expect(source.reads).toBe(1);

  for (const client of clients) client.send('DAVE\n');
  await Promise.all(clients.map((client) => client.waitForText(expected + expected.slice(1))));
  expect(source.reads).toBe(1);
  for (const client of clients) client.close();
});

it('100 concurrent lookups of one unknown atsign cause one read, and the miss is cached', async () => {
  const clients = await Promise.all(Array.from({ length: 100 }, () => RawClient.connect(server.address.port)));
  await Promise.all(clients.map((client) => client.waitForReads(1)));
  const before = source.reads;
  for (const client of clients) client.send('nobody\n');
  await Promise.all(clients.map((client) => client.waitForText('@null\r\n@')));
  expect(source.reads - before).toBe(1);
  for (const client of clients) client.close();
});
