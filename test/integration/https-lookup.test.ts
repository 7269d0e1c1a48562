import { X509Certificate } from 'node:crypto';
import { copyFile, mkdtemp, rm } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseCommandLine, PORT_OFF } from '../../src/config.js';
import { registry } from '../../src/ops/registry.js';
import { developmentCertificate, type CertificatePair } from '../../src/tls/certificate.js';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { eventually, startTestLookup, type TestLookup } from '../support/lookup-harness.js';
import { deltas, parseMetrics } from '../support/metrics.js';
import { PostgresProxy } from '../support/postgres-proxy.js';
import { connectTcp, lookupOnce, RawClient } from '../support/raw-client.js';
import { spawnServe } from '../support/serve-process.js';

// HTTPS lookups (docs/federation.md): a real lookup process with --https-port, real TLS, the real
// test database. Most requests use a new connection each (agent: false), as curl does, so that
// enumeration throttling only meets the tests that are about it.

const HTTPS = ['--https-port', '0', '--https-host', '127.0.0.1'];
const TEXT = 'text/plain; charset=utf-8';

let database: TestDatabase;
const running: TestLookup[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
  await insertRecord(database.pool, 'alice', 'alice.example.com', 6464);
  await insertRecord(database.pool, 'alice🛠', 'vip.ve.atsign.zone', 25000);
  await insertRecord(database.pool, 'mallory', 'mallory.example.com', 6464, 'suspended');
});

afterAll(async () => {
  await Promise.all(running.splice(0).map((lookup) => lookup.stop()));
  await database?.drop();
});

async function start(args: string[] = [], databaseUrl = database.url): Promise<TestLookup & { httpsPort: number }> {
  const lookup = await startTestLookup(databaseUrl, [...HTTPS, ...args]);
  running.push(lookup);
  return Object.assign(lookup, { httpsPort: lookup.process.https!.address.port });
}

async function stop(lookup: TestLookup): Promise<void> {
  running.splice(running.indexOf(lookup), 1);
  await lookup.stop();
}

interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** Whether the request went over a kept-alive connection. */
  reused: boolean;
}

interface RequestOptions {
  method?: string;
  /** false: a new connection that closes after the answer. */
  agent?: https.Agent | false;
  localAddress?: string;
  body?: string;
}

function request(port: number, path: string, { method = 'GET', agent = false, localAddress, body }: RequestOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, method, agent, localAddress, rejectUnauthorized: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8'), reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** A client that keeps one connection open, as a resolver library would. */
const keepAlive = () => new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false });

/** The connection a keep-alive agent holds between requests. */
async function heldSocket(agent: https.Agent): Promise<tls.TLSSocket> {
  let socket: tls.TLSSocket | undefined;
  await eventually(() => (socket = Object.values(agent.freeSockets).flat()[0] as tls.TLSSocket | undefined) !== undefined, 1000);
  return socket!;
}

const closed = (socket: { closed: boolean; once(event: 'close', listener: () => void): unknown }) =>
  new Promise<void>((resolve) => (socket.closed ? resolve() : socket.once('close', resolve)));

/** The value a port-64 lookup answers: `host:port` or `null`. */
async function port64(port: number, line: string): Promise<string> {
  const text = await lookupOnce(port, line);
  return text.slice(1, -3);
}

const metrics = async () => parseMetrics(await registry.metrics());

describe('HTTPS lookups', () => {
  let lookup: TestLookup & { httpsPort: number };
  const get = (path: string, options?: RequestOptions) => request(lookup.httpsPort, path, options);

  beforeAll(async () => {
    lookup = await start();
  });

  it('answers GET /alice and GET /@alice with 200 text/plain host:port', async () => {
    for (const path of ['/alice', '/@alice', '/ALICE', '/%40alice', '/alice?x=1', '/alice/']) {
      const reply = await get(path);
      expect({ path, status: reply.status, type: reply.headers['content-type'], length: reply.headers['content-length'], body: reply.body }).toEqual({
        path,
        status: 200,
        type: TEXT,
        length: '22',
        body: 'alice.example.com:6464',
      });
    }
    expect(await get('/alice%F0%9F%9B%A0')).toMatchObject({ status: 200, body: 'vip.ve.atsign.zone:25000' });
    expect(await get('/@ALICE%F0%9F%9B%A0')).toMatchObject({ status: 200, body: 'vip.ve.atsign.zone:25000' });
  });

  it('answers unknown and suspended atSigns 404 with the body null', async () => {
    for (const path of ['/nosuch', '/@nosuch', '/mallory', '/@mallory', '/@@alice', '/alice%F0%9F']) {
      const reply = await get(path);
      expect({ path, status: reply.status, type: reply.headers['content-type'], body: reply.body }).toEqual({ path, status: 404, type: TEXT, body: 'null' });
    }
  });

  it('redirects GET /alice/rest/of/path with 302 to the atServer, path and query as sent', async () => {
    const cases: Array<[string, string]> = [
      ['/alice/rest/of/path', 'https://alice.example.com:6464/rest/of/path'],
      ['/@alice/rest?x=1&y=%2F', 'https://alice.example.com:6464/rest?x=1&y=%2F'],
      ['/ALICE/a%20b/%F0%9F%9B%A0', 'https://alice.example.com:6464/a%20b/%F0%9F%9B%A0'],
      ['/alice%F0%9F%9B%A0/x?', 'https://vip.ve.atsign.zone:25000/x'],
    ];
    for (const [path, location] of cases) {
      const reply = await get(path);
      expect({ path, status: reply.status, location: reply.headers.location, body: reply.body }).toEqual({ path, status: 302, location, body: '' });
    }
    for (const path of ['/nosuch/rest', '/mallory/rest?x=1']) {
      expect(await get(path)).toMatchObject({ status: 404, body: 'null' });
    }
  });

  it('answers every method but GET and HEAD with 401', async () => {
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']) {
      const reply = await get('/alice', { method, body: method === 'POST' || method === 'PUT' ? 'alice' : undefined });
      expect({ method, status: reply.status, type: reply.headers['content-type'], body: reply.body }).toEqual({ method, status: 401, type: TEXT, body: 'Unauthorized' });
    }
  });

  it('answers HEAD as GET, without the body', async () => {
    expect(await get('/alice', { method: 'HEAD' })).toMatchObject({ status: 200, body: '', headers: { 'content-length': '22', 'content-type': TEXT } });
    expect(await get('/nosuch', { method: 'HEAD' })).toMatchObject({ status: 404, body: '', headers: { 'content-length': '4' } });
    expect(await get('/alice/x', { method: 'HEAD' })).toMatchObject({ status: 302, headers: { location: 'https://alice.example.com:6464/x' } });
  });

  it('answers exactly as port 64 does for the same records', async () => {
    // Over HTTPS one leading @ is the URL's, so `/@X` asks what the port-64 line `X` asks.
    for (const line of ['alice', 'ALICE', 'alice🛠', 'ALICE🛠', '  Alice\t', 'mallory', 'nosuch', '@alice']) {
      const reply = await get(`/@${encodeURIComponent(line)}`);
      const value = reply.status === 200 || (reply.status === 404 && reply.body === 'null') ? reply.body : `unexpected ${reply.status} ${reply.body}`;
      expect({ line, value }).toEqual({ line, value: await port64(lookup.port, line) });
    }
  });

  it('answers what no record can match with 404 null: no atSign, bad percent-encoding, keys over the line limit', async () => {
    const before = await metrics();
    for (const path of ['/', '/@', '/%20', '/%ZZ', '/alice%', '/%FF', `/${'a'.repeat(256)}`, `/@${'a'.repeat(256)}`]) {
      expect({ path, ...(await get(path)) }).toMatchObject({ path, status: 404, body: 'null', headers: { 'content-type': TEXT } });
    }
    const after = await metrics();
    // No atSign is no lookup (as port 64's empty line); the others are misses that never reach the cache.
    expect(deltas(before, after, ['atdirectory_lookups_total{result="not_found"}', 'atdirectory_cache_misses_total', 'atdirectory_cache_hits_total', 'atdirectory_https_requests_total{status="404"}'])).toEqual({
      'atdirectory_lookups_total{result="not_found"}': 5,
      atdirectory_cache_misses_total: 0,
      atdirectory_cache_hits_total: 0,
      'atdirectory_https_requests_total{status="404"}': 8,
    });
    // A key of exactly the limit is an ordinary lookup.
    expect(await get(`/@${'b'.repeat(255)}`)).toMatchObject({ status: 404, body: 'null' });
    expect(deltas(after, await metrics(), ['atdirectory_cache_misses_total'])).toEqual({ atdirectory_cache_misses_total: 1 });
  });

  it('counts lookups by result and requests by status, exactly', async () => {
    await get('/alice'); // warm the cache, so the counts below are hits
    const before = await metrics();
    await get('/alice');
    await get('/alice/x?y=1');
    await get('/nosuch');
    await get('/mallory');
    await get('/%ZZ');
    await get('/');
    await get('/alice', { method: 'POST' });
    await get('/alice', { method: 'HEAD' });
    const after = await metrics();
    expect(
      deltas(before, after, [
        'atdirectory_lookups_total{result="found"}',
        'atdirectory_lookups_total{result="not_found"}',
        'atdirectory_lookups_total{result="suspended"}',
        'atdirectory_lookups_total{result="throttled"}',
        'atdirectory_lookups_total{result="error"}',
        'atdirectory_lookup_duration_seconds_count',
        'atdirectory_https_requests_total{status="200"}',
        'atdirectory_https_requests_total{status="302"}',
        'atdirectory_https_requests_total{status="401"}',
        'atdirectory_https_requests_total{status="404"}',
        'atdirectory_https_requests_total{status="503"}',
        'atdirectory_connections_total',
        'atdirectory_tls_handshakes_total{version="TLSv1.3",resumed="false"}',
      ]),
    ).toEqual({
      'atdirectory_lookups_total{result="found"}': 3,
      'atdirectory_lookups_total{result="not_found"}': 2,
      'atdirectory_lookups_total{result="suspended"}': 1,
      'atdirectory_lookups_total{result="throttled"}': 0,
      'atdirectory_lookups_total{result="error"}': 0,
      'atdirectory_lookup_duration_seconds_count': 6,
      'atdirectory_https_requests_total{status="200"}': 2,
      'atdirectory_https_requests_total{status="302"}': 1,
      'atdirectory_https_requests_total{status="401"}': 1,
      'atdirectory_https_requests_total{status="404"}': 4,
      'atdirectory_https_requests_total{status="503"}': 0,
      atdirectory_connections_total: 8,
      'atdirectory_tls_handshakes_total{version="TLSv1.3",resumed="false"}': 8,
    });
    expect(await eventually(async () => (await metrics()).get('atdirectory_https_connections_open') === 0, 1000)).toBe(true);
  });

  it('follows database changes, as port 64 does', async () => {
    expect(await get('/carol')).toMatchObject({ status: 404, body: 'null' });
    await insertRecord(database.pool, 'carol', 'carol.example.com', 7000);
    expect(await eventually(async () => (await get('/carol')).body === 'carol.example.com:7000', 2000)).toBe(true);
    await database.pool.query("UPDATE atsigns SET host = 'carol.example.net' WHERE atsign = 'carol'");
    expect(await eventually(async () => (await get('/carol')).body === 'carol.example.net:7000', 2000)).toBe(true);
    expect(await port64(lookup.port, 'carol')).toBe('carol.example.net:7000');
    await database.pool.query("UPDATE atsigns SET status = 'suspended' WHERE atsign = 'carol'");
    expect(await eventually(async () => (await get('/carol')).status === 404, 2000)).toBe(true);
    expect(await get('/carol/x')).toMatchObject({ status: 404, body: 'null' });
  });

  it('keeps connections alive, and serves the lookup port certificate', async () => {
    const agent = keepAlive();
    try {
      const first = await get('/alice', { agent });
      const second = await get('/alice', { agent });
      expect([first.reused, second.reused, second.headers.connection]).toEqual([false, true, 'keep-alive']);
      expect(await eventually(async () => (await metrics()).get('atdirectory_https_connections_open') === 1, 1000)).toBe(true);
    } finally {
      agent.destroy();
    }
    const served = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port: lookup.httpsPort, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
        resolve(`${socket.getPeerX509Certificate()!.fingerprint256} ${socket.alpnProtocol}`);
        socket.destroy();
      });
      socket.once('error', reject);
    });
    const lookupPort = await RawClient.connect(lookup.port);
    expect(served).toBe(`${lookupPort.socket.getPeerX509Certificate()!.fingerprint256} http/1.1`);
    lookupPort.close();
  });
});

describe('enumeration throttling on a kept-alive connection', () => {
  const DELAY = 300;
  let lookup: TestLookup & { httpsPort: number };
  const get = (path: string, options?: RequestOptions) => request(lookup.httpsPort, path, options);

  beforeAll(async () => {
    lookup = await start(['--miss-delay', `${DELAY}ms`, '--miss-window', '1500ms']);
  });

  async function timed(path: string, agent: https.Agent): Promise<{ status: number; body: string; reused: boolean; ms: number }> {
    const started = performance.now();
    const { status, body, reused } = await get(path, { agent });
    return { status, body, reused, ms: performance.now() - started };
  }

  it('answers the 1st miss at once, delays the 2nd, closes on the 3rd unanswered; a new connection starts afresh', async () => {
    const agent = keepAlive();
    try {
      const before = await metrics();
      const first = await timed('/nosuch1', agent);
      expect(first).toMatchObject({ status: 404, body: 'null', reused: false });
      expect(first.ms).toBeLessThan(DELAY / 2);
      // A hit in between forgives nothing.
      expect(await timed('/alice', agent)).toMatchObject({ status: 200, reused: true });
      const second = await timed('/nosuch2', agent);
      expect(second).toMatchObject({ status: 404, body: 'null', reused: true });
      expect(second.ms).toBeGreaterThanOrEqual(DELAY - 5);
      await expect(get('/nosuch3', { agent })).rejects.toMatchObject({ code: 'ECONNRESET', message: 'socket hang up' });
      expect(deltas(before, await metrics(), ['atdirectory_lookups_total{result="throttled"}', 'atdirectory_connections_rejected_total{reason="throttled"}', 'atdirectory_lookups_total{result="not_found"}'])).toEqual({
        'atdirectory_lookups_total{result="throttled"}': 1,
        'atdirectory_connections_rejected_total{reason="throttled"}': 1,
        'atdirectory_lookups_total{result="not_found"}': 2,
      });
      const fresh = await timed('/nosuch4', agent);
      expect(fresh).toMatchObject({ status: 404, reused: false });
      expect(fresh.ms).toBeLessThan(DELAY / 2);
    } finally {
      agent.destroy();
    }
  });

  it('never counts GET / as a miss: a health check may repeat it on one connection', async () => {
    const agent = keepAlive();
    try {
      for (let i = 0; i < 5; i++) expect(await timed('/', agent)).toMatchObject({ status: 404, body: 'null' });
      const miss = await timed('/nosuch', agent);
      expect(miss).toMatchObject({ status: 404, reused: true });
      expect(miss.ms).toBeLessThan(DELAY / 2);
    } finally {
      agent.destroy();
    }
  });
});

describe('limits and timeouts of the lookup port', () => {
  const opened: Array<{ destroy(): void }> = [];

  afterEach(() => {
    for (const connection of opened.splice(0)) connection.destroy();
  });

  it('refuses connections over the admission limits at accept, before TLS, counted as on port 64', async () => {
    const lookup = await start(['--max-connections-per-client', '1']);
    const held = keepAlive();
    opened.push(held);
    expect(await request(lookup.httpsPort, '/alice', { agent: held })).toMatchObject({ status: 200 });
    const before = await metrics();
    await expect(request(lookup.httpsPort, '/alice')).rejects.toMatchObject({ code: 'ECONNRESET' });
    const after = await metrics();
    expect(deltas(before, after, ['atdirectory_connections_rejected_total{reason="max_connections_per_client"}', 'atdirectory_tls_handshake_failures_total{reason="closed"}'])).toEqual({
      'atdirectory_connections_rejected_total{reason="max_connections_per_client"}': 1,
      'atdirectory_tls_handshake_failures_total{reason="closed"}': 0,
    });
    // Another client is admitted; the held connection keeps being served.
    expect(await request(lookup.httpsPort, '/alice', { localAddress: '127.0.0.2' })).toMatchObject({ status: 200 });
    expect(await request(lookup.httpsPort, '/alice', { agent: held })).toMatchObject({ status: 200, reused: true });
    // Each public port admits on its own: the held HTTPS connection does not count on port 64.
    expect(await port64(lookup.port, 'alice')).toBe('alice.example.com:6464');
    await stop(lookup);
  });

  it('closes connections that never finish TLS, and idle ones, counted as on port 64', async () => {
    const lookup = await start(['--handshake-timeout', '200ms', '--idle-timeout', '1s']);
    const before = await metrics();
    const silent = await connectTcp(lookup.httpsPort);
    opened.push(silent);
    // Raw, because Node's own client would close the connection first on the Keep-Alive hint.
    const client = await RawClient.connect(lookup.httpsPort);
    opened.push(client.socket);
    const started = performance.now();
    client.send('GET /alice HTTP/1.1\r\nHost: root\r\n\r\n');
    await client.closed;
    expect(performance.now() - started).toBeGreaterThan(900);
    expect(client.text.replace(/\r\nDate: [^\r]*/, '')).toBe(
      'HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 22\r\nConnection: keep-alive\r\nKeep-Alive: timeout=1\r\n\r\nalice.example.com:6464',
    );
    await closed(silent);
    expect(deltas(before, await metrics(), ['atdirectory_tls_handshake_failures_total{reason="timeout"}', 'atdirectory_connections_rejected_total{reason="idle_timeout"}'])).toEqual({
      'atdirectory_tls_handshake_failures_total{reason="timeout"}': 1,
      'atdirectory_connections_rejected_total{reason="idle_timeout"}': 1,
    });
    await stop(lookup);
  });

  it('answers a request whose headers never complete with 408, and closes', async () => {
    const lookup = await start(['--request-timeout', '300ms']);
    const client = await RawClient.connect(lookup.httpsPort);
    opened.push(client.socket);
    client.send('GET /alice HTTP/1.1\r\nHost: root\r\n');
    await client.closed;
    expect(client.text).toBe('HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n');
    await stop(lookup);
  });
});

describe('when the database cannot be read', () => {
  it('answers an uncached atSign 503 null, counted as an error and not as a miss', async () => {
    const proxy = await PostgresProxy.start(database.url);
    try {
      const lookup = await start(['--db-connect-timeout', '300ms', '--db-statement-timeout', '300ms', '--miss-delay-from', '2', '--miss-close-at', '3'], proxy.url);
      const agent = keepAlive();
      try {
        expect(await request(lookup.httpsPort, '/alice', { agent })).toMatchObject({ status: 200 });
        proxy.cut();
        const before = await metrics();
        for (let i = 0; i < 3; i++) {
          expect(await request(lookup.httpsPort, `/uncached${i}`, { agent })).toMatchObject({ status: 503, body: 'null', reused: true, headers: { 'content-type': TEXT } });
        }
        // Cached answers keep coming.
        expect(await request(lookup.httpsPort, '/alice', { agent })).toMatchObject({ status: 200, body: 'alice.example.com:6464' });
        expect(deltas(before, await metrics(), ['atdirectory_lookups_total{result="error"}', 'atdirectory_https_requests_total{status="503"}', 'atdirectory_lookups_total{result="throttled"}'])).toEqual({
          'atdirectory_lookups_total{result="error"}': 3,
          'atdirectory_https_requests_total{status="503"}': 3,
          'atdirectory_lookups_total{result="throttled"}': 0,
        });
      } finally {
        agent.destroy();
        proxy.restore();
        await stop(lookup);
      }
    } finally {
      await proxy.stop();
    }
  });
});

describe('shutdown', () => {
  it('closes idle connections at once and answers a request in flight with Connection: close', async () => {
    const lookup = await start(['--miss-delay', '500ms', '--drain-timeout', '5s']);
    const idle = keepAlive();
    const busy = keepAlive();
    try {
      await request(lookup.httpsPort, '/alice', { agent: idle });
      const idleClosed = closed(await heldSocket(idle));
      await request(lookup.httpsPort, '/nosuch1', { agent: busy });
      // The 2nd miss is held for the throttling delay: in flight when the drain starts.
      const before = await metrics();
      const inFlight = request(lookup.httpsPort, '/nosuch2', { agent: busy });
      const notFound = 'atdirectory_lookups_total{result="not_found"}';
      expect(await eventually(async () => deltas(before, await metrics(), [notFound])[notFound] === 1, 1000)).toBe(true);
      const started = performance.now();
      const stopped = stop(lookup);
      await idleClosed;
      expect(performance.now() - started).toBeLessThan(200);
      const reply = await inFlight;
      expect({ status: reply.status, body: reply.body, connection: reply.headers.connection }).toEqual({ status: 404, body: 'null', connection: 'close' });
      await stopped;
      expect(performance.now() - started).toBeLessThan(2000);
    } finally {
      idle.destroy();
      busy.destroy();
    }
  });
});

describe('binding', () => {
  it('fails the start, naming the address, when the HTTPS port is taken', async () => {
    const first = await start();
    const port = first.httpsPort;
    await expect(startTestLookup(database.url, ['--https-port', String(port), '--https-host', '127.0.0.1'])).rejects.toThrow(
      new Error(`cannot listen for HTTPS lookups on 127.0.0.1:${port}: the port is already in use`),
    );
    // The first one is unharmed.
    expect(await request(port, '/alice')).toMatchObject({ status: 200 });
    await stop(first);
  });
});

describe('off by default', () => {
  it('has no HTTPS listener unless --https-port is given', async () => {
    expect(parseCommandLine('serve', [], {}).config.httpsPort).toBe(PORT_OFF);
    const lookup = await startTestLookup(database.url);
    running.push(lookup);
    expect(lookup.process.https).toBeUndefined();
    await stop(lookup);
  });
});

describe('serve --workers 2 --https-port', () => {
  let dir: string;
  let pairA: CertificatePair;
  let pairB: CertificatePair;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'atdirectory-https-'));
    pairA = await developmentCertificate(join(dir, 'a'));
    pairB = await developmentCertificate(join(dir, 'b'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const fingerprint = (pair: CertificatePair) => new X509Certificate(pair.cert).fingerprint256;

  function servedFingerprint(port: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
        resolve(socket.getPeerX509Certificate()!.fingerprint256);
        socket.destroy();
      });
      socket.once('error', reject);
    });
  }

  it('serves from every worker on one shared port, logs the address, and follows certificate reloads', async () => {
    const certPath = join(dir, 'cert.pem');
    const keyPath = join(dir, 'key.pem');
    await copyFile(pairA.keyPath, keyPath);
    await copyFile(pairA.certPath, certPath);
    const server = await spawnServe([
      '--database-url', database.url, '--data-dir', dir, '--workers', '2', ...HTTPS,
      '--tls-cert', certPath, '--tls-key', keyPath, '--tls-reload-interval', '100ms', '--no-admin',
    ]);
    try {
      const started = server.logs.find((line) => line.msg.startsWith('atdirectory serving lookups')) as unknown as { https: { host: string; port: number } };
      expect(started.https).toMatchObject({ host: '127.0.0.1', port: expect.any(Number) as number });
      const port = started.https.port;
      for (let i = 0; i < 6; i++) expect(await request(port, '/alice')).toMatchObject({ status: 200, body: 'alice.example.com:6464' });
      expect(await servedFingerprint(port)).toBe(fingerprint(pairA));
      const established = keepAlive();
      expect(await request(port, '/alice', { agent: established })).toMatchObject({ status: 200 });
      await copyFile(pairB.keyPath, keyPath);
      await copyFile(pairB.certPath, certPath);
      // Every worker reloads; new connections land on either.
      expect(await eventually(async () => (await Promise.all([1, 2, 3, 4].map(() => servedFingerprint(port)))).every((served) => served === fingerprint(pairB)), 5000, 100)).toBe(true);
      expect(await request(port, '/alice', { agent: established })).toMatchObject({ status: 200, reused: true });
      established.destroy();
      expect(await server.stop()).toBe(0);
    } finally {
      await server.stop();
    }
  });
});
