import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestAdmin, type TestAdmin } from '../support/admin-harness.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

// Every endpoint × every scope × an atsign of the key's own registrar and of another.

let database: TestDatabase;
let admin: TestAdmin;
const tokens: Record<'admin' | 'registrar' | 'read', string> = { admin: '', registrar: '', read: '' };

beforeAll(async () => {
  database = await createTestDatabase();
  admin = await startTestAdmin(database.url);
  tokens.admin = await admin.key('admin', 'operator');
  tokens.registrar = await admin.key('registrar', 'acme');
  tokens.read = await admin.key('read', 'auditor');
});

afterAll(async () => {
  await admin?.stop();
  await database?.drop();
});

beforeEach(async () => {
  await database.pool.query('DELETE FROM atsigns');
  await database.pool.query(
    "INSERT INTO atsigns (atsign, host, port, registrar) VALUES ('own', 'own.example', 1, 'acme'), ('foreign', 'foreign.example', 1, 'globex')",
  );
});

type Scope = keyof typeof tokens;
type Target = 'own' | 'foreign';

interface Operation {
  name: string;
  send: (token: string, atsign: Target) => Promise<Response>;
  success: number;
}

const operations: Operation[] = [
  { name: 'GET one', send: (token, a) => admin.request('GET', `/v1/atsigns/${a}`, { token }), success: 200 },
  { name: 'PUT', send: (token, a) => admin.request('PUT', `/v1/atsigns/${a}`, { token, body: { host: 'moved.example', port: 2 } }), success: 200 },
  { name: 'PATCH', send: (token, a) => admin.request('PATCH', `/v1/atsigns/${a}`, { token, body: { port: 3 } }), success: 200 },
  { name: 'suspend', send: (token, a) => admin.request('PATCH', `/v1/atsigns/${a}`, { token, body: { status: 'suspended', reason: 'abuse' } }), success: 200 },
  { name: 'DELETE', send: (token, a) => admin.request('DELETE', `/v1/atsigns/${a}`, { token }), success: 204 },
  { name: 'history', send: (token, a) => admin.request('GET', `/v1/atsigns/${a}/history`, { token }), success: 200 },
];

const expected: Record<Scope, Record<Target, Record<string, 'allowed' | 403>>> = {
  admin: {
    own: { 'GET one': 'allowed', PUT: 'allowed', PATCH: 'allowed', suspend: 'allowed', DELETE: 'allowed', history: 'allowed' },
    foreign: { 'GET one': 'allowed', PUT: 'allowed', PATCH: 'allowed', suspend: 'allowed', DELETE: 'allowed', history: 'allowed' },
  },
  registrar: {
    own: { 'GET one': 'allowed', PUT: 'allowed', PATCH: 'allowed', suspend: 'allowed', DELETE: 'allowed', history: 'allowed' },
    foreign: { 'GET one': 403, PUT: 403, PATCH: 403, suspend: 403, DELETE: 403, history: 403 },
  },
  read: {
    own: { 'GET one': 'allowed', PUT: 403, PATCH: 403, suspend: 403, DELETE: 403, history: 'allowed' },
    foreign: { 'GET one': 'allowed', PUT: 403, PATCH: 403, suspend: 403, DELETE: 403, history: 'allowed' },
  },
};

describe('record endpoints', () => {
  for (const scope of ['admin', 'registrar', 'read'] as const) {
    for (const target of ['own', 'foreign'] as const) {
      for (const operation of operations) {
        const outcome = expected[scope][target][operation.name]!;
        it(`${scope} key, ${target} atsign, ${operation.name} → ${outcome === 'allowed' ? operation.success : 403}`, async () => {
          const before = await database.pool.query('SELECT atsign, host, port, status, version FROM atsigns ORDER BY atsign');
          const response = await operation.send(tokens[scope], target);
          if (outcome === 'allowed') {
            expect(response.status).toBe(operation.success);
          } else {
            expect(response.status).toBe(403);
            expect(((await response.json()) as { type: string }).type).toBe('/problems/forbidden');
            const after = await database.pool.query('SELECT atsign, host, port, status, version FROM atsigns ORDER BY atsign');
            expect(after.rows).toEqual(before.rows);
          }
        });
      }
    }
  }
});

describe('creating', () => {
  it('makes a new atsign belong to the registrar key that created it', async () => {
    const response = await admin.request('PUT', '/v1/atsigns/newbie', { token: tokens.registrar, body: { host: 'n.example', port: 1 } });
    expect(response.status).toBe(201);
    expect(await response.json()).toMatchObject({ atsign: 'newbie', registrar: 'acme' });
  });

  it('lets only admin keys name another owner', async () => {
    const byAdmin = await admin.request('PUT', '/v1/atsigns/given', { token: tokens.admin, body: { host: 'g.example', port: 1, registrar: 'globex' } });
    expect(await byAdmin.json()).toMatchObject({ registrar: 'globex' });
    const byRegistrar = await admin.request('PUT', '/v1/atsigns/taken', { token: tokens.registrar, body: { host: 'g.example', port: 1, registrar: 'globex' } });
    expect(byRegistrar.status).toBe(403);
  });

  it('refuses creation to read keys', async () => {
    expect((await admin.request('PUT', '/v1/atsigns/newbie', { token: tokens.read, body: { host: 'n.example', port: 1 } })).status).toBe(403);
  });
});

describe('import', () => {
  const importLine = (token: string, atsign: Target) =>
    admin.request('POST', '/v1/import', { token, body: `${atsign},imported.example,9\n`, headers: { 'content-type': 'text/csv' } });
  const hostOf = async (atsign: Target) => (await database.pool.query('SELECT host FROM atsigns WHERE atsign = $1', [atsign])).rows[0].host as string;

  for (const scope of ['admin', 'registrar'] as const) {
    for (const target of ['own', 'foreign'] as const) {
      const allowed = scope === 'admin' || target === 'own';
      it(`${scope} key, ${target} atsign → ${allowed ? 'applied' : 'line refused as forbidden'}`, async () => {
        const response = await importLine(tokens[scope], target);
        expect(response.status).toBe(200);
        const report = (await response.json()) as { replaced: number; errors: unknown[] };
        if (allowed) {
          expect(report).toMatchObject({ replaced: 1, errors: [] });
          expect(await hostOf(target)).toBe('imported.example');
        } else {
          expect(report).toMatchObject({ replaced: 0, errors: [{ line: 1, type: '/problems/forbidden', detail: 'this atsign belongs to another registrar', atsign: 'foreign' }] });
          expect(await hostOf(target)).toBe('foreign.example');
        }
      });
    }
  }

  it('refuses read keys outright', async () => {
    const response = await importLine(tokens.read, 'own');
    expect(response.status).toBe(403);
    expect(await response.json()).toMatchObject({ type: '/problems/forbidden' });
    expect(await hostOf('own')).toBe('own.example');
  });

  it('gives atsigns a registrar key creates to its registrar', async () => {
    await importLine(tokens.registrar, 'brandnew' as Target);
    expect((await database.pool.query("SELECT registrar FROM atsigns WHERE atsign = 'brandnew'")).rows).toEqual([{ registrar: 'acme' }]);
  });
});

describe('listing', () => {
  const list = async (token: string, query = '') => {
    const response = await admin.request('GET', `/v1/atsigns${query}`, { token });
    return { status: response.status, atsigns: response.status === 200 ? ((await response.json()) as { items: Array<{ atsign: string }> }).items.map((item) => item.atsign) : [] };
  };

  it('shows admin and read keys everything, registrar keys their own', async () => {
    expect(await list(tokens.admin)).toEqual({ status: 200, atsigns: ['foreign', 'own'] });
    expect(await list(tokens.read)).toEqual({ status: 200, atsigns: ['foreign', 'own'] });
    expect(await list(tokens.registrar)).toEqual({ status: 200, atsigns: ['own'] });
    expect(await list(tokens.registrar, '?registrar=acme')).toEqual({ status: 200, atsigns: ['own'] });
    expect((await list(tokens.registrar, '?registrar=globex')).status).toBe(403);
    expect(await list(tokens.admin, '?registrar=globex')).toEqual({ status: 200, atsigns: ['foreign'] });
  });
});

describe('keys', () => {
  it.each(['registrar', 'read'] as const)('are managed by admin keys only, not %s keys', async (scope) => {
    expect((await admin.request('GET', '/v1/keys', { token: tokens[scope] })).status).toBe(403);
    expect((await admin.request('POST', '/v1/keys', { token: tokens[scope], body: { registrar: 'x', scope: 'admin' } })).status).toBe(403);
    expect((await admin.request('DELETE', '/v1/keys/whatever', { token: tokens[scope] })).status).toBe(403);
  });

  it('are created once-visible, listed without secrets, and revoked by admin keys', async () => {
    const created = await admin.request('POST', '/v1/keys', { token: tokens.admin, body: { registrar: 'initech', scope: 'registrar' } });
    expect(created.status).toBe(201);
    const { id, key } = (await created.json()) as { id: string; key: string };
    expect(key).toMatch(new RegExp(`^atd_${id}_[A-Za-z0-9_-]{43}$`));
    const listed = JSON.stringify(await (await admin.request('GET', '/v1/keys', { token: tokens.admin })).json());
    expect(listed).toContain(id);
    expect(listed).not.toContain(key.split('_').slice(2).join('_'));
    expect((await admin.request('GET', '/v1/atsigns', { token: key })).status).toBe(200);
    expect((await admin.request('DELETE', `/v1/keys/${id}`, { token: tokens.admin })).status).toBe(204);
    expect((await admin.request('GET', '/v1/atsigns', { token: key })).status).toBe(401);
    expect((await admin.request('DELETE', '/v1/keys/nosuchkey', { token: tokens.admin })).status).toBe(404);
  });
});
