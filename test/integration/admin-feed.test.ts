import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { changeMessage, SignatureVerifier, snapshotMessage, type SignedChangeFields } from '../../src/feed/signing.js';
import { registry } from '../../src/ops/registry.js';
import { startTestAdmin, type TestAdmin } from '../support/admin-harness.js';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { parseMetrics } from '../support/metrics.js';

interface Change extends SignedChangeFields {
  signature: string;
}
interface Page {
  changes: Change[];
  next: number;
  settled: number;
}
interface Problem {
  type: string;
  status: number;
  detail?: string;
  snapshot?: string;
}

const KEEPALIVE_MS = 300;

/** Server-Sent Events as a client sees them: events and comments, in order. */
interface SseMessage {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

class SseClient {
  readonly messages: SseMessage[] = [];
  private buffer = '';
  private waiters: Array<() => void> = [];

  /** Resolves when the server ends or drops the stream. */
  readonly closed: Promise<void>;

  private constructor(private readonly response: IncomingMessage) {
    this.closed = new Promise((resolve) => response.once('close', () => resolve()));
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => this.receive(chunk));
    response.on('error', () => undefined);
  }

  get status(): number {
    return this.response.statusCode!;
  }

  header(name: string): string | undefined {
    return this.response.headers[name] as string | undefined;
  }

  /** A connection of its own (no pooling), closed by `close`. */
  static open(admin: TestAdmin, token: string, query = '', headers: Record<string, string> = {}): Promise<SseClient> {
    const { port } = new URL(admin.url);
    return new Promise((resolve, reject) => {
      httpRequest(
        { host: '127.0.0.1', port, path: `/v1/changes${query}`, agent: false, headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream', ...headers } },
        (response) => resolve(new SseClient(response)),
      )
        .on('error', reject)
        .end();
    });
  }

  /** Waits for a message matching `match` (looking from the start), at most `timeoutMs`. */
  async waitFor(match: (message: SseMessage) => boolean, timeoutMs = 3000): Promise<SseMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching event within ${timeoutMs} ms; got ${JSON.stringify(this.messages)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  changes(): Change[] {
    return this.messages.filter((message) => message.event === 'change').map((message) => JSON.parse(message.data!) as Change);
  }

  close(): void {
    this.response.destroy();
  }

  private receive(chunk: string): void {
    this.buffer += chunk;
    for (let end = this.buffer.indexOf('\n\n'); end !== -1; end = this.buffer.indexOf('\n\n')) {
      this.messages.push(parseMessage(this.buffer.slice(0, end)));
      this.buffer = this.buffer.slice(end + 2);
    }
    for (const wake of this.waiters.splice(0)) wake();
  }
}

function parseMessage(text: string): SseMessage {
  const message: SseMessage = {};
  for (const line of text.split('\n')) {
    if (line.startsWith(':')) message.comment = line.slice(1).trim();
    else {
      const colon = line.indexOf(':');
      const field = line.slice(0, colon) as 'id' | 'event' | 'data';
      message[field] = line.slice(colon + 1).replace(/^ /, '');
    }
  }
  return message;
}

async function json<T>(response: Response): Promise<T> {
  return (await response.json()) as T;
}

async function metric(name: string): Promise<number> {
  return parseMetrics(await registry.metrics()).get(name) ?? 0;
}

/** The highest version drawn so far. */
async function issued(database: TestDatabase): Promise<number> {
  const { rows } = await database.pool.query<{ version: string }>('SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS version FROM atsign_version_seq');
  return Number(rows[0]!.version);
}

/** The version of the last change at or below `version`, from the log itself (untrimmed here). */
async function lastChangeThrough(database: TestDatabase, version: number): Promise<number> {
  const { rows } = await database.pool.query<{ version: string }>('SELECT coalesce(max(version), 0)::text AS version FROM atsign_changes WHERE version <= $1', [version]);
  return Number(rows[0]!.version);
}

/** Each entry names the one before it; the first names `first`. */
function expectChained(changes: Change[], first: number): void {
  expect(changes.map((change) => change.previous)).toEqual([first, ...changes.slice(0, -1).map((change) => change.version)]);
}

async function versionOf(database: TestDatabase, atsign: string): Promise<number> {
  const { rows } = await database.pool.query<{ version: string }>('SELECT version FROM atsigns WHERE atsign = $1', [atsign]);
  return Number(rows[0]!.version);
}

describe('change feed', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let token: string;
  let readToken: string;
  let verifier: SignatureVerifier;
  const connections: pg.Client[] = [];
  const streams: SseClient[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url, { feed: { keepaliveMs: KEEPALIVE_MS } });
    token = await admin.key('admin');
    readToken = await admin.key('read', 'auditor');
    const identity = await json<{ publicKey: string }>(await fetch(`${admin.url}/v1/identity`));
    verifier = new SignatureVerifier(identity.publicKey);
  });

  afterAll(async () => {
    for (const stream of streams) stream.close();
    await Promise.all(connections.map((client) => client.end()));
    await admin?.stop();
    await database?.drop();
  });

  const page = (query: string, bearer = readToken) => admin.request('GET', `/v1/changes${query}`, { token: bearer });

  async function stream(query = '', headers: Record<string, string> = {}): Promise<SseClient> {
    const client = await SseClient.open(admin, readToken, query, headers);
    streams.push(client);
    return client;
  }

  /** Waits until the feed has settled everything drawn so far; returns the settled version. */
  async function settledAll(): Promise<number> {
    const target = await issued(database);
    for (const deadline = Date.now() + 5000; ; ) {
      const { settled } = await json<Page>(await page(`?after=${target}&limit=1`));
      if (settled >= target) return settled;
      if (Date.now() > deadline) throw new Error(`the feed did not settle ${target} (at ${settled})`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async function openTransaction(): Promise<pg.Client> {
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    connections.push(client);
    await client.query('BEGIN');
    return client;
  }

  const verifies = (change: Change) => verifier.verify(changeMessage(change), change.signature);

  it('publishes the signing key without authentication', async () => {
    const response = await fetch(`${admin.url}/v1/identity`);
    expect(response.status).toBe(200);
    const identity = await json<Record<string, string>>(response);
    expect(Object.keys(identity).sort()).toEqual(['algorithm', 'keyId', 'publicKey']);
    expect(identity.algorithm).toBe('Ed25519');
    expect(Buffer.from(identity.publicKey!, 'base64')).toHaveLength(32);
    expect(identity.keyId).toBe(verifier.keyId);
    expect(identity.keyId).toMatch(/^[0-9a-f]{16}$/);
  });

  it('pages every change in version order: writes, suspensions, deletions, plain SQL; never a rolled-back version', async () => {
    const start = await settledAll();
    await admin.request('PUT', '/v1/atsigns/page-alice', { token, body: { host: 'alice.example.com', port: 6464 } });
    await admin.request('PUT', '/v1/atsigns/page-bob', { token, body: { host: 'bob.example.com', port: 6465 } });
    await admin.request('PATCH', '/v1/atsigns/page-bob', { token, body: { status: 'suspended', reason: 'abuse' } });
    const rolledBack = await openTransaction();
    await rolledBack.query("INSERT INTO atsigns (atsign, host, port) VALUES ('page-never', 'never.example', 1)");
    const rolledBackVersion = Number((await rolledBack.query("SELECT version FROM atsigns WHERE atsign = 'page-never'")).rows[0].version);
    await rolledBack.query('ROLLBACK');
    await admin.request('DELETE', '/v1/atsigns/page-alice', { token });
    await insertRecord(database.pool, 'page-sql', 'sql.example', 7);
    const settled = await settledAll();

    const body = await json<Page>(await page(`?after=${start}`));
    expect(body.settled).toBe(settled);
    expect(body.next).toBe(settled);
    const summary = body.changes.map(({ atsign, host, port, status }) => ({ atsign, host, port, status }));
    expect(summary).toEqual([
      { atsign: 'page-alice', host: 'alice.example.com', port: 6464, status: 'active' },
      { atsign: 'page-bob', host: 'bob.example.com', port: 6465, status: 'active' },
      { atsign: 'page-bob', host: 'bob.example.com', port: 6465, status: 'suspended' },
      { atsign: 'page-alice', host: null, port: null, status: null },
      { atsign: 'page-sql', host: 'sql.example', port: 7, status: 'active' },
    ]);
    const versions = body.changes.map((change) => change.version);
    expect(versions).toEqual([...versions].sort((a, b) => a - b));
    expect(versions.every((version) => version > start && version <= settled)).toBe(true);
    expect(versions).not.toContain(rolledBackVersion);
    for (const change of body.changes) {
      expect(Object.keys(change)).toEqual(['version', 'previous', 'atsign', 'host', 'port', 'status', 'changedAt', 'signature']);
      expect(change.changedAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    }
  });

  it('signs every change so that it verifies with the identity key, and a changed field does not', async () => {
    await admin.request('PUT', '/v1/atsigns/signed-carol', { token, body: { host: 'carol.example.com', port: 6464 } });
    await admin.request('DELETE', '/v1/atsigns/signed-carol', { token });
    await settledAll();
    const { changes } = await json<Page>(await page('?after=0&limit=10000'));
    expect(changes.length).toBeGreaterThan(2);
    expect(changes.filter((change) => !verifies(change))).toEqual([]);
    const [change] = changes;
    for (const tampered of [
      { ...change!, version: change!.version + 1 },
      { ...change!, previous: change!.previous + 1 },
      { ...change!, atsign: `${change!.atsign}x` },
      { ...change!, host: 'evil.example' },
      { ...change!, port: 1 },
      { ...change!, status: 'suspended' as const },
      { ...change!, changedAt: '2000-01-01T00:00:00.000Z' },
    ]) {
      expect(verifies(tampered)).toBe(false);
    }
    const deletion = changes.find((entry) => entry.atsign === 'signed-carol' && entry.host === null)!;
    expect(verifies({ ...deletion, host: 'back.example', port: 1, status: 'active' })).toBe(false);
  });

  it('chains every entry to the change before it in the log, across rolled-back versions and deletions, whatever the reader\'s after', async () => {
    await insertRecord(database.pool, 'chain-before', 'chain.example', 1);
    const start = await settledAll();
    await insertRecord(database.pool, 'chain-a', 'chain.example', 1);
    const rolledBack = await openTransaction();
    await rolledBack.query("INSERT INTO atsigns (atsign, host, port) VALUES ('chain-never', 'never.example', 1)");
    const rolledBackVersion = Number((await rolledBack.query("SELECT version FROM atsigns WHERE atsign = 'chain-never'")).rows[0].version);
    await rolledBack.query('ROLLBACK');
    await admin.request('DELETE', '/v1/atsigns/chain-a', { token });
    await insertRecord(database.pool, 'chain-b', 'chain.example', 2);
    await settledAll();

    const whole = await json<Page>(await page(`?after=${start}`));
    expect(whole.changes.map((change) => change.atsign)).toEqual(['chain-a', 'chain-a', 'chain-b']);
    // The first names the last change at or below `after` (not `after` itself, which may carry none).
    expectChained(whole.changes, await versionOf(database, 'chain-before'));
    expect(whole.changes.map((change) => change.previous)).not.toContain(rolledBackVersion);
    // Whatever the reader asked for, the same entry names the same predecessor, and signs it.
    for (const after of [rolledBackVersion, whole.changes[0]!.version, rolledBackVersion - 1]) {
      const part = await json<Page>(await page(`?after=${after}`));
      expect(part.changes).toEqual(whole.changes.filter((change) => change.version > after));
    }
    // One entry a page: every page's first entry still names the one before it.
    const paged: Change[] = [];
    for (let after = start; paged.length < whole.changes.length; ) {
      const one = await json<Page>(await page(`?after=${after}&limit=1`));
      paged.push(...one.changes);
      after = one.next;
    }
    expect(paged).toEqual(whole.changes);
    expect(whole.changes.every(verifies)).toBe(true);
  });

  it('chains the stream the same way: catch-up, the hand-over to live and the shared fan-out', async () => {
    const start = await settledAll();
    await insertRecord(database.pool, 'chain-stream-old', 'chain.example', 1);
    await settledAll();
    // One catches up from the log, then goes live; the other is live from the start.
    const catchingUp = await stream(`?after=${start}`);
    const live = await stream(`?after=${await settledAll()}`);
    const rolledBack = await openTransaction();
    await rolledBack.query("INSERT INTO atsigns (atsign, host, port) VALUES ('chain-stream-never', 'never.example', 1)");
    await rolledBack.query('ROLLBACK');
    await insertRecord(database.pool, 'chain-stream-new', 'chain.example', 1);
    await database.pool.query("DELETE FROM atsigns WHERE atsign = 'chain-stream-new'");
    const last = await settledAll();
    const { changes } = await json<Page>(await page(`?after=${start}`));
    expect(changes.map((change) => change.atsign)).toEqual(['chain-stream-old', 'chain-stream-new', 'chain-stream-new']);
    expectChained(changes, await lastChangeThrough(database, start));
    for (const client of [catchingUp, live]) await client.waitFor((message) => message.id === String(last) || message.id === String(changes.at(-1)!.version));
    expect(catchingUp.changes()).toEqual(changes);
    expect(live.changes()).toEqual(changes.slice(1));
    // A reconnection resuming after the last change gets the next one named after it.
    await insertRecord(database.pool, 'chain-stream-later', 'chain.example', 1);
    const resumed = await stream('', { 'last-event-id': String(last) });
    const later = await versionOf(database, 'chain-stream-later');
    await resumed.waitFor((message) => message.id === String(later));
    expect(resumed.changes().map((change) => change.previous)).toEqual([changes.at(-1)!.version]);
  });

  it('pages with limit: next is the last version of a full page, then the settled horizon', async () => {
    const start = await settledAll();
    for (let i = 0; i < 5; i++) await insertRecord(database.pool, `limit-${i}`, 'limit.example', 1);
    const settled = await settledAll();
    const seen: number[] = [];
    let after = start;
    for (let pages = 0; pages < 3; pages++) {
      const body = await json<Page>(await page(`?after=${after}&limit=2`));
      seen.push(...body.changes.map((change) => change.version));
      if (body.changes.length === 2) expect(body.next).toBe(body.changes[1]!.version);
      else expect(body.next).toBe(body.settled);
      after = body.next;
    }
    expect(seen).toHaveLength(5);
    expect(after).toBe(settled);
    const empty = await json<Page>(await page(`?after=${settled}`));
    expect(empty).toEqual({ changes: [], next: settled, settled });
  });

  it('does not skip a lower version whose transaction commits after a higher one', async () => {
    const start = await settledAll();
    const live = await stream(`?after=${start}`);
    const slow = await openTransaction();
    await slow.query("INSERT INTO atsigns (atsign, host, port) VALUES ('order-slow', 'slow.example', 1)");
    const slowVersion = Number((await slow.query("SELECT version FROM atsigns WHERE atsign = 'order-slow'")).rows[0].version);
    await admin.request('PUT', '/v1/atsigns/order-fast', { token, body: { host: 'fast.example', port: 1 } });
    const fastVersion = await versionOf(database, 'order-fast');
    expect(fastVersion).toBeGreaterThan(slowVersion);

    // The fast change is committed, but the feed must not hand it out while the slow one is pending.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const meanwhile = await json<Page>(await page(`?after=${start}`));
    expect(meanwhile.settled).toBeLessThan(slowVersion);
    expect(meanwhile.changes).toEqual([]);
    expect(live.changes()).toEqual([]);

    // A reader resuming from the last version it was given gets both, in order.
    await slow.query('COMMIT');
    await settledAll();
    const resumed = await json<Page>(await page(`?after=${meanwhile.next}`));
    expect(resumed.changes.map((change) => change.atsign)).toEqual(['order-slow', 'order-fast']);
    await live.waitFor((message) => message.id === String(fastVersion));
    expect(live.changes().map((change) => change.version)).toEqual([slowVersion, fastVersion]);
  });

  it('streams a change committed after the stream opened within a second, signed', async () => {
    const start = await settledAll();
    const live = await stream(`?after=${start}`);
    expect(live.status).toBe(200);
    expect(live.header('content-type')).toBe('text/event-stream; charset=utf-8');
    await live.waitFor((message) => message.comment === 'keepalive');
    const written = Date.now();
    await admin.request('PUT', '/v1/atsigns/stream-dave', { token, body: { host: 'dave.example.com', port: 6464 } });
    const version = await versionOf(database, 'stream-dave');
    const event = await live.waitFor((message) => message.event === 'change');
    expect(Date.now() - written).toBeLessThan(1000);
    expect(event.id).toBe(String(version));
    const change = JSON.parse(event.data!) as Change;
    expect(change).toMatchObject({ version, atsign: 'stream-dave', host: 'dave.example.com', port: 6464, status: 'active' });
    expect(verifies(change)).toBe(true);
  });

  it('catches a stream up from the log, resuming from Last-Event-ID over ?after', async () => {
    const start = await settledAll();
    for (let i = 0; i < 3; i++) await insertRecord(database.pool, `resume-${i}`, 'resume.example', 1);
    await settledAll();
    const first = await versionOf(database, 'resume-0');
    const resumed = await stream('?after=0', { 'last-event-id': String(first) });
    const last = await versionOf(database, 'resume-2');
    await resumed.waitFor((message) => message.id === String(last));
    expect(resumed.changes().map((change) => change.atsign)).toEqual(['resume-1', 'resume-2']);
    expect(start).toBeLessThan(first);
  });

  it('moves the resume point with a settled event when versions carried no change', async () => {
    const start = await settledAll();
    const live = await stream(`?after=${start}`);
    const rolledBack = await openTransaction();
    await rolledBack.query("INSERT INTO atsigns (atsign, host, port) VALUES ('settled-never', 'never.example', 1)");
    await rolledBack.query('ROLLBACK');
    const version = await issued(database);
    const event = await live.waitFor((message) => message.event === 'settled');
    expect(event.id).toBe(String(version));
    expect(JSON.parse(event.data!)).toEqual({ settled: version });
    expect(live.changes()).toEqual([]);
  });

  it('sends a keepalive comment every interval', async () => {
    const live = await stream(`?after=${await settledAll()}`);
    const opened = Date.now();
    // One as the stream opens, then one per interval (of a timer all streams share).
    await live.waitFor(() => live.messages.filter((message) => message.comment === 'keepalive').length >= 3);
    expect(Date.now() - opened).toBeGreaterThanOrEqual(KEEPALIVE_MS - 50);
    expect(live.messages.every((message) => message.comment === 'keepalive')).toBe(true);
  });

  it('counts a stream once against the rate limit, however long it lasts', async () => {
    const limited = await startTestAdmin(database.url, { rateLimit: 3, feed: { keepaliveMs: 50 } });
    try {
      const live = await SseClient.open(limited, readToken, `?after=${await settledAll()}`);
      await live.waitFor(() => live.messages.filter((m) => m.comment === 'keepalive').length >= 4);
      await insertRecord(database.pool, 'rate-limited', 'r.example', 1);
      await live.waitFor((message) => message.event === 'change');
      const statuses = [];
      for (let i = 0; i < 3; i++) statuses.push((await limited.request('GET', '/v1/changes', { token: readToken })).status);
      expect(statuses).toEqual([200, 200, 429]);
      live.close();
    } finally {
      await limited.stop();
    }
  });

  it('closes its streams when the server closes, rather than wait for their clients', async () => {
    const closing = await startTestAdmin(database.url);
    const live = await SseClient.open(closing, readToken);
    await live.waitFor((message) => message.comment === 'keepalive');
    const started = Date.now();
    await closing.stop();
    await live.closed;
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('does not open a stream for HEAD', async () => {
    const subscribers = await metric('atdirectory_feed_subscribers');
    for (const path of ['/v1/changes', '/v1/snapshot']) {
      const response = await admin.request('HEAD', path, { token: readToken, headers: { accept: 'text/event-stream' } });
      expect(response.status).toBe(404);
    }
    expect(await metric('atdirectory_feed_subscribers')).toBe(subscribers);
  });

  describe('refusals', () => {
    const cases: Array<[string, string, Record<string, string>, number, string]> = [
      ['after=-1', '?after=-1', {}, 400, '/problems/invalid-query'],
      ['after=abc', '?after=abc', {}, 400, '/problems/invalid-query'],
      ['after=1.5', '?after=1.5', {}, 400, '/problems/invalid-query'],
      ['after with a leading zero', '?after=01', {}, 400, '/problems/invalid-query'],
      ['after beyond a safe integer', '?after=9007199254740993', {}, 400, '/problems/invalid-query'],
      ['limit=0', '?limit=0', {}, 400, '/problems/invalid-query'],
      ['limit=10001', '?limit=10001', {}, 400, '/problems/invalid-query'],
      ['limit=abc', '?limit=abc', {}, 400, '/problems/invalid-query'],
      ['an unknown parameter', '?since=3', {}, 400, '/problems/invalid-query'],
      ['after never issued', '?after=1000000000', {}, 410, '/problems/resync-required'],
      ['a stream after a version never issued', '?after=1000000000', { accept: 'text/event-stream' }, 410, '/problems/resync-required'],
      ['Last-Event-ID that is not a version', '', { accept: 'text/event-stream', 'last-event-id': 'abc' }, 400, '/problems/invalid-last-event-id'],
      ['Last-Event-ID never issued', '', { accept: 'text/event-stream', 'last-event-id': '1000000000' }, 410, '/problems/resync-required'],
    ];
    for (const [name, query, headers, status, type] of cases) {
      it(`${name} → ${status} ${type}`, async () => {
        const response = await admin.request('GET', `/v1/changes${query}`, { token: readToken, headers });
        expect(response.status).toBe(status);
        expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
        const problem = await json<Problem>(response);
        expect(problem.type).toBe(type);
        if (status === 410) expect(problem.snapshot).toBe('/v1/snapshot');
      });
    }

    it('names the accepted range in the detail', async () => {
      expect((await json<Problem>(await page('?limit=10001'))).detail).toBe('limit must be an integer from 1 to 10000');
      expect((await json<Problem>(await page('?after=-1'))).detail).toBe('after must be a version: an integer from 0');
    });

    it('accepts the bounds: limit=1, limit=10000, after=0', async () => {
      for (const query of ['?limit=1', '?limit=10000', '?after=0']) expect((await page(query)).status).toBe(200);
    });
  });

  describe('scopes', () => {
    it('lets read, registrar and admin keys read the feed and snapshots', async () => {
      for (const bearer of [readToken, await admin.key('registrar', 'acme'), token]) {
        expect((await page('', bearer)).status).toBe(200);
        const snapshot = await admin.request('GET', '/v1/snapshot', { token: bearer });
        expect(snapshot.status).toBe(200);
        await snapshot.text();
      }
    });

    it('refuses the feed and snapshots without a key (401), but not the identity', async () => {
      for (const path of ['/v1/changes', '/v1/snapshot']) {
        const response = await fetch(`${admin.url}${path}`);
        expect(response.status).toBe(401);
        expect((await json<Problem>(response)).type).toBe('/problems/unauthenticated');
      }
      const stream = await fetch(`${admin.url}/v1/changes`, { headers: { accept: 'text/event-stream' } });
      expect(stream.status).toBe(401);
      await stream.text();
      expect((await fetch(`${admin.url}/v1/identity`)).status).toBe(200);
    });
  });

  describe('snapshot', () => {
    interface SnapshotLines {
      header: { type: string; version: number; publicKey: string; createdAt: string };
      records: Array<{ type: string; atsign: string; host: string; port: number; status: string; version: number }>;
      recordText: string;
      end: { type: string; version: number; lastChange: number; count: number; sha256: string; signature: string };
    }

    async function snapshot(): Promise<SnapshotLines> {
      const response = await admin.request('GET', '/v1/snapshot', { token: readToken });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe('application/x-ndjson');
      const text = await response.text();
      expect(text.endsWith('\n')).toBe(true);
      const lines = text.slice(0, -1).split('\n');
      const recordLines = lines.slice(1, -1);
      return {
        header: JSON.parse(lines[0]!) as SnapshotLines['header'],
        records: recordLines.map((line) => JSON.parse(line) as SnapshotLines['records'][number]),
        recordText: recordLines.map((line) => `${line}\n`).join(''),
        end: JSON.parse(lines.at(-1)!) as SnapshotLines['end'],
      };
    }

    it('holds every record, with count, digest and signature that verify', async () => {
      await admin.request('PUT', '/v1/atsigns/snap-erin', { token, body: { host: 'erin.example.com', port: 6464 } });
      await admin.request('PUT', '/v1/atsigns/snap-frank', { token, body: { host: 'frank.example.com', port: 6464 } });
      await admin.request('PATCH', '/v1/atsigns/snap-frank', { token, body: { status: 'suspended', reason: 'abuse' } });
      await admin.request('PUT', '/v1/atsigns/snap-gone', { token, body: { host: 'gone.example.com', port: 6464 } });
      await admin.request('DELETE', '/v1/atsigns/snap-gone', { token });
      const settled = await settledAll();
      const { header, records, recordText, end } = await snapshot();

      expect(Object.keys(header)).toEqual(['type', 'version', 'publicKey', 'createdAt']);
      expect(header).toMatchObject({ type: 'snapshot', version: settled, publicKey: verifier.publicKey });
      expect(Object.keys(records[0]!)).toEqual(['type', 'atsign', 'host', 'port', 'status', 'version']);
      const { rows } = await database.pool.query('SELECT atsign, host, port, status, version::int FROM atsigns');
      expect(records.map(({ type: _type, ...record }) => record).sort((a, b) => a.atsign.localeCompare(b.atsign))).toEqual(
        rows.sort((a: { atsign: string }, b: { atsign: string }) => a.atsign.localeCompare(b.atsign)),
      );
      expect(records.find((record) => record.atsign === 'snap-frank')!.status).toBe('suspended');
      expect(records.find((record) => record.atsign === 'snap-gone')).toBeUndefined();

      expect(Object.keys(end)).toEqual(['type', 'version', 'lastChange', 'count', 'sha256', 'signature']);
      expect(end).toMatchObject({ type: 'end', version: settled, lastChange: await lastChangeThrough(database, settled), count: records.length });
      // snap-gone's deletion is the last change: a reader's chain starts from it, though no record shows it.
      expect(end.lastChange).toBeGreaterThan(Math.max(...records.map((record) => record.version)));
      expect(end.sha256).toBe(createHash('sha256').update(recordText).digest('hex'));
      expect(verifier.verify(snapshotMessage(end), end.signature)).toBe(true);
      expect(verifier.verify(snapshotMessage({ ...end, count: end.count - 1 }), end.signature)).toBe(false);
      expect(verifier.verify(snapshotMessage({ ...end, version: end.version + 1 }), end.signature)).toBe(false);
      expect(verifier.verify(snapshotMessage({ ...end, lastChange: end.lastChange - 1 }), end.signature)).toBe(false);
      expect(verifier.verify(snapshotMessage({ ...end, sha256: createHash('sha256').update('x').digest('hex') }), end.signature)).toBe(false);
    });

    it('reports a version settled before its transaction: following the feed from it reaches the current state', async () => {
      const slow = await openTransaction();
      await slow.query("INSERT INTO atsigns (atsign, host, port) VALUES ('consistent-slow', 'slow.example', 1)");
      const slowVersion = Number((await slow.query("SELECT version FROM atsigns WHERE atsign = 'consistent-slow'")).rows[0].version);
      await admin.request('PUT', '/v1/atsigns/consistent-fast', { token, body: { host: 'fast.example', port: 1 } });
      const taken = await snapshot();
      // The pending transaction holds the horizon below its version...
      expect(taken.header.version).toBeLessThan(slowVersion);
      expect(taken.records.find((record) => record.atsign === 'consistent-slow')).toBeUndefined();
      await slow.query('COMMIT');
      await admin.request('PATCH', '/v1/atsigns/consistent-fast', { token, body: { port: 2 } });
      await settledAll();

      // ...so a mirror applying the feed from it misses nothing.
      const state = new Map(taken.records.map((record) => [record.atsign, { host: record.host, port: record.port, status: record.status }]));
      const { changes } = await json<Page>(await page(`?after=${taken.header.version}&limit=10000`));
      // The first change after it names the snapshot's last change, so a mirror's chain holds.
      expect(changes[0]!.previous).toBe(taken.end.lastChange);
      for (const change of changes) {
        if (change.host === null) state.delete(change.atsign);
        else state.set(change.atsign, { host: change.host, port: change.port!, status: change.status! });
      }
      const { rows } = await database.pool.query<{ atsign: string; host: string; port: number; status: string }>('SELECT atsign, host, port, status FROM atsigns');
      expect(Object.fromEntries(state)).toEqual(Object.fromEntries(rows.map(({ atsign, ...record }) => [atsign, record])));
    });
  });

  it('keeps its counters', async () => {
    expect(await metric('atdirectory_feed_settled_version')).toBe(await settledAll());
    expect(await metric('atdirectory_feed_changes_sent_total{via="page"}')).toBeGreaterThan(0);
    expect(await metric('atdirectory_feed_changes_sent_total{via="stream"}')).toBeGreaterThan(0);
    expect(await metric('atdirectory_feed_snapshots_total{result="completed"}')).toBeGreaterThan(0);
  });

  it('lists the feed in the OpenAPI document', async () => {
    const openapi = await json<{ paths: Record<string, { get: { security?: unknown[] } }> }>(await fetch(`${admin.url}/openapi.json`));
    expect(Object.keys(openapi.paths)).toEqual(expect.arrayContaining(['/v1/changes', '/v1/snapshot', '/v1/identity']));
    expect(openapi.paths['/v1/identity']!.get.security).toEqual([]);
  });
});

describe('change feed after the log was trimmed', () => {
  let database: TestDatabase;
  let admin: TestAdmin;
  let token: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
    token = await admin.key('read');
  });

  afterAll(async () => {
    await admin?.stop();
    await database?.drop();
  });

  it('answers 410 resync-required to a reader the log no longer reaches, and serves one it does', async () => {
    for (let i = 0; i < 3; i++) await insertRecord(database.pool, `old-${i}`, 'old.example', 1);
    await database.pool.query("SELECT trim_atsign_changes('0 seconds')");
    const { rows } = await database.pool.query<{ trimmed: string }>('SELECT trimmed_through_version::text AS trimmed FROM atsign_change_log_state');
    const trimmed = Number(rows[0]!.trimmed);
    expect(trimmed).toBe(3);
    await insertRecord(database.pool, 'new', 'new.example', 1);

    for (const headers of [{}, { accept: 'text/event-stream' }] as Array<Record<string, string>>) {
      const response = await admin.request('GET', `/v1/changes?after=${trimmed - 1}`, { token, headers });
      expect(response.status).toBe(410);
      const problem = await json<Problem>(response);
      expect(problem).toMatchObject({ type: '/problems/resync-required', status: 410, snapshot: '/v1/snapshot' });
      expect(problem.detail).toContain('no longer reaches back');
    }
    const [first] = await changesAfter(trimmed, 1);
    expect(first!.atsign).toBe('new');
    // The change before it is gone from the log, but the trim mark is its version.
    expect(first!.previous).toBe(trimmed);
  });

  it('names the trimmed-through version as the predecessor, in pages and snapshots, when everything below is gone', async () => {
    await database.pool.query("SELECT trim_atsign_changes('0 seconds')");
    const { rows } = await database.pool.query<{ trimmed: string }>('SELECT trimmed_through_version::text AS trimmed FROM atsign_change_log_state');
    const trimmed = Number(rows[0]!.trimmed);
    // A version drawn by a transaction that rolled back, above the mark: never a predecessor.
    const rolledBack = await database.pool.connect();
    try {
      await rolledBack.query('BEGIN');
      await rolledBack.query("INSERT INTO atsigns (atsign, host, port) VALUES ('never', 'never.example', 1)");
      await rolledBack.query('ROLLBACK');
    } finally {
      rolledBack.release();
    }
    const snapshot = await waitForSnapshotAbove(trimmed);
    expect(snapshot.lastChange).toBe(trimmed);
    await insertRecord(database.pool, 'newer', 'new.example', 1);
    for (const after of [trimmed, trimmed + 1]) {
      const [next] = await changesAfter(after, 1);
      expect(next).toMatchObject({ atsign: 'newer', previous: trimmed });
    }
  });

  /** The changes after `after` once `count` of them have settled. */
  async function changesAfter(after: number, count: number): Promise<Change[]> {
    for (let attempt = 0; ; attempt++) {
      const body = await json<Page>(await admin.request('GET', `/v1/changes?after=${after}`, { token }));
      if (body.changes.length === count) return body.changes;
      expect(attempt).toBeLessThan(100);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** The end line of a snapshot taken at a version above `version`. */
  async function waitForSnapshotAbove(version: number): Promise<{ version: number; lastChange: number }> {
    for (let attempt = 0; ; attempt++) {
      const text = await (await admin.request('GET', '/v1/snapshot', { token })).text();
      const end = JSON.parse(text.trim().split('\n').at(-1)!) as { version: number; lastChange: number };
      if (end.version > version) return end;
      expect(attempt).toBeLessThan(100);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }
});

describe('large snapshots and slow subscribers', () => {
  const RECORDS = 50_000;
  const HOST = `${'h'.repeat(200)}.example`;
  let database: TestDatabase;
  let admin: TestAdmin;
  let token: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    admin = await startTestAdmin(database.url);
    token = await admin.key('read');
  });

  afterAll(async () => {
    await admin?.stop();
    await database?.drop();
  });

  /** Many changes with long hosts, so that what a paused client has not read far exceeds socket buffers. */
  async function writeBulk(): Promise<void> {
    await database.pool.query(
      `INSERT INTO atsigns (atsign, host, port) SELECT 'bulk-' || i, $1, 6464 FROM generate_series(1, ${RECORDS}) AS i
        WHERE NOT EXISTS (SELECT 1 FROM atsigns WHERE atsign LIKE 'bulk-%')`,
      [HOST],
    );
  }

  async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
    for (const deadline = Date.now() + 10_000; !(await condition()); ) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  /** A GET whose body the test reads only when it wants to. */
  function rawGet(path: string, headers: Record<string, string> = {}): Promise<IncomingMessage> {
    const { port } = new URL(admin.url);
    return new Promise((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port, path, headers: { authorization: `Bearer ${token}`, ...headers } }, resolve).on('error', reject).end();
    });
  }

  it('drops a subscriber that stops reading instead of buffering for it', async () => {
    const { rows } = await database.pool.query<{ version: string }>('SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS version FROM atsign_version_seq');
    const response = await rawGet(`/v1/changes?after=${rows[0]!.version}`, { accept: 'text/event-stream' });
    response.pause();
    expect(response.statusCode).toBe(200);
    const dropped = await metric('atdirectory_feed_subscribers_dropped_total');
    expect(await metric('atdirectory_feed_subscribers')).toBe(1);
    await writeBulk();
    await until(async () => (await metric('atdirectory_feed_subscribers_dropped_total')) === dropped + 1, 'the subscriber to be dropped');
    expect(await metric('atdirectory_feed_subscribers')).toBe(0);
    response.destroy();
  });

  it(`streams a snapshot of ${RECORDS} records at the client's pace, in bounded memory`, async () => {
    await writeBulk();
    const response = await rawGet('/v1/snapshot');
    expect(response.statusCode).toBe(200);
    // Not reading: the server must stop fetching rather than buffer the rest for us. Its
    // transaction is then still open, with most records unread.
    response.pause();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const { rows } = await database.pool.query<{ state: string }>("SELECT state FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'FETCH%'");
    expect(rows.map((row) => row.state)).toEqual(['idle in transaction']);
    const heapBefore = process.memoryUsage().heapUsed;

    const digest = createHash('sha256');
    let count = 0;
    let header = '';
    let last = '';
    let pending = '';
    let peakHeap = 0;
    for await (const chunk of response) {
      pending += (chunk as Buffer).toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (!header) header = line;
        else if (line.startsWith('{"type":"record"')) {
          digest.update(`${line}\n`);
          count++;
        } else last = line;
      }
      peakHeap = Math.max(peakHeap, process.memoryUsage().heapUsed);
    }
    const end = JSON.parse(last) as { version: number; lastChange: number; count: number; sha256: string; signature: string };
    expect(count).toBe(RECORDS);
    expect(end.count).toBe(RECORDS);
    expect(end.sha256).toBe(digest.digest('hex'));
    const identity = await json<{ publicKey: string }>(await fetch(`${admin.url}/v1/identity`));
    expect(new SignatureVerifier(identity.publicKey).verify(snapshotMessage(end), end.signature)).toBe(true);
    // The whole snapshot is about 12 MB of text; a server holding it would show here.
    expect(peakHeap - heapBefore).toBeLessThan(40 * 1024 * 1024);
  });

  it('streams at most 4 snapshots at once: a fifth gets 503 snapshot-busy with Retry-After', async () => {
    await writeBulk();
    const readers = await Promise.all([1, 2, 3, 4].map(() => rawGet('/v1/snapshot')));
    for (const reader of readers) {
      reader.pause();
      expect(reader.statusCode).toBe(200);
    }
    const refused = await admin.request('GET', '/v1/snapshot', { token });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(((await refused.json()) as Problem).type).toBe('/problems/snapshot-busy');
    for (const reader of readers) reader.destroy();
    await until(async () => (await snapshotStatus()) === 200, 'a snapshot to be served again');
  });

  async function snapshotStatus(): Promise<number> {
    const response = await admin.request('GET', '/v1/snapshot', { token });
    await response.body?.cancel();
    return response.status;
  }
});
