/**
 * The coherence target: from an admin write on one process to the new answer on another process's
 * lookup port (design.md: p99 < 100 ms). Two `serve` processes share the database; each round moves
 * one atsign through process A's admin API and asks process B for it back to back, on a kept-open
 * connection, until B answers the new host. Loopback only.
 *
 *   npx tsx loadtest/propagation.ts --database-url postgres://… [--writes 200] [--json]
 *
 * Times run from sending the PUT, so the HTTP request and the transaction count against the target.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { parseArgs } from 'node:util';
import { developmentCertificate } from '../src/tls/certificate.js';
import { LatencyHistogram } from './lib/histogram.js';
import { createAdminKey, ensureBuilt, startAtdirectory } from './lib/servers.js';

const { values } = parseArgs({ options: { 'database-url': { type: 'string' }, writes: { type: 'string', default: '200' }, json: { type: 'boolean', default: false } } });
const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL;
const writes = Number(values.writes);
if (!databaseUrl || !(writes >= 1)) throw new Error('usage: npx tsx loadtest/propagation.ts --database-url URL [--writes 200] [--json]');
/** A round that has not propagated by then is reported as failed rather than waited for. */
const GIVE_UP_MS = 10_000;

/** A kept-open lookup connection asking one key at a time. */
async function lookupClient(port: number): Promise<{ ask(key: string): Promise<string>; close(): void }> {
  const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => socket.once('data', () => resolve()).once('error', reject));
  let pending: ((answer: string) => void) | undefined;
  let buffered = '';
  socket.setEncoding('utf8').on('data', (data: string) => {
    buffered += data;
    if (!buffered.endsWith('@')) return;
    const answer = buffered.slice(0, -1).trim();
    buffered = '';
    pending?.(answer);
  });
  return {
    ask: (key) => new Promise((resolve) => ((pending = resolve), socket.write(`${key}\n`))),
    close: () => socket.end('@exit\n'),
  };
}

await ensureBuilt();
const dir = await mkdtemp(join(tmpdir(), 'atdirectory-propagation-'));
const certificate = await developmentCertificate(dir);
const start = (name: string) => startAtdirectory({ databaseUrl, certPath: certificate.certPath, keyPath: certificate.keyPath, dataDir: join(dir, name), extra: ['--admin-rate-limit', '1000000'] });
const [writer, reader] = await Promise.all([start('a'), start('b')]);
try {
  const headers = { authorization: `Bearer ${await createAdminKey(databaseUrl, 'propagation')}`, 'content-type': 'application/json' };
  const url = `http://127.0.0.1:${writer.adminPort}/v1/atsigns/propagation`;
  const put = async (host: string) => {
    const response = await fetch(url, { method: 'PUT', headers, body: JSON.stringify({ host, port: 6464 }) });
    if (!response.ok) throw new Error(`PUT ${url}: ${response.status} ${await response.text()}`);
  };
  await put('start.example.com');
  const client = await lookupClient(reader.port);
  const latency = new LatencyHistogram();
  let failed = 0;
  for (let round = 0; round < writes; round++) {
    // Cached on the reader first, so the round measures a change reaching a warm cache.
    await client.ask('propagation');
    const expected = `round${round}.example.com:6464`;
    const sent = performance.now();
    const written = put(`round${round}.example.com`);
    let answered = (await client.ask('propagation')) === expected;
    while (!answered && performance.now() - sent <= GIVE_UP_MS) answered = (await client.ask('propagation')) === expected;
    // Timed when the reader answered, which may be before the writer's response has arrived.
    if (answered) latency.record(performance.now() - sent);
    else failed++;
    await written;
  }
  client.close();
  const ms = (p: number) => Math.round(latency.percentile(p) * 1000) / 1000;
  const report = { date: new Date().toISOString(), writes, failed, latencyMs: { p50: ms(50), p90: ms(90), p99: ms(99), max: Math.round(latency.max * 1000) / 1000 } };
  process.stdout.write(
    values.json
      ? `${JSON.stringify(report)}\n`
      : `${writes} writes on one process, answered by another: p50 ${report.latencyMs.p50} ms  p90 ${report.latencyMs.p90} ms  p99 ${report.latencyMs.p99} ms  max ${report.latencyMs.max} ms  not propagated within ${GIVE_UP_MS / 1000} s: ${failed}\n`,
  );
} finally {
  await Promise.all([writer.stop(), reader.stop()]);
  await rm(dir, { recursive: true, force: true });
}
