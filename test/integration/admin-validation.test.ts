import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { startTestAdmin, type TestAdmin } from '../support/admin-harness.js';

let database: TestDatabase;
let admin: TestAdmin;
let token: string;

beforeAll(async () => {
  database = await createTestDatabase();
  admin = await startTestAdmin(database.url);
  token = await admin.key('admin');
  await admin.request('PUT', '/v1/atsigns/alice', { token, body: { host: 'alice.example.com', port: 6464 } });
});

afterAll(async () => {
  await admin?.stop();
  await database?.drop();
});

async function problem(response: Response): Promise<{ status: number; type: string; detail?: string; contentType: string | null }> {
  const body = (await response.json()) as { type: string; status: number; detail?: string };
  expect(body.status).toBe(response.status);
  return { status: response.status, type: body.type, detail: body.detail, contentType: response.headers.get('content-type') };
}

const PUT = (path: string, body: unknown, headers?: Record<string, string>) => admin.request('PUT', path, { token, body, headers });

describe('every refusal is RFC 9457 problem+json with a stable type', () => {
  const cases: Array<[string, () => Promise<Response>, number, string]> = [
    ['empty atsign', () => PUT('/v1/atsigns/%40', { host: 'a.example', port: 1 }), 400, '/problems/invalid-atsign'],
    ['atsign over 55 characters', () => PUT(`/v1/atsigns/${'a'.repeat(56)}`, { host: 'a.example', port: 1 }), 400, '/problems/invalid-atsign'],
    ['atsign with whitespace', () => PUT('/v1/atsigns/al%20ice', { host: 'a.example', port: 1 }), 400, '/problems/invalid-atsign'],
    ['atsign with a control character', () => PUT('/v1/atsigns/al%01ice', { host: 'a.example', port: 1 }), 400, '/problems/invalid-atsign'],
    ['atsign with ":"', () => PUT('/v1/atsigns/al%3Aice', { host: 'a.example', port: 1 }), 400, '/problems/invalid-atsign'],
    ['atsign with a second "@"', () => PUT('/v1/atsigns/%40al%40ice', { host: 'a.example', port: 1 }), 400, '/problems/invalid-atsign'],
    ['host that is not a DNS name', () => PUT('/v1/atsigns/bob', { host: 'bad_host.example', port: 1 }), 400, '/problems/invalid-host'],
    ['host over 253 characters', () => PUT('/v1/atsigns/bob', { host: `${'a.'.repeat(127)}ab`, port: 1 }), 400, '/problems/invalid-host'],
    ['host label over 63 characters', () => PUT('/v1/atsigns/bob', { host: `${'a'.repeat(64)}.example`, port: 1 }), 400, '/problems/invalid-host'],
    ['host that is not a string', () => PUT('/v1/atsigns/bob', { host: 42, port: 1 }), 400, '/problems/invalid-host'],
    ['IPv6 host', () => PUT('/v1/atsigns/bob', { host: '2001:db8::1', port: 1 }), 400, '/problems/ipv6-host'],
    ['port 0', () => PUT('/v1/atsigns/bob', { host: 'b.example', port: 0 }), 400, '/problems/invalid-port'],
    ['port 65536', () => PUT('/v1/atsigns/bob', { host: 'b.example', port: 65536 }), 400, '/problems/invalid-port'],
    ['port as a string', () => PUT('/v1/atsigns/bob', { host: 'b.example', port: '6464' }), 400, '/problems/invalid-port'],
    ['fractional port', () => PUT('/v1/atsigns/bob', { host: 'b.example', port: 64.5 }), 400, '/problems/invalid-port'],
    ['unknown body field', () => PUT('/v1/atsigns/bob', { host: 'b.example', port: 1, owner: 'x' }), 400, '/problems/unknown-field'],
    ['missing port', () => PUT('/v1/atsigns/bob', { host: 'b.example' }), 400, '/problems/invalid-body'],
    ['malformed JSON', () => PUT('/v1/atsigns/bob', '{"host":', { 'content-type': 'application/json' }), 400, '/problems/malformed-json'],
    ['body over the limit', () => PUT('/v1/atsigns/bob', { host: 'b.example', port: 1, pad: 'x'.repeat(70_000) }), 413, '/problems/body-too-large'],
    ['wrong media type', () => PUT('/v1/atsigns/bob', 'host=b', { 'content-type': 'application/x-www-form-urlencoded' }), 415, '/problems/unsupported-media-type'],
    ['empty PATCH', () => admin.request('PATCH', '/v1/atsigns/alice', { token, body: {} }), 400, '/problems/invalid-body'],
    ['suspension without reason', () => admin.request('PATCH', '/v1/atsigns/alice', { token, body: { status: 'suspended' } }), 400, '/problems/reason-required'],
    ['unknown status', () => admin.request('PATCH', '/v1/atsigns/alice', { token, body: { status: 'gone' } }), 400, '/problems/invalid-body'],
    ['malformed If-Match', () => PUT('/v1/atsigns/alice', { host: 'a.example', port: 1 }, { 'if-match': '12' }), 400, '/problems/invalid-precondition'],
    ['stale If-Match', () => PUT('/v1/atsigns/alice', { host: 'a.example', port: 1 }, { 'if-match': '"999999"' }), 412, '/problems/precondition-failed'],
    ['weak If-Match', () => PUT('/v1/atsigns/alice', { host: 'a.example', port: 1 }, { 'if-match': 'W/"1"' }), 412, '/problems/precondition-failed'],
    ['If-Match on a missing atsign', () => PUT('/v1/atsigns/nobody', { host: 'a.example', port: 1 }, { 'if-match': '*' }), 412, '/problems/precondition-failed'],
    ['unknown atsign', () => admin.request('GET', '/v1/atsigns/nobody', { token }), 404, '/problems/not-found'],
    ['PATCH of an unknown atsign', () => admin.request('PATCH', '/v1/atsigns/nobody', { token, body: { port: 2 } }), 404, '/problems/not-found'],
    ['DELETE of an unknown atsign', () => admin.request('DELETE', '/v1/atsigns/nobody', { token }), 404, '/problems/not-found'],
    ['unknown route', () => admin.request('GET', '/v1/nothing', { token }), 404, '/problems/not-found'],
    ['unknown query parameter', () => admin.request('GET', '/v1/atsigns?sort=desc', { token }), 400, '/problems/invalid-query'],
    ['non-numeric limit', () => admin.request('GET', '/v1/atsigns?limit=ten', { token }), 400, '/problems/invalid-query'],
    ['zero limit', () => admin.request('GET', '/v1/atsigns?limit=0', { token }), 400, '/problems/invalid-query'],
    ['forged cursor', () => admin.request('GET', '/v1/atsigns?cursor=bm9wZQ', { token }), 400, '/problems/invalid-cursor'],
    ['unknown verify value', () => admin.request('PUT', '/v1/atsigns/bob?verify=yes', { token, body: { host: 'b.example', port: 1 } }), 400, '/problems/invalid-query'],
    ['key with a bad scope', () => admin.request('POST', '/v1/keys', { token, body: { registrar: 'x', scope: 'root' } }), 400, '/problems/invalid-body'],
    // Found by test/integration/admin-fuzz.test.ts: each of these used to be a 500 or a non-problem.
    ['NUL in a suspension reason', () => admin.request('PATCH', '/v1/atsigns/alice', { token, body: { status: 'suspended', reason: 'a\u0000b' } }), 400, '/problems/invalid-body'],
    ['control character in a registrar', () => PUT('/v1/atsigns/bob', { host: 'b.example', port: 1, registrar: 'a\u0000b' }), 400, '/problems/invalid-body'],
    ['control character in a key\'s registrar', () => admin.request('POST', '/v1/keys', { token, body: { registrar: '\u0000', scope: 'read' } }), 400, '/problems/invalid-body'],
    ['control character in a listing filter', () => admin.request('GET', '/v1/atsigns?prefix=%00', { token }), 400, '/problems/invalid-query'],
    ['control character in an import registrar', () => admin.request('POST', '/v1/import?registrar=%00', { token, body: 'a,a.example,1\n', headers: { 'content-type': 'text/csv' } }), 400, '/problems/invalid-query'],
    ['cursor naming a NUL', () => admin.request('GET', `/v1/atsigns?cursor=${Buffer.from('a:\u0000').toString('base64url')}`, { token }), 400, '/problems/invalid-cursor'],
    ['key id that cannot exist', () => admin.request('DELETE', '/v1/keys/%00', { token }), 404, '/problems/not-found'],
    ['path that is not UTF-8', () => admin.request('GET', '/v1/atsigns/%80', { token }), 400, '/problems/invalid-url'],
    ['path segment over 1000 characters', () => admin.request('GET', `/v1/atsigns/${'a'.repeat(1001)}`, { token }), 414, '/problems/uri-too-long'],
    ['If-Match with a leading zero', () => PUT('/v1/atsigns/alice', { host: 'alice.example.com', port: 6464 }, { 'if-match': '"0' + '1"' }), 412, '/problems/precondition-failed'],
    ['unknown problem type named like an object property', () => admin.request('GET', '/problems/constructor'), 404, '/problems/not-found'],
  ];
  it.each(cases)('%s', async (_name, send, status, type) => {
    const result = await problem(await send());
    expect(result).toMatchObject({ status, type, contentType: 'application/problem+json; charset=utf-8' });
  });

  it('nothing was written by any refused request', async () => {
    const response = await admin.request('GET', '/v1/atsigns', { token });
    const page = (await response.json()) as { items: Array<{ atsign: string; host: string; port: number }> };
    expect(page.items.map(({ atsign, host, port }) => ({ atsign, host, port }))).toEqual([{ atsign: 'alice', host: 'alice.example.com', port: 6464 }]);
  });

  it('answers headers over 16 KiB with a problem, not the framework\'s own body', async () => {
    const response = await admin.request('GET', `/v1/atsigns?prefix=${'a'.repeat(17_000)}`, { token });
    expect(response.status).toBe(431);
    expect(response.headers.get('content-type')).toBe('application/problem+json');
    expect(await response.json()).toEqual({ type: '/problems/headers-too-large', title: 'Request headers too large', status: 431 });
  });

  it('explains why an IPv6 host cannot be served', async () => {
    const result = await problem(await PUT('/v1/atsigns/bob', { host: '::1', port: 1 }));
    expect(result.detail).toContain('every SDK splits the answer host:port on ":"');
  });

  it('serves a description of every problem type at its URI', async () => {
    const response = await admin.request('GET', '/problems/ipv6-host');
    expect(await response.json()).toMatchObject({ type: '/problems/ipv6-host', status: 400, title: 'IPv6 address not servable' });
    const list = (await (await admin.request('GET', '/problems')).json()) as unknown[];
    expect(list.length).toBeGreaterThan(15);
  });
});

describe('atsign names in the path', () => {
  it.each([
    ['@Carol', 'carol'],
    ['carol', 'carol'],
    [encodeURIComponent('@carol🛠'), 'carol🛠'],
    [encodeURIComponent('🛠'.repeat(55)), '🛠'.repeat(55)],
  ])('%s is stored as %s', async (path, atsign) => {
    const response = await PUT(`/v1/atsigns/${path}`, { host: 'c.example', port: 7 });
    expect([200, 201]).toContain(response.status);
    expect(((await response.json()) as { atsign: string }).atsign).toBe(atsign);
    expect((await admin.request('GET', `/v1/atsigns/${encodeURIComponent(atsign)}`, { token })).status).toBe(200);
  });
});

describe('authentication', () => {
  it('gives the same 401, with no hint, for missing, malformed, unknown, wrong and revoked keys', async () => {
    const revoked = await admin.key('admin');
    const revokedId = revoked.split('_')[1]!;
    expect((await admin.request('DELETE', `/v1/keys/${revokedId}`, { token })).status).toBe(204);
    const wrongSecret = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const unknownId = 'atd_aaaaaaaaaaaaaaaa_' + token.split('_').slice(2).join('_');
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: 'Basic dXNlcjpwYXNz' },
      { authorization: 'Bearer not-a-key' },
      { authorization: `Bearer ${unknownId}` },
      { authorization: `Bearer ${wrongSecret}` },
      { authorization: `Bearer ${revoked}` },
    ];
    const bodies = [];
    for (const headers of attempts) {
      const response = await admin.request('GET', '/v1/atsigns/alice', { headers });
      expect(response.status).toBe(401);
      expect(response.headers.get('www-authenticate')).toBe('Bearer realm="atdirectory"');
      bodies.push(await response.json());
    }
    expect(new Set(bodies.map((body) => JSON.stringify(body))).size).toBe(1);
    expect(bodies[0]).toEqual({ type: '/problems/unauthenticated', title: 'Authentication required', status: 401, instance: '/v1/atsigns/alice' });
  });

  it('records when a key was last used', async () => {
    const fresh = await admin.key('read');
    await admin.request('GET', '/v1/atsigns/alice', { token: fresh });
    const id = fresh.split('_')[1]!;
    await new Promise((resolve) => setTimeout(resolve, 100));
    const keys = (await (await admin.request('GET', '/v1/keys', { token })).json()) as { items: Array<{ id: string; lastUsedAt: string | null }> };
    expect(keys.items.find((key) => key.id === id)?.lastUsedAt).not.toBeNull();
  });

  it('stores only a hash of the secret', async () => {
    const { rows } = await database.pool.query('SELECT secret_hash FROM api_keys');
    const secret = token.split('_').slice(2).join('_');
    for (const row of rows) expect(Buffer.from(row.secret_hash).toString('utf8')).not.toContain(secret);
  });
});

describe('rate limiting', () => {
  it('answers 429 with Retry-After once a key exceeds its allowance, per key', async () => {
    const limited = await startTestAdmin(database.url, { rateLimit: 5 });
    try {
      const first = await limited.key('read');
      const second = await limited.key('read');
      const statuses = [];
      for (let i = 0; i < 7; i++) statuses.push((await limited.request('GET', '/v1/atsigns/alice', { token: first })).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429]);
      const refused = await limited.request('GET', '/v1/atsigns/alice', { token: first });
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(await problem(refused)).toMatchObject({ status: 429, type: '/problems/rate-limited' });
      expect((await limited.request('GET', '/v1/atsigns/alice', { token: second })).status).toBe(200);
    } finally {
      await limited.stop();
    }
  });
});

describe('documentation', () => {
  it('publishes OpenAPI 3.1 generated from the route schemas, and a browsable UI', async () => {
    const spec = (await (await admin.request('GET', '/openapi.json')).json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(spec.openapi).toBe('3.1.0');
    expect(Object.keys(spec.paths)).toEqual(expect.arrayContaining(['/v1/atsigns/{atsign}', '/v1/atsigns', '/v1/atsigns/{atsign}/history', '/v1/keys', '/v1/keys/{id}', '/v1/import']));
    expect(Object.keys(spec.paths['/v1/atsigns/{atsign}']!)).toEqual(expect.arrayContaining(['get', 'put', 'patch', 'delete']));
    const ui = await admin.request('GET', '/docs/');
    expect(ui.status).toBe(200);
    expect(await ui.text()).toContain('swagger');
  });

  it('logs each request with its id, and never the key', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(line) });
    const logged = await startTestAdmin(database.url, { logger });
    try {
      const key = await logged.key('admin');
      await logged.request('GET', '/v1/atsigns/alice', { token: key, headers: { 'x-request-id': 'audit-42' } });
      await logged.request('GET', '/v1/atsigns/alice', { headers: { authorization: `Bearer ${key}x` } });
      const entries = lines.map((line) => JSON.parse(line) as { reqId?: string });
      expect(entries.some((entry) => entry.reqId === 'audit-42')).toBe(true);
      expect(lines.join('\n')).not.toContain(key.split('_').slice(2).join('_'));
    } finally {
      await logged.stop();
    }
  });

  it('carries a request id on every response', async () => {
    const response = await admin.request('GET', '/v1/atsigns/alice', { token, headers: { 'x-request-id': 'trace-123' } });
    expect(response.headers.get('x-request-id')).toBe('trace-123');
  });
});
