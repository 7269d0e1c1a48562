/**
 * autocannon against the admin API (authenticated GET and PUT of one atsign), and against a bare
 * Fastify server answering the same routes with constants, in the same run. Loopback only.
 *
 *   npx tsx loadtest/admin.ts --database-url postgres://… [--duration 10] [--connections 20] [--json]
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import Fastify from 'fastify';
import { developmentCertificate } from '../src/tls/certificate.js';
import { createAdminKey, ensureBuilt, startAtdirectory } from './lib/servers.js';

const { values } = parseArgs({ options: { 'database-url': { type: 'string' }, duration: { type: 'string', default: '10' }, connections: { type: 'string', default: '20' }, json: { type: 'boolean', default: false } } });
const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('usage: npx tsx loadtest/admin.ts --database-url URL [--duration 10] [--connections 20] [--json]');
const duration = Number(values.duration);
const connections = Number(values.connections);

const RECORD = { host: 'bench.example.com', port: 6464 };

interface Figures {
  requestsPerSecond: number;
  latencyMs: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}

async function cannon(url: string, method: 'GET' | 'PUT', headers: Record<string, string>): Promise<Figures> {
  const result = await autocannon({ url, method, headers, body: method === 'PUT' ? JSON.stringify(RECORD) : undefined, connections, duration });
  return { requestsPerSecond: Math.round(result.requests.average), latencyMs: { p50: result.latency.p50, p99: result.latency.p99 }, non2xx: result.non2xx, errors: result.errors };
}

await ensureBuilt();
const dir = await mkdtemp(join(tmpdir(), 'atdirectory-admin-bench-'));
const certificate = await developmentCertificate(dir);
const server = await startAtdirectory({ databaseUrl, certPath: certificate.certPath, keyPath: certificate.keyPath, dataDir: dir, extra: ['--admin-rate-limit', '1000000'] });
const bare = Fastify();
bare.get('/v1/atsigns/:atsign', async () => ({ atsign: 'bench', ...RECORD, status: 'active', version: 1 }));
bare.put('/v1/atsigns/:atsign', async (request) => ({ atsign: 'bench', ...(request.body as object), status: 'active', version: 1 }));
try {
  const auth = { authorization: `Bearer ${await createAdminKey(databaseUrl, 'bench')}`, 'content-type': 'application/json' };
  const api = `http://127.0.0.1:${server.adminPort}/v1/atsigns/bench`;
  await fetch(api, { method: 'PUT', headers: auth, body: JSON.stringify(RECORD) });
  await bare.listen({ host: '127.0.0.1', port: 0 });
  const bareUrl = `http://127.0.0.1:${(bare.server.address() as { port: number }).port}/v1/atsigns/bench`;
  const figures = {
    get: { atdirectory: await cannon(api, 'GET', auth), bare: await cannon(bareUrl, 'GET', auth) },
    put: { atdirectory: await cannon(api, 'PUT', auth), bare: await cannon(bareUrl, 'PUT', auth) },
  };
  const ratio = (route: 'get' | 'put') => Math.round((figures[route].atdirectory.requestsPerSecond / figures[route].bare.requestsPerSecond) * 1000) / 1000;
  const report = { date: new Date().toISOString(), connections, seconds: duration, ...figures, ratio: { get: ratio('get'), put: ratio('put') } };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    for (const route of ['get', 'put'] as const) {
      for (const name of ['atdirectory', 'bare'] as const) {
        const f = figures[route][name];
        process.stdout.write(`${route.toUpperCase().padEnd(4)}${name.padEnd(12)} ${String(f.requestsPerSecond).padStart(7)}/s  p50 ${f.latencyMs.p50} ms  p99 ${f.latencyMs.p99} ms  non-2xx ${f.non2xx}  errors ${f.errors}\n`);
      }
      process.stdout.write(`    atdirectory/bare ${ratio(route)}\n`);
    }
  }
} finally {
  await bare.close();
  await server.stop();
  await rm(dir, { recursive: true, force: true });
}
