import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mirror, type MirrorSettings } from '../../src/mirror/mirror.js';
import { MirrorStore } from '../../src/mirror/store.js';
import { registry } from '../../src/ops/registry.js';
import { developmentCertificate } from '../../src/tls/certificate.js';
import { startTestAdmin, type TestAdmin } from '../support/admin-harness.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { eventually, startTestLookup, type TestLookup } from '../support/lookup-harness.js';
import { parseMetrics } from '../support/metrics.js';
import { lookupOnce } from '../support/raw-client.js';
import { TamperingProxy } from '../support/tampering-proxy.js';

// A mirror in this process following real sources: admin APIs on their own test databases (the
// producer's feed routes, real HTTP), the mirror's followers writing into a third database, and a
// real lookup process answering from it.

const silent = pino({ level: process.env.MIRROR_TEST_LOG ? 'debug' : 'silent' });

interface Source {
  database: TestDatabase;
  admin: TestAdmin;
  adminToken: string;
  readToken: string;
  publicKey: string;
  keyId: string;
  put(atsign: string, host: string, port: number): Promise<void>;
}

async function startSource(): Promise<Source> {
  const database = await createTestDatabase();
  const admin = await startTestAdmin(database.url);
  const identity = (await (await fetch(`${admin.url}/v1/identity`)).json()) as { publicKey: string; keyId: string };
  const adminToken = await admin.key('admin');
  return {
    database,
    admin,
    adminToken,
    readToken: await admin.key('read'),
    ...identity,
    async put(atsign, host, port) {
      const response = await admin.request('PUT', `/v1/atsigns/${encodeURIComponent(atsign)}`, { token: adminToken, body: { host, port } });
      expect(response.status).toBeLessThan(300);
    },
  };
}

async function stopSource(source: Source): Promise<void> {
  await source.admin.stop();
  await source.database.drop();
}

function settingsFor(sources: Array<Pick<Source, 'admin' | 'publicKey' | 'readToken'>>, urls = sources.map((source) => source.admin.url)): MirrorSettings {
  return {
    mirror: urls,
    mirrorKey: sources.map((source) => source.publicKey),
    mirrorToken: sources.map((source) => source.readToken),
    mirrorCa: '',
    mirrorRetry: 500,
    dbConnectTimeout: 2000,
  };
}

async function metric(name: string): Promise<number> {
  return parseMetrics(await registry.metrics()).get(name) ?? 0;
}

describe('a mirror of one source', () => {
  let central: Source;
  let database: TestDatabase;
  let mirror: Mirror | undefined;
  let lookup: TestLookup;
  let admin: TestAdmin;
  let adminToken: string;
  const answer = (atsign: string) => lookupOnce(lookup.port, atsign);
  const answers = (atsign: string, expected: string, timeoutMs = 3000) => eventually(async () => (await answer(atsign)) === expected, timeoutMs, 25);

  beforeAll(async () => {
    central = await startSource();
    database = await createTestDatabase();
    lookup = await startTestLookup(database.url);
    await central.put('alice', 'alice.example.com', 6464);
    await central.put('bob', 'bob.example.com', 6464);
    const suspended = await central.admin.request('PATCH', '/v1/atsigns/bob', { token: central.adminToken, body: { status: 'suspended', reason: 'unpaid' } });
    expect(suspended.status).toBe(200);
    mirror = await Mirror.start(settingsFor([central]), database.url, silent);
    admin = await startTestAdmin(database.url, { mirror });
    adminToken = await admin.key('admin');
  });

  afterAll(async () => {
    await mirror?.stop();
    await admin?.stop();
    await lookup?.stop();
    await database?.drop();
    await stopSource(central);
  });

  it('takes a verified snapshot, then follows the stream: a write on the source answers here within a second', async () => {
    expect(await answers('alice', '@alice.example.com:6464\r\n@')).toBe(true);
    expect(await answer('bob')).toBe('@null\r\n@');
    expect(mirror!.readiness()).toBe('ok');
    expect(await metric(`atdirectory_mirror_snapshots_total{source="${central.keyId}",result="applied"}`)).toBe(1);

    const written = Date.now();
    await central.put('carol', 'carol.example.com', 7000);
    expect(await answers('carol', '@carol.example.com:7000\r\n@', 1000)).toBe(true);
    expect(Date.now() - written).toBeLessThan(1000);

    await central.put('alice', 'moved.example.com', 6465);
    expect((await central.admin.request('DELETE', '/v1/atsigns/carol', { token: central.adminToken })).status).toBe(204);
    expect((await central.admin.request('PATCH', '/v1/atsigns/bob', { token: central.adminToken, body: { status: 'active' } })).status).toBe(200);
    expect(await answers('carol', '@null\r\n@')).toBe(true);
    expect(await answers('alice', '@moved.example.com:6465\r\n@')).toBe(true);
    expect(await answers('bob', '@bob.example.com:6464\r\n@')).toBe(true);

    const history = (await (await admin.request('GET', '/v1/atsigns/alice/history', { token: adminToken })).json()) as { items: Array<{ action: string; actor: string }> };
    expect(history.items.map(({ action, actor }) => ({ action, actor }))).toEqual([
      { action: 'create', actor: `mirror:${central.keyId}` },
      { action: 'update', actor: `mirror:${central.keyId}` },
    ]);
    expect(await metric(`atdirectory_mirror_connected{source="${central.keyId}"}`)).toBe(1);
    expect(await metric(`atdirectory_mirror_changes_applied_total{source="${central.keyId}"}`)).toBeGreaterThanOrEqual(4);
  });

  it('reports each source on GET /v1/mirror, for any scope', async () => {
    const token = await admin.key('read');
    const response = await admin.request('GET', '/v1/mirror', { token });
    expect(response.status).toBe(200);
    const { sources } = (await response.json()) as { sources: Array<Record<string, unknown>> };
    expect(sources).toEqual([
      {
        url: central.admin.url,
        keyId: central.keyId,
        position: 0,
        versionApplied: expect.any(Number),
        snapshotVersion: expect.any(Number),
        snapshotAt: expect.any(String),
        state: 'following',
        connected: true,
        lastError: null,
        lastErrorAt: null,
        lagSeconds: expect.any(Number),
      },
    ]);
    expect(await metric(`atdirectory_mirror_version{source="${central.keyId}"}`)).toBe(sources[0]!.versionApplied);
    expect((await admin.request('GET', '/v1/mirror')).status).toBe(401);
  });

  it('refuses registrar writes with mirror-read-only, before reading the body; reads and keys work', async () => {
    const refused = (method: string, path: string) => ({
      type: '/problems/mirror-read-only',
      title: 'Mirror is read-only',
      status: 409,
      detail: 'this directory mirrors others and takes no registrar writes; write to its source',
      instance: path,
    });
    const attempts: Array<[string, string, unknown, Record<string, string>?]> = [
      ['PUT', '/v1/atsigns/dave', { host: 'dave.example.com', port: 1 }],
      ['PUT', '/v1/atsigns/dave', { not: 'valid' }],
      ['PATCH', '/v1/atsigns/alice', { status: 'suspended', reason: 'x' }],
      ['DELETE', '/v1/atsigns/alice', undefined],
      ['POST', '/v1/import', '{"atsign":"dave","host":"dave.example.com","port":1}\n', { 'content-type': 'application/x-ndjson' }],
      ['POST', '/v1/import', 'atsign,host,port', { 'content-type': 'text/plain' }],
    ];
    for (const [method, path, body, headers] of attempts) {
      const response = await admin.request(method, path, { token: adminToken, body, headers });
      expect({ method, path, status: response.status, body: await response.json() }).toEqual({ method, path, status: 409, body: refused(method, path) });
    }
    expect((await admin.request('PUT', '/v1/atsigns/dave', { body: { host: 'dave.example.com', port: 1 } })).status).toBe(401);
    expect((await admin.request('GET', '/v1/atsigns/alice', { token: adminToken })).status).toBe(200);
    expect((await admin.request('POST', '/v1/keys', { token: adminToken, body: { registrar: 'ops', scope: 'read' } })).status).toBe(201);
    expect(await answer('dave')).toBe('@null\r\n@');
  });

  it('blocks an atsign: null whatever the feed says, while the record follows underneath; lifting restores the current answer', async () => {
    await central.put('erin', 'erin.example.com', 6464);
    expect(await answers('erin', '@erin.example.com:6464\r\n@')).toBe(true);
    const blocked = await admin.request('PUT', '/v1/blocks/atsigns/@Erin', { token: adminToken, body: { reason: 'phishing' } });
    expect(blocked.status).toBe(201);
    expect(blocked.headers.get('location')).toBe('/v1/blocks/atsigns/erin');
    const actor = ((await blocked.clone().json()) as { actor: string }).actor;
    expect(await blocked.json()).toEqual({ kind: 'atsign', target: 'erin', reason: 'phishing', actor, createdAt: expect.any(String) });
    expect(await answers('erin', '@null\r\n@')).toBe(true);

    await central.put('erin', 'erin2.example.com', 6464);
    expect(
      await eventually(async () => {
        const record = (await (await admin.request('GET', '/v1/atsigns/erin', { token: adminToken })).json()) as { host: string };
        return record.host === 'erin2.example.com';
      }),
    ).toBe(true);
    expect(await answer('erin')).toBe('@null\r\n@');
    const record = (await (await admin.request('GET', '/v1/atsigns/erin', { token: adminToken })).json()) as Record<string, unknown>;
    expect(record).toMatchObject({ status: 'suspended', suspensionReason: 'blocked locally: phishing' });

    const reworded = await admin.request('PUT', '/v1/blocks/atsigns/erin', { token: adminToken, body: { reason: 'phishing, confirmed' } });
    expect(reworded.status).toBe(200);
    const list = (await (await admin.request('GET', '/v1/blocks', { token: adminToken })).json()) as { items: unknown[] };
    expect(list.items).toEqual([{ kind: 'atsign', target: 'erin', reason: 'phishing, confirmed', actor, createdAt: expect.any(String) }]);

    expect((await admin.request('DELETE', '/v1/blocks/atsigns/erin', { token: adminToken })).status).toBe(204);
    expect(await answers('erin', '@erin2.example.com:6464\r\n@')).toBe(true);
    const again = await admin.request('DELETE', '/v1/blocks/atsigns/erin', { token: adminToken });
    expect(again.status).toBe(404);
    expect(await again.json()).toMatchObject({ type: '/problems/not-found', detail: '@erin is not blocked' });
    const history = (await (await admin.request('GET', '/v1/atsigns/erin/history', { token: adminToken })).json()) as { items: Array<{ action: string; actor: string; reason: string | null }> };
    expect(history.items.map(({ action, actor: by, reason }) => ({ action, by, reason }))).toEqual([
      { action: 'create', by: `mirror:${central.keyId}`, reason: null },
      { action: 'suspend', by: actor, reason: 'phishing' },
      { action: 'update', by: `mirror:${central.keyId}`, reason: null },
      { action: 'update', by: actor, reason: 'phishing, confirmed' },
      { action: 'reactivate', by: actor, reason: 'local block lifted' },
    ]);
  });

  it('blocks the whole source: its atsigns answer null until the block is lifted', async () => {
    expect(await answers('alice', '@moved.example.com:6465\r\n@')).toBe(true);
    const blocked = await admin.request('PUT', `/v1/blocks/sources/${central.keyId}`, { token: adminToken, body: { reason: 'compromised' } });
    expect(blocked.status).toBe(201);
    expect(blocked.headers.get('location')).toBe(`/v1/blocks/sources/${central.keyId}`);
    expect(await answers('alice', '@null\r\n@')).toBe(true);
    expect(await answers('bob', '@null\r\n@')).toBe(true);
    expect((await admin.request('DELETE', `/v1/blocks/sources/${central.keyId}`, { token: adminToken })).status).toBe(204);
    expect(await answers('alice', '@moved.example.com:6465\r\n@')).toBe(true);
    expect(await answers('bob', '@bob.example.com:6464\r\n@')).toBe(true);
  });

  it('answers bad block requests with exact problems', async () => {
    const readToken = await admin.key('read');
    const cases: Array<[string, string, { token?: string; body?: unknown }, number, string, string?]> = [
      ['PUT', '/v1/blocks/atsigns/alice', { token: adminToken, body: {} }, 400, 'block-reason-required'],
      ['PUT', '/v1/blocks/atsigns/alice', { token: adminToken }, 400, 'block-reason-required'],
      ['PUT', '/v1/blocks/atsigns/alice', { token: adminToken, body: { reason: '   ' } }, 400, 'block-reason-required'],
      ['PUT', '/v1/blocks/atsigns/alice', { token: adminToken, body: { reason: 'x', until: 'never' } }, 400, 'unknown-field', 'unknown field "until"'],
      ['PUT', '/v1/blocks/atsigns/alice', { token: adminToken, body: { reason: 'a\u0000b' } }, 400, 'invalid-body', 'the reason must not contain NUL characters'],
      ['PUT', '/v1/blocks/atsigns/a%20b', { token: adminToken, body: { reason: 'x' } }, 400, 'invalid-atsign'],
      ['PUT', '/v1/blocks/sources/0123456789abcdef', { token: adminToken, body: { reason: 'x' } }, 404, 'unknown-source', 'no --mirror source signs with key id 0123456789abcdef'],
      ['DELETE', '/v1/blocks/sources/0123456789abcdef', { token: adminToken }, 404, 'not-found', 'source 0123456789abcdef is not blocked'],
      ['PUT', '/v1/blocks/atsigns/alice', { token: readToken, body: { reason: 'x' } }, 403, 'forbidden', 'a read key cannot do this; it needs admin scope'],
      ['DELETE', '/v1/blocks/atsigns/alice', { token: readToken }, 403, 'forbidden'],
      ['GET', '/v1/blocks', {}, 401, 'unauthenticated'],
    ];
    for (const [method, path, options, status, type, detail] of cases) {
      const response = await admin.request(method, path, options);
      const body = (await response.json()) as { type: string; detail?: string };
      expect({ method, path, status: response.status, type: body.type }).toEqual({ method, path, status, type: `/problems/${type}` });
      if (detail) expect(body.detail).toBe(detail);
    }
    expect((await admin.request('GET', '/v1/blocks', { token: readToken })).status).toBe(200);
    expect(await answer('alice')).toBe('@moved.example.com:6465\r\n@');
  });

  it('a directory that mirrors nothing refuses block writes with not-a-mirror and lists no sources', async () => {
    const put = await central.admin.request('PUT', '/v1/blocks/atsigns/alice', { token: central.adminToken, body: { reason: 'x' } });
    expect(put.status).toBe(409);
    expect(await put.json()).toEqual({
      type: '/problems/not-a-mirror',
      title: 'Not a mirror',
      status: 409,
      instance: '/v1/blocks/atsigns/alice',
    });
    expect((await central.admin.request('DELETE', `/v1/blocks/sources/${central.keyId}`, { token: central.adminToken })).status).toBe(409);
    expect(await (await central.admin.request('GET', '/v1/mirror', { token: central.readToken })).json()).toEqual({ sources: [] });
    expect(await (await central.admin.request('GET', '/v1/blocks', { token: central.adminToken })).json()).toEqual({ items: [] });
    // The source's own writes are not refused.
    await central.put('frank', 'frank.example.com', 1);
  });

  it('snapshots again when the source answers 410 resync-required, keeping every answer meanwhile', async () => {
    await mirror!.stop();
    mirror = undefined;
    await central.put('gina', 'gina.example.com', 6464);
    // The change log no longer reaches the version the mirror applied.
    await central.database.pool.query(`SELECT trim_atsign_changes('0 seconds')`);
    const snapshots = await metric(`atdirectory_mirror_snapshots_total{source="${central.keyId}",result="applied"}`);
    expect(await answer('alice')).toBe('@moved.example.com:6465\r\n@');
    mirror = await Mirror.start(settingsFor([central]), database.url, silent);
    expect(await answers('gina', '@gina.example.com:6464\r\n@')).toBe(true);
    expect(await metric(`atdirectory_mirror_snapshots_total{source="${central.keyId}",result="applied"}`)).toBe(snapshots + 1);
    expect(await answer('alice')).toBe('@moved.example.com:6465\r\n@');
    await central.put('gina', 'gina2.example.com', 6464);
    expect(await answers('gina', '@gina2.example.com:6464\r\n@')).toBe(true);
  });

  it('with a --mirror-key the source does not sign with, refuses its snapshot and goes on answering what it has', async () => {
    await mirror!.stop();
    const other = await startSource();
    let fresh: TestDatabase | undefined;
    try {
      mirror = await Mirror.start({ ...settingsFor([central]), mirrorKey: [other.publicKey] }, database.url, silent);
      const label = `source="${other.keyId}",result="refused"`;
      expect(await eventually(async () => (await metric(`atdirectory_mirror_snapshots_total{${label}}`)) >= 1)).toBe(true);
      const [status] = mirror.status();
      expect(status).toMatchObject({ keyId: other.keyId, versionApplied: null, connected: false, state: 'retrying' });
      expect(status!.lastError).toBe(`the source signs with public key ${JSON.stringify(central.publicKey)}, not the --mirror-key given (key id ${other.keyId})`);
      // It holds the records of an earlier snapshot, and answers them.
      expect(mirror.readiness()).toBe('ok');
      expect(await answer('alice')).toBe('@moved.example.com:6465\r\n@');
      await mirror.stop();
      // A mirror that never applied a snapshot of its source is not ready.
      fresh = await createTestDatabase();
      mirror = await Mirror.start({ ...settingsFor([central]), mirrorKey: [other.publicKey] }, fresh.url, silent);
      const started = mirror;
      expect(await eventually(() => started.status()[0]!.lastError !== null)).toBe(true);
      expect(mirror.readiness()).toBe(`waiting for the first snapshot of ${central.admin.url}`);
    } finally {
      await mirror!.stop();
      mirror = undefined;
      await fresh?.drop();
      await stopSource(other);
    }
  });

  it('says so when the source refuses its token, and is not ready', async () => {
    const fresh = await createTestDatabase();
    const refused = await Mirror.start({ ...settingsFor([central]), mirrorToken: ['atd_aaaaaaaaaaaaaaaa_wrong'] }, fresh.url, silent);
    try {
      expect(await eventually(() => refused.status()[0]!.lastError !== null)).toBe(true);
      expect(refused.status()[0]!.lastError).toContain(
        `${central.admin.url}/v1/snapshot answered 401 (check --mirror-token: it needs a key of scope read): {"type":"/problems/unauthenticated"`,
      );
      expect(refused.readiness()).toBe(`waiting for the first snapshot of ${central.admin.url}`);
      expect(await metric(`atdirectory_mirror_snapshots_total{source="${central.keyId}",result="failed"}`)).toBeGreaterThanOrEqual(1);
    } finally {
      await refused.stop();
      await fresh.drop();
    }
  });
});

describe('a mirror of several sources', () => {
  let first: Source;
  let second: Source;
  let database: TestDatabase;
  let mirror: Mirror | undefined;
  let lookup: TestLookup;
  let admin: TestAdmin;
  const answer = (atsign: string) => lookupOnce(lookup.port, atsign);
  const answers = (atsign: string, expected: string) => eventually(async () => (await answer(atsign)) === expected, 3000, 25);

  beforeAll(async () => {
    [first, second] = await Promise.all([startSource(), startSource()]);
    database = await createTestDatabase();
    lookup = await startTestLookup(database.url);
    await first.put('shared', 'first.example.com', 1);
    await second.put('shared', 'second.example.com', 2);
    await second.put('only-second', 'second.example.com', 3);
    // A row written before this directory became a mirror, which no source has.
    await database.pool.query(`INSERT INTO atsigns (atsign, host, port) VALUES ('local', 'local.example.com', 4)`);
    mirror = await Mirror.start(settingsFor([first, second]), database.url, silent);
    admin = await startTestAdmin(database.url, { mirror });
  });

  afterAll(async () => {
    await mirror?.stop();
    await admin?.stop();
    await lookup?.stop();
    await database?.drop();
    await Promise.all([stopSource(first), stopSource(second)]);
  });

  it('answers a shared atsign from the first source listed, and the rest from whichever has them', async () => {
    expect(await answers('only-second', '@second.example.com:3\r\n@')).toBe(true);
    expect(await answers('shared', '@first.example.com:1\r\n@')).toBe(true);
    expect(await answer('local')).toBe('@null\r\n@');
    expect((await admin.request('DELETE', '/v1/atsigns/shared', { token: await admin.key('admin') })).status).toBe(409);
    expect((await first.admin.request('DELETE', '/v1/atsigns/shared', { token: first.adminToken })).status).toBe(204);
    expect(await answers('shared', '@second.example.com:2\r\n@')).toBe(true);
    await first.put('shared', 'first.example.com', 1);
    expect(await answers('shared', '@first.example.com:1\r\n@')).toBe(true);
  });

  it('a blocked source gives way to the next source that has the atsign', async () => {
    const token = await admin.key('admin');
    expect((await admin.request('PUT', `/v1/blocks/sources/${first.keyId}`, { token, body: { reason: 'audit' } })).status).toBe(201);
    expect(await answers('shared', '@second.example.com:2\r\n@')).toBe(true);
    await first.put('first-only', 'first.example.com', 5);
    expect(await eventually(async () => (await database.pool.query(`SELECT 1 FROM mirror_records WHERE atsign = 'first-only'`)).rowCount === 1)).toBe(true);
    expect(await answer('first-only')).toBe('@null\r\n@');
    expect((await admin.request('DELETE', `/v1/blocks/sources/${first.keyId}`, { token })).status).toBe(204);
    expect(await answers('shared', '@first.example.com:1\r\n@')).toBe(true);
    expect(await answer('first-only')).toBe('@first.example.com:5\r\n@');
  });

  it('re-derives every answer when the sources are listed in another order, and drops a source no longer listed', async () => {
    await mirror!.stop();
    mirror = await Mirror.start(settingsFor([second, first]), database.url, silent);
    expect(await answers('shared', '@second.example.com:2\r\n@')).toBe(true);
    await mirror.stop();
    mirror = await Mirror.start(settingsFor([first]), database.url, silent);
    expect(await answers('only-second', '@null\r\n@')).toBe(true);
    expect(await answer('shared')).toBe('@first.example.com:1\r\n@');
  });

  it('a source whose key changed is snapshotted again, its records answering until then', async () => {
    await mirror!.stop();
    mirror = undefined;
    const store = new MirrorStore(database.pool);
    const [stored] = await store.syncSources([{ url: first.admin.url, publicKey: second.publicKey, keyId: second.keyId }]);
    expect(stored!.versionApplied).toBeNull();
    expect(await answer('shared')).toBe('@first.example.com:1\r\n@');
  });
});

describe('a mirror following through a man in the middle', () => {
  let central: Source;
  let proxy: TamperingProxy & { url: string };
  let database: TestDatabase;
  let mirror: Mirror;
  let lookup: TestLookup;
  const answer = (atsign: string) => lookupOnce(lookup.port, atsign);
  const answers = (atsign: string, expected: string) => eventually(async () => (await answer(atsign)) === expected, 5000, 25);
  const gaps = () => metric(`atdirectory_mirror_changes_refused_total{source="${central.keyId}",reason="gap"}`);

  beforeAll(async () => {
    central = await startSource();
    proxy = await TamperingProxy.start(central.admin.url);
    database = await createTestDatabase();
    lookup = await startTestLookup(database.url);
    await central.put('phish', 'phish.example.com', 6464);
    await central.put('forged', 'forged.example.com', 6464);
    mirror = await Mirror.start(settingsFor([central], [proxy.url]), database.url, silent);
    // The snapshot may be at a version below these writes (the horizon lags them): the stream then
    // replays them, and they must have gone by before the proxy is told to tamper with the next.
    const { rows } = await central.database.pool.query<{ version: string }>('SELECT max(version)::text AS version FROM atsigns');
    expect(await eventually(() => (mirror.status()[0]!.versionApplied ?? 0) >= Number(rows[0]!.version))).toBe(true);
    expect(await answers('phish', '@phish.example.com:6464\r\n@')).toBe(true);
  });

  afterAll(async () => {
    await mirror?.stop();
    await lookup?.stop();
    await proxy?.close();
    await database?.drop();
    await stopSource(central);
  });

  async function suspend(atsign: string): Promise<number> {
    const response = await central.admin.request('PATCH', `/v1/atsigns/${atsign}`, { token: central.adminToken, body: { status: 'suspended', reason: 'phishing' } });
    expect(response.status).toBe(200);
    return ((await response.json()) as { version: number }).version;
  }

  it('refuses the change after a dropped one as a gap, then obtains the dropped one from the source', async () => {
    const before = await gaps();
    proxy.tamperWith({ atsign: 'phish', action: 'drop' });
    await suspend('phish');
    expect(await eventually(() => proxy.tampered === 1)).toBe(true);
    expect(await answer('phish')).toBe('@phish.example.com:6464\r\n@');

    await central.put('after-drop', 'after.example.com', 1);
    expect(await answers('phish', '@null\r\n@')).toBe(true);
    expect(await answers('after-drop', '@after.example.com:1\r\n@')).toBe(true);
    expect(await gaps()).toBe(before + 1);
    expect(proxy.tampered).toBe(1);
    expect(mirror.status()[0]!.lastError).toMatch(/^change \d+ follows change \d+, but the last change applied here is \d+: a change between them did not arrive$/);
  });

  it('a forged settled event jumping past a change cannot make the mirror skip it', async () => {
    const before = await gaps();
    proxy.tamperWith({ atsign: 'forged', action: 'settle' });
    const suspension = await suspend('forged');
    // The resume point moved past the suspension, which never arrived: without the chain, nothing would bring it back.
    expect(await eventually(() => proxy.tampered === 2 && mirror.status()[0]!.versionApplied! >= suspension)).toBe(true);
    expect(await answer('forged')).toBe('@forged.example.com:6464\r\n@');

    await central.put('after-forged', 'after.example.com', 2);
    expect(await answers('forged', '@null\r\n@')).toBe(true);
    expect(await answers('after-forged', '@after.example.com:2\r\n@')).toBe(true);
    expect(await gaps()).toBe(before + 1);
    const { rows } = await database.pool.query<{ last_change: string }>('SELECT last_change::text FROM mirror_sources');
    expect(Number(rows[0]!.last_change)).toBeGreaterThan(suspension);
  });

  it('a legitimate sequence never looks like a gap: rolled-back versions, deletions, a restart, a 410 and a new snapshot', async () => {
    const before = await gaps();
    const rolledBack = await central.database.pool.connect();
    try {
      await rolledBack.query('BEGIN');
      await rolledBack.query("INSERT INTO atsigns (atsign, host, port) VALUES ('never', 'never.example', 1)");
      await rolledBack.query('ROLLBACK');
    } finally {
      rolledBack.release();
    }
    expect((await central.admin.request('DELETE', '/v1/atsigns/after-drop', { token: central.adminToken })).status).toBe(204);
    await central.put('legit', 'legit.example.com', 1);
    expect(await answers('legit', '@legit.example.com:1\r\n@')).toBe(true);
    expect(await answer('after-drop')).toBe('@null\r\n@');

    // Resumed by a new run from what the last one committed.
    await mirror.stop();
    await central.put('legit', 'legit.example.com', 2);
    mirror = await Mirror.start(settingsFor([central], [proxy.url]), database.url, silent);
    expect(await answers('legit', '@legit.example.com:2\r\n@')).toBe(true);

    // The log no longer reaches the mirror: 410, a new snapshot, and its chain starts from the snapshot's last change.
    await mirror.stop();
    await central.put('legit', 'legit.example.com', 3);
    await central.database.pool.query(`SELECT trim_atsign_changes('0 seconds')`);
    mirror = await Mirror.start(settingsFor([central], [proxy.url]), database.url, silent);
    expect(await answers('legit', '@legit.example.com:3\r\n@')).toBe(true);
    await central.put('legit', 'legit.example.com', 4);
    expect(await answers('legit', '@legit.example.com:4\r\n@')).toBe(true);
    expect(await gaps()).toBe(before);
  });
});

describe('a mirror of an https:// source', () => {
  let central: Source;
  let proxy: TamperingProxy & { url: string };
  let directory: string;
  let certPath: string;
  let database: TestDatabase;
  let lookup: TestLookup;

  beforeAll(async () => {
    central = await startSource();
    await central.put('alice', 'alice.example.com', 6464);
    directory = await mkdtemp(join(tmpdir(), 'atdirectory-mirror-ca-'));
    // The development certificate is self-signed: trusted only when given as --mirror-ca.
    const certificate = await developmentCertificate(directory);
    certPath = certificate.certPath;
    proxy = await TamperingProxy.start(central.admin.url, { tls: { cert: certificate.cert, key: certificate.key } });
    database = await createTestDatabase();
    lookup = await startTestLookup(database.url);
  });

  afterAll(async () => {
    await lookup?.stop();
    await proxy?.close();
    await database?.drop();
    await stopSource(central);
    await rm(directory, { recursive: true, force: true });
  });

  it('without --mirror-ca refuses the source\'s certificate, says why and counts it; with it follows; then without it answers what it holds', async () => {
    const logs: Array<{ msg: string; reason?: string }> = [];
    const logger = pino({ level: 'warn' }, new Writable({ write: (line: Buffer, _encoding, done) => done(void logs.push(JSON.parse(line.toString()))) }));
    const refusal = `cannot reach ${proxy.url}: DEPTH_ZERO_SELF_SIGNED_CERT (its certificate is not trusted: see --mirror-ca)`;
    const untrusted = () => Mirror.start(settingsFor([central], [proxy.url]), database.url, logger);

    let mirror = await untrusted();
    try {
      expect(await eventually(() => mirror.status()[0]!.lastError !== null)).toBe(true);
      expect(mirror.status()[0]!.lastError).toBe(refusal);
      expect(await metric(`atdirectory_mirror_snapshots_total{source="${central.keyId}",result="failed"}`)).toBeGreaterThanOrEqual(1);
      expect(logs.some((line) => line.msg.startsWith('mirror source unavailable') && line.reason === refusal)).toBe(true);
      expect(mirror.readiness()).toBe(`waiting for the first snapshot of ${proxy.url}`);
    } finally {
      await mirror.stop();
    }

    mirror = await Mirror.start({ ...settingsFor([central], [proxy.url]), mirrorCa: certPath }, database.url, silent);
    try {
      expect(await eventually(async () => (await lookupOnce(lookup.port, 'alice')) === '@alice.example.com:6464\r\n@')).toBe(true);
      expect(await eventually(() => mirror.status()[0]!.connected)).toBe(true);
      expect(mirror.status()[0]!.lastError).toBeNull();
    } finally {
      await mirror.stop();
    }

    // Resuming the change stream now, refused the same way, while what it holds keeps answering.
    mirror = await untrusted();
    try {
      expect(await eventually(() => mirror.status()[0]!.lastError !== null)).toBe(true);
      expect(mirror.status()[0]).toMatchObject({ connected: false, state: 'retrying', lastError: refusal });
      expect(await lookupOnce(lookup.port, 'alice')).toBe('@alice.example.com:6464\r\n@');
      expect(mirror.readiness()).toBe('ok');
    } finally {
      await mirror.stop();
    }
  });

  it('stops at start on a --mirror-ca it cannot read or that holds no certificate', async () => {
    const missing = join(directory, 'missing.pem');
    await expect(Mirror.start({ ...settingsFor([central], [proxy.url]), mirrorCa: missing }, database.url, silent)).rejects.toThrow(`cannot read --mirror-ca ${missing}: ENOENT`);
    const empty = join(directory, 'empty.pem');
    await writeFile(empty, 'not a certificate\n');
    await expect(Mirror.start({ ...settingsFor([central], [proxy.url]), mirrorCa: empty }, database.url, silent)).rejects.toThrow(`--mirror-ca ${empty} holds no PEM certificate`);
  });
});
