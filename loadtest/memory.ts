/**
 * Memory targets: RSS with N cached answers, and the cost of an idle TLS connection.
 *
 *   npx tsx loadtest/seed.ts --database-url URL --count 1000000     # first
 *   npx tsx loadtest/memory.ts --database-url URL [--cached 1000000] [--idle 10000] [--settle 2] [--json]
 *
 * Warms the cache with lookups of user0 … user(N-1) (as seeded), reads the server's RSS, then opens
 * --idle TLS connections that send nothing and reads it again. Loopback only.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { developmentCertificate } from '../src/tls/certificate.js';
import { ensureBuilt, startAtdirectory } from './lib/servers.js';
import { rssBytes } from './lib/summary.js';

const { values } = parseArgs({ options: { 'database-url': { type: 'string' }, cached: { type: 'string', default: '1000000' }, idle: { type: 'string', default: '10000' }, prefix: { type: 'string', default: 'user' }, settle: { type: 'string', default: '2' }, json: { type: 'boolean', default: false } } });
const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('usage: npx tsx loadtest/memory.ts --database-url URL [--cached 1000000] [--idle 10000] [--json]');
const cached = Number(values.cached);
const idle = Number(values.idle);
const megabytes = (bytes: number) => Math.round(bytes / 1e5) / 10;

/** Looks up `keys` on `connections` kept-open connections, each taking its share in turn. */
async function warm(port: number, count: number, connections: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: connections }, () =>
      new Promise<void>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
        const send = () => (next < count ? socket.write(`${values.prefix}${next++}\n`) : socket.end('@exit\n'));
        socket.on('data', (chunk: Buffer) => chunk[chunk.length - 1] === 0x40 && send());
        socket.on('error', reject);
        socket.on('close', () => resolve());
      }),
    ),
  );
}

function openIdle(port: number, count: number): Promise<tls.TLSSocket[]> {
  return Promise.all(
    Array.from({ length: count }, () =>
      new Promise<tls.TLSSocket>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve(socket));
        socket.on('error', reject);
      }),
    ),
  );
}

// After a burst, V8 collects and gives pages back only once allocation has been quiet for a while.
const settle = () => new Promise((resolve) => setTimeout(resolve, Number(values.settle) * 1000));

/** Where the memory is, as the server reports it on /metrics (V8 heap used and reserved, off-heap buffers). */
async function memoryBreakdown(opsPort: number): Promise<{ heapUsedMB: number; heapTotalMB: number; externalMB: number }> {
  const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  const read = (name: string) => megabytes(Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)![1]));
  return { heapUsedMB: read('nodejs_heap_size_used_bytes'), heapTotalMB: read('nodejs_heap_size_total_bytes'), externalMB: read('nodejs_external_memory_bytes') };
}

await ensureBuilt();
const dir = await mkdtemp(join(tmpdir(), 'atdirectory-memory-'));
const certificate = await developmentCertificate(dir);
const start = () => startAtdirectory({ databaseUrl, certPath: certificate.certPath, keyPath: certificate.keyPath, dataDir: dir, extra: ['--cache-max-entries', String(Math.max(cached, 1))] });

/**
 * Idle connections are measured on a fresh process: after the warm-up, V8 may collect the warm-up's
 * garbage while connections open, and their cost would vanish in it.
 */
async function measureIdle(): Promise<{ empty: number; withIdle: number }> {
  const server = await start();
  const sockets: tls.TLSSocket[] = [];
  try {
    await settle();
    const empty = rssBytes(server.pid);
    // In batches, so the accept queue never overflows.
    for (let opened = 0; opened < idle; opened += 500) sockets.push(...(await openIdle(server.port, Math.min(500, idle - opened))));
    await settle();
    return { empty, withIdle: rssBytes(server.pid) };
  } finally {
    for (const socket of sockets) socket.destroy();
    await server.stop();
  }
}

async function measureCache(): Promise<{ empty: number; withCache: number; breakdown: Awaited<ReturnType<typeof memoryBreakdown>>; warmSeconds: number }> {
  const server = await start();
  try {
    await settle();
    const empty = rssBytes(server.pid);
    const warmStarted = performance.now();
    await warm(server.port, cached, 50);
    const warmSeconds = (performance.now() - warmStarted) / 1000;
    await settle();
    return { empty, withCache: rssBytes(server.pid), breakdown: await memoryBreakdown(server.opsPort!), warmSeconds };
  } finally {
    await server.stop();
  }
}

try {
  const connections = await measureIdle();
  const cache = await measureCache();
  const report = {
    date: new Date().toISOString(),
    cachedAnswers: cached,
    idleConnections: idle,
    rssMB: { empty: megabytes(cache.empty), withCache: megabytes(cache.withCache), withIdle: megabytes(connections.withIdle) },
    withCache: cache.breakdown,
    bytesPerCachedAnswer: cached > 0 ? Math.round((cache.withCache - cache.empty) / cached) : null,
    bytesPerIdleConnection: idle > 0 ? Math.round((connections.withIdle - connections.empty) / idle) : null,
    warmLookupsPerSecond: Math.round(cached / cache.warmSeconds),
  };
  process.stdout.write(
    values.json
      ? `${JSON.stringify(report)}\n`
      : `RSS ${report.rssMB.empty} MB empty, ${report.rssMB.withCache} MB with ${cached} cached answers (${report.bytesPerCachedAnswer} B each; ${JSON.stringify(cache.breakdown)}); ` +
          `a fresh process with ${idle} idle TLS connections ${report.rssMB.withIdle} MB (${report.bytesPerIdleConnection} B each); warmed at ${report.warmLookupsPerSecond} misses/s\n`,
  );
} finally {
  await rm(dir, { recursive: true, force: true });
}
