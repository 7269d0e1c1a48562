import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../../src/ops/registry.js';
import { developmentCertificate } from '../../src/tls/certificate.js';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { eventually, startTestLookup, type TestLookup } from '../support/lookup-harness.js';
import { parseMetrics, scrape } from '../support/metrics.js';
import { RawClient } from '../support/raw-client.js';
import { spawnServe } from '../support/serve-process.js';

// A "central" directory with its own records, and "private" directories that forward what they do
// not hold to it (or to small stand-ins: a relay that can be cut, bare TLS roots that answer
// garbage, slowly or never), all real TLS on loopback.

let centralDatabase: TestDatabase;
let privateDatabase: TestDatabase;
let central: TestLookup;
let dir: string;
/** The central's own generated certificate, fetched off the wire, for --upstream-ca. */
let centralCa: string;
/** Certificate of the bare test roots. */
let fakeRootCert: { cert: string; key: string; certPath: string };

const running: Array<{ stop(): Promise<unknown> | void }> = [];
const clients: RawClient[] = [];

beforeAll(async () => {
  [centralDatabase, privateDatabase] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  await insertRecord(centralDatabase.pool, 'alice', 'alice.central.example', 1);
  await insertRecord(centralDatabase.pool, 'mallory', 'mallory.central.example', 2);
  await insertRecord(centralDatabase.pool, 'bob', 'bob.central.example', 6464);
  await insertRecord(centralDatabase.pool, 'carol', 'carol.central.example', 6464);
  for (let i = 0; i < 12; i++) await insertRecord(centralDatabase.pool, `user${i}`, `user${i}.central.example`, 6464);
  await insertRecord(privateDatabase.pool, 'alice', 'alice.private.example', 6464);
  await insertRecord(privateDatabase.pool, 'mallory', 'mallory.private.example', 6464, 'suspended');
  // The central keeps the reference's enumeration throttling (2nd miss delayed 3 s, 3rd closes).
  central = await startTestLookup(centralDatabase.url);
  dir = await mkdtemp(join(tmpdir(), 'atdirectory-upstream-'));
  centralCa = join(dir, 'central.pem');
  await writeFile(centralCa, await peerCertificate(central.port));
  fakeRootCert = await developmentCertificate(join(dir, 'fake-root'));
});

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const item of running.splice(0).reverse()) await item.stop();
});

afterAll(async () => {
  await central?.stop();
  await Promise.all([centralDatabase?.drop(), privateDatabase?.drop()]);
  if (dir) await rm(dir, { recursive: true, force: true });
});

function peerCertificate(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerX509Certificate()!.toString());
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

/** A private directory on its own database, throttling off so tests can miss freely. */
async function startPrivate(args: string[]): Promise<TestLookup> {
  const lookup = await startTestLookup(privateDatabase.url, ['--miss-delay-from', '0', '--miss-close-at', '0', ...args]);
  running.push(lookup);
  return lookup;
}

async function connect(lookup: TestLookup): Promise<RawClient> {
  const client = await RawClient.prompted(lookup.port);
  clients.push(client);
  return client;
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

async function metrics(): Promise<Map<string, number>> {
  return parseMetrics(await registry.metrics());
}

const queries = (upstream: string, result: string) => `atdirectory_upstream_queries_total{upstream="${upstream}",result="${result}"}`;
const durationCount = (upstream: string) => `atdirectory_upstream_query_duration_seconds_count{upstream="${upstream}"}`;
const up = (upstream: string) => `atdirectory_upstream_up{upstream="${upstream}"}`;
const connections = (upstream: string) => `atdirectory_upstream_connections{upstream="${upstream}"}`;
const cacheResult = (result: string) => `atdirectory_upstream_cache_results_total{result="${result}"}`;
const cacheEntries = (kind: string) => `atdirectory_upstream_cache_entries{kind="${kind}"}`;
const rejected = (reason: string) => `atdirectory_upstream_rejected_total{reason="${reason}"}`;

/** How much each sample grew since `before`. */
async function growth(before: Map<string, number>, names: string[]): Promise<Record<string, number>> {
  const after = await metrics();
  return Object.fromEntries(names.map((name) => [name, (after.get(name) ?? 0) - (before.get(name) ?? 0)]));
}

async function metricIs(name: string, value: number, timeoutMs = 5000): Promise<boolean> {
  return eventually(async () => (await metrics()).get(name) === value, timeoutMs, 20);
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A TCP relay in front of a port, counting the connections it carries. `refuse` resets new
 * connections; `hang` accepts them and forwards nothing, like a blackholed upstream.
 */
class Relay {
  mode: 'open' | 'refuse' | 'hang' = 'open';
  accepted = 0;
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;
  port = 0;

  constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => {
      client.on('error', () => undefined);
      if (this.mode === 'refuse') return client.resetAndDestroy();
      this.track(client);
      if (this.mode === 'hang') return;
      this.accepted++;
      const target = net.connect({ host: '127.0.0.1', port: this.targetPort });
      target.on('error', () => undefined);
      this.track(target);
      client.pipe(target).pipe(client);
      client.on('close', () => target.destroy());
      target.on('close', () => client.destroy());
    });
  }

  static async start(targetPort: number): Promise<Relay> {
    const relay = new Relay(targetPort);
    await new Promise<void>((resolve) => relay.server.listen(0, '127.0.0.1', resolve));
    relay.port = (relay.server.address() as net.AddressInfo).port;
    running.push(relay);
    return relay;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** Client-side connections open now. */
  get open(): number {
    return [...this.sockets].filter((socket) => socket.remotePort !== this.targetPort).length;
  }

  cut(mode: 'refuse' | 'hang'): void {
    this.mode = mode;
    for (const socket of this.sockets) socket.destroy();
  }

  async stop(): Promise<void> {
    this.cut('refuse');
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private track(socket: net.Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }
}

/** A bare TLS root: prompt, then `answer(key)` for every request after `delayMs` (undefined: never). */
async function startFakeRoot(answer: (key: string) => string | undefined, delayMs = 0): Promise<string> {
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert: fakeRootCert.cert, key: fakeRootCert.key }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write('@');
    let buffered = '';
    socket.setEncoding('utf8').on('data', (data: string) => {
      buffered += data;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const key = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (key === '@exit') return socket.end();
        const reply = answer(key);
        if (reply !== undefined) setTimeout(() => socket.writable && socket.write(`${reply}\r\n@`), delayMs);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  running.push({
    stop: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  });
  return `127.0.0.1:${(server.address() as net.AddressInfo).port}`;
}

describe('resolution order', () => {
  it('answers local records, active and suspended, without asking upstream, and the rest from upstream', async () => {
    const upstream = `127.0.0.1:${central.port}`;
    const lookup = await startPrivate(['--upstream', upstream, '--upstream-ca', centralCa]);
    const client = await connect(lookup);
    const before = await metrics();
    expect(await client.ask('alice')).toBe('alice.private.example:6464');
    expect(await client.ask('mallory')).toBe('null');
    expect(await growth(before, [queries(upstream, 'found'), queries(upstream, 'not_found')])).toEqual({
      [queries(upstream, 'found')]: 0,
      [queries(upstream, 'not_found')]: 0,
    });
    expect(await client.ask('BOB')).toBe('bob.central.example:6464');
    expect(await growth(before, [queries(upstream, 'found'), durationCount(upstream), cacheResult('miss'), cacheEntries('positive')])).toEqual({
      [queries(upstream, 'found')]: 1,
      [durationCount(upstream)]: 1,
      [cacheResult('miss')]: 1,
      [cacheEntries('positive')]: 1,
    });
  });

  it('answers an upstream null with null, and caches it negatively', async () => {
    const upstream = `127.0.0.1:${central.port}`;
    const lookup = await startPrivate(['--upstream', upstream, '--upstream-ca', centralCa]);
    const client = await connect(lookup);
    const before = await metrics();
    expect(await client.ask('nobody')).toBe('null');
    expect(await client.ask('nobody')).toBe('null');
    expect(
      await growth(before, [queries(upstream, 'not_found'), queries(upstream, 'found'), cacheResult('miss'), cacheResult('hit'), cacheEntries('negative')]),
    ).toEqual({
      [queries(upstream, 'not_found')]: 1,
      [queries(upstream, 'found')]: 0,
      [cacheResult('miss')]: 1,
      [cacheResult('hit')]: 1,
      [cacheEntries('negative')]: 1,
    });
  });

  it('lets a local record created after an upstream answer was cached take over at once', async () => {
    const lookup = await startPrivate(['--upstream', `127.0.0.1:${central.port}`, '--upstream-ca', centralCa]);
    const client = await connect(lookup);
    expect(await client.ask('carol')).toBe('carol.central.example:6464');
    await insertRecord(privateDatabase.pool, 'carol', 'carol.private.example', 7000);
    try {
      const started = performance.now();
      expect(await eventually(async () => (await client.ask('carol')) === 'carol.private.example:7000', 2000, 1)).toBe(true);
      expect(performance.now() - started).toBeLessThan(500);
    } finally {
      await privateDatabase.pool.query("DELETE FROM atsigns WHERE atsign = 'carol'");
    }
  });
});

describe('kept-open connections', () => {
  async function privateBehindRelay(): Promise<{ relay: Relay; client: RawClient }> {
    const relay = await Relay.start(central.port);
    const lookup = await startPrivate(['--upstream', relay.address, '--upstream-ca', centralCa, '--upstream-connections', '2']);
    // Two connections, one of them spent on the loop probe (a null) and replaced.
    expect(await eventually(() => relay.accepted === 3 && relay.open === 2)).toBe(true);
    expect(await metricIs(connections(relay.address), 2)).toBe(true);
    return { relay, client: await connect(lookup) };
  }

  it('forwards hits over the same connections: no handshake per lookup', async () => {
    const { relay, client } = await privateBehindRelay();
    const before = await metrics();
    for (let i = 0; i < 10; i++) expect(await client.ask(`user${i}`)).toBe(`user${i}.central.example:6464`);
    expect(relay.accepted).toBe(3);
    expect(await growth(before, [queries(relay.address, 'found')])).toEqual({ [queries(relay.address, 'found')]: 10 });
  });

  it('retires a connection after a null, so forwarded misses never meet the root\'s tarpit', async () => {
    const { relay, client } = await privateBehindRelay();
    // The central delays a connection's 2nd miss by 3 s and closes at the 3rd.
    const { value: answers, ms } = await timed(async () => [await client.ask('nobody1'), await client.ask('nobody2'), await client.ask('nobody3')]);
    expect(answers).toEqual(['null', 'null', 'null']);
    expect(ms).toBeLessThan(1500);
    expect(await eventually(() => relay.accepted === 6 && relay.open === 2)).toBe(true);
    expect(await client.ask('user11')).toBe('user11.central.example:6464');
  });
});

describe('failover and health', () => {
  it('fails over to the second upstream while the first is down, and returns to the first when it recovers', async () => {
    const first = await Relay.start(central.port);
    const second = await Relay.start(central.port);
    first.mode = 'refuse';
    const lookup = await startPrivate(['--upstream', first.address, '--upstream', second.address, '--upstream-ca', centralCa]);
    const client = await connect(lookup);
    const before = await metrics();
    const { value, ms } = await timed(() => client.ask('user0'));
    expect(value).toBe('user0.central.example:6464');
    expect(ms).toBeLessThan(500);
    expect(await growth(before, [queries(first.address, 'error'), queries(second.address, 'found')])).toEqual({
      [queries(first.address, 'error')]: 1,
      [queries(second.address, 'found')]: 1,
    });

    // Three failures in a row (connection attempts included) put it down; it is then skipped.
    expect(await metricIs(up(first.address), 0)).toBe(true);
    const down = await metrics();
    expect(await client.ask('user1')).toBe('user1.central.example:6464');
    expect(await growth(down, [queries(first.address, 'error'), queries(second.address, 'found')])).toEqual({
      [queries(first.address, 'error')]: 0,
      [queries(second.address, 'found')]: 1,
    });

    first.mode = 'open';
    expect(await metricIs(up(first.address), 1, 10_000)).toBe(true);
    const recovered = await metrics();
    expect(await client.ask('user2')).toBe('user2.central.example:6464');
    expect(await growth(recovered, [queries(first.address, 'found'), queries(second.address, 'found')])).toEqual({
      [queries(first.address, 'found')]: 1,
      [queries(second.address, 'found')]: 0,
    });
  });

  it('serves an expired answer during an outage within --cache-max-stale, and null after it', async () => {
    const relay = await Relay.start(central.port);
    const lookup = await startPrivate([
      '--upstream', relay.address, '--upstream-ca', centralCa,
      '--upstream-cache-ttl', '1s', '--cache-max-stale', '2s', '--upstream-timeout', '300ms',
    ]);
    const client = await connect(lookup);
    expect(await client.ask('bob')).toBe('bob.central.example:6464');
    const cachedAt = performance.now();
    relay.cut('hang');
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const before = await metrics();
    const stale = await timed(() => client.ask('bob'));
    expect(stale.value).toBe('bob.central.example:6464');
    expect(stale.ms).toBeLessThan(500);
    expect((await growth(before, [cacheResult('stale')]))[cacheResult('stale')]).toBe(1);

    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 3100 - (performance.now() - cachedAt))));
    const expired = await timed(() => client.ask('bob'));
    expect(expired.value).toBe('null');
    expect(expired.ms).toBeLessThan(500);
  });

  it('gives up on an upstream that never answers after --upstream-timeout', async () => {
    const upstream = await startFakeRoot(() => undefined);
    const lookup = await startPrivate(['--upstream', upstream, '--upstream-ca', fakeRootCert.certPath, '--upstream-timeout', '400ms']);
    const client = await connect(lookup);
    const before = await metrics();
    const { value, ms } = await timed(() => client.ask('someone'));
    expect(value).toBe('null');
    expect(ms).toBeGreaterThanOrEqual(390);
    expect(ms).toBeLessThan(800);
    expect(await growth(before, [queries(upstream, 'timeout'), cacheEntries('negative'), cacheEntries('positive')])).toEqual({
      [queries(upstream, 'timeout')]: 1,
      [cacheEntries('negative')]: 0,
      [cacheEntries('positive')]: 0,
    });
  });

  it('holds a client for one --upstream-timeout, not one per upstream, once every upstream is down', async () => {
    const [first, second] = await Promise.all([startFakeRoot(() => undefined), startFakeRoot(() => undefined)]);
    const lookup = await startPrivate(['--upstream', first, '--upstream', second, '--upstream-ca', fakeRootCert.certPath, '--upstream-timeout', '300ms']);
    const client = await connect(lookup);
    for (let attempt = 0; attempt < 4 && !((await metrics()).get(up(first)) === 0 && (await metrics()).get(up(second)) === 0); attempt++) {
      expect(await client.ask(`down-${attempt}`)).toBe('null');
    }
    expect(await metricIs(up(first), 0)).toBe(true);
    expect(await metricIs(up(second), 0)).toBe(true);
    const before = await metrics();
    const { value, ms } = await timed(() => client.ask('while-all-down'));
    expect(value).toBe('null');
    expect(ms).toBeLessThan(550);
    const tried = await growth(before, [queries(first, 'timeout'), queries(second, 'timeout')]);
    expect(tried[queries(first, 'timeout')]! + tried[queries(second, 'timeout')]!).toBe(1);
  });
});

describe('abuse and bad upstreams', () => {
  it('answers null at once, and counts it, when --upstream-max-inflight queries are running', async () => {
    let firstForwarded!: () => void;
    const forwarded = new Promise<void>((resolve) => (firstForwarded = resolve));
    const upstream = await startFakeRoot((key) => {
      if (key === 'one') firstForwarded();
      return 'slow.example:6464';
    }, 500);
    const lookup = await startPrivate(['--upstream', upstream, '--upstream-ca', fakeRootCert.certPath, '--upstream-max-inflight', '1']);
    const [first, second] = await Promise.all([connect(lookup), connect(lookup)]);
    const before = await metrics();
    const slow = first.ask('one');
    // Only once the first query is upstream is it certain to hold the one slot.
    await forwarded;
    const refused = await timed(() => second.ask('two'));
    expect(refused.value).toBe('null');
    expect(refused.ms).toBeLessThan(100);
    expect(await slow).toBe('slow.example:6464');
    expect(await growth(before, [rejected('inflight'), queries(upstream, 'found'), cacheResult('miss')])).toEqual({
      [rejected('inflight')]: 1,
      [queries(upstream, 'found')]: 1,
      [cacheResult('miss')]: 2,
    });
  });

  it('treats an answer that is neither null nor host:port as a failure: null, counted, never cached', async () => {
    const upstream = await startFakeRoot(() => 'error:no such atsign');
    const lookup = await startPrivate(['--upstream', upstream, '--upstream-ca', fakeRootCert.certPath]);
    const client = await connect(lookup);
    const before = await metrics();
    expect(await client.ask('someone')).toBe('null');
    expect(await client.ask('someone')).toBe('null');
    expect(await growth(before, [queries(upstream, 'bad_answer'), cacheEntries('positive'), cacheEntries('negative')])).toEqual({
      [queries(upstream, 'bad_answer')]: 2,
      [cacheEntries('positive')]: 0,
      [cacheEntries('negative')]: 0,
    });
  });
});

describe('loops', () => {
  const refusals = (lookup: TestLookup) => lookup.logs.filter((line) => line.level === 50 && line.msg.startsWith('upstream refused'));

  it('refuses an upstream that is its own lookup address before connecting', async () => {
    const port = await freePort();
    const before = await metrics();
    const lookup = await startPrivate(['--lookup-port', String(port), '--upstream', `127.0.0.1:${port}`, '--upstream-insecure']);
    expect(refusals(lookup).map((line) => line.msg)).toEqual(["upstream refused: it is this directory's own lookup address; it will not be used"]);
    expect(await growth(before, [rejected('loop')])).toEqual({ [rejected('loop')]: 1 });
    expect((await metrics()).get(up(`127.0.0.1:${port}`))).toBe(0);
    const client = await connect(lookup);
    const { value, ms } = await timed(() => client.ask('someone'));
    expect(value).toBe('null');
    expect(ms).toBeLessThan(200);
  });

  it('refuses an upstream that answers its own loop probe (itself behind a relay)', async () => {
    const port = await freePort();
    const relay = await Relay.start(port);
    const before = await metrics();
    const lookup = await startPrivate(['--lookup-port', String(port), '--upstream', relay.address, '--upstream-insecure']);
    expect(await eventually(() => refusals(lookup).length === 1)).toBe(true);
    expect(refusals(lookup)[0]).toMatchObject({ upstream: relay.address, msg: 'upstream refused: it answered this directory\'s own loop probe, so it forwards back here; it will not be used' });
    expect(await growth(before, [rejected('loop')])).toEqual({ [rejected('loop')]: 1 });
    expect(await eventually(() => relay.open === 0)).toBe(true);
    expect(await (await connect(lookup)).ask('someone')).toBe('null');
  });

  it('breaks a loop of two directories (A → B → A)', async () => {
    const [portA, portB] = await Promise.all([freePort(), freePort()]);
    const before = await metrics();
    const [a, b] = await Promise.all([
      startPrivate(['--lookup-port', String(portA), '--upstream', `127.0.0.1:${portB}`, '--upstream-insecure']),
      startPrivate(['--lookup-port', String(portB), '--upstream', `127.0.0.1:${portA}`, '--upstream-insecure']),
    ]);
    expect(await eventually(() => refusals(a).length + refusals(b).length >= 1, 8000)).toBe(true);
    expect((await growth(before, [rejected('loop')]))[rejected('loop')]).toBe(refusals(a).length + refusals(b).length);
    for (const lookup of [a, b]) {
      const client = await connect(lookup);
      const { value, ms } = await timed(() => client.ask('nobody-anywhere'));
      expect(value).toBe('null');
      expect(ms).toBeLessThan(1000);
    }
  });
});

describe('loops across a process group', () => {
  it('lets every worker recognise the group\'s probe, whichever worker receives it', async () => {
    const port = await freePort();
    const relay = await Relay.start(port);
    const server = await spawnServe([
      '--workers', '2', '--database-url', privateDatabase.url, '--no-migrate', '--no-admin', '--data-dir', join(dir, 'group'),
      '--lookup-port', String(port), '--upstream', relay.address, '--upstream-insecure',
    ]);
    running.push(server);
    const refused = () => server.logs.filter((line) => line.level === 50 && line.msg.startsWith('upstream refused: it answered'));
    expect(await eventually(() => refused().length === 2, 8000)).toBe(true);
    const samples = await scrape(server.opsPort!);
    expect(samples.get(rejected('loop'))).toBe(2);
    expect(samples.get(up(relay.address))).toBe(0);
  });
});

describe('TLS', () => {
  it('refuses an upstream whose certificate it cannot verify without --upstream-ca', async () => {
    const upstream = `127.0.0.1:${central.port}`;
    const lookup = await startPrivate(['--upstream', upstream]);
    const client = await connect(lookup);
    const before = await metrics();
    expect(await client.ask('bob')).toBe('null');
    expect(await growth(before, [queries(upstream, 'error'), queries(upstream, 'found')])).toEqual({
      [queries(upstream, 'error')]: 1,
      [queries(upstream, 'found')]: 0,
    });
    expect(await metricIs(up(upstream), 0)).toBe(true);
    const down = lookup.logs.find((line) => line.msg.startsWith('upstream down'));
    expect(down).toMatchObject({ level: 40, upstream });
    expect(String(down!.reason)).toMatch(/self[- ]signed certificate/);
  });

  it('--upstream-insecure skips verification and warns at start', async () => {
    const lookup = await startPrivate(['--upstream', `127.0.0.1:${central.port}`, '--upstream-insecure']);
    expect(lookup.logs.filter((line) => line.level === 40 && line.msg.startsWith('--upstream-insecure'))).toHaveLength(1);
    expect(await (await connect(lookup)).ask('bob')).toBe('bob.central.example:6464');
  });
});
