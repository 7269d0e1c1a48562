import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Scope } from '../../src/store/api-keys.js';
import { startTestAdmin, type TestAdmin } from '../support/admin-harness.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';

// Fuzzes every admin route with what a hostile or buggy client might send in the path, query,
// headers and body. Whatever arrives, the answer is a 2xx with JSON or a 4xx RFC 9457 problem,
// never a 5xx; a refused request leaves the database exactly as it was; an accepted write stored
// exactly what it answered.

const ADMIN_REGISTRAR = 'acme';
const OWN_REGISTRAR = 'fuzz-registrar';
const OTHER_REGISTRAR = 'other-registrar';

// Every run starts from these (see resetRecords): one of each owner and status, so fuzzed requests
// reach replace, patch, suspend, delete and the 403s of registrar keys, not only create and 404.
const SEEDS = [
  { atsign: 'alice', host: 'alice.example.com', port: 6464, status: 'active', reason: null, registrar: OWN_REGISTRAR },
  { atsign: 'paused', host: 'paused.example', port: 7000, status: 'suspended', reason: 'fuzz seed', registrar: OWN_REGISTRAR },
  { atsign: 'bob', host: '127.0.0.1', port: 6465, status: 'active', reason: null, registrar: OTHER_REGISTRAR },
  { atsign: '🛠tools', host: 'tools.example', port: 8000, status: 'active', reason: null, registrar: OTHER_REGISTRAR },
  { atsign: 'legacy', host: 'legacy.example', port: 64, status: 'active', reason: null, registrar: null },
];

let database: TestDatabase;
let admin: TestAdmin;
let tokens: Record<Scope, string>;
/** A key the fuzzer may revoke (and revoke again), so DELETE /v1/keys/{id} reaches its 204. */
let revocableKeyId: string;

beforeAll(async () => {
  database = await createTestDatabase();
  admin = await startTestAdmin(database.url);
  tokens = {
    admin: await admin.key('admin', ADMIN_REGISTRAR),
    registrar: await admin.key('registrar', OWN_REGISTRAR),
    read: await admin.key('read', 'readers'),
  };
  revocableKeyId = (await admin.key('read', 'doomed')).split('_')[1]!;
});

afterAll(async () => {
  await admin?.stop();
  await database?.drop();
});

// ---------------------------------------------------------------------------------------------
// The database as the assertions see it
// ---------------------------------------------------------------------------------------------

interface StoredRow {
  host: string;
  port: number;
  status: string;
  suspensionReason: string | null;
  version: number;
  registrar: string | null;
}

interface DatabaseState {
  atsigns: Map<string, StoredRow>;
  historyRows: number;
  /** Without last_used_at, which authentication itself updates. */
  keys: Map<string, { scope: string; registrar: string; revoked: boolean }>;
}

async function countHistoryRows(): Promise<number> {
  const { rows } = await database.pool.query<{ count: number }>('SELECT count(*)::int AS count FROM atsign_history');
  return rows[0]!.count;
}

/** atsign_history's size when the seeds were last put back: every write to atsigns adds a row. */
let historyRowsAtReset = -1;

/**
 * Puts the seeds back if anything wrote since, so that every run starts from them and a
 * counterexample replays on its own while shrinking.
 */
async function resetRecords(): Promise<void> {
  if ((await countHistoryRows()) === historyRowsAtReset) return;
  await database.pool.query('DELETE FROM atsigns');
  await database.pool.query(
    `INSERT INTO atsigns (atsign, host, port, status, suspension_reason, registrar)
     SELECT * FROM unnest($1::text[], $2::text[], $3::integer[], $4::text[], $5::text[], $6::text[])`,
    [
      SEEDS.map((seed) => seed.atsign),
      SEEDS.map((seed) => seed.host),
      SEEDS.map((seed) => seed.port),
      SEEDS.map((seed) => seed.status),
      SEEDS.map((seed) => seed.reason),
      SEEDS.map((seed) => seed.registrar),
    ],
  );
  historyRowsAtReset = await countHistoryRows();
}

async function snapshot(): Promise<DatabaseState> {
  const [atsigns, historyRows, keys] = await Promise.all([
    database.pool.query<{ atsign: string; host: string; port: number; status: string; suspension_reason: string | null; version: string; registrar: string | null }>(
      'SELECT atsign, host, port, status, suspension_reason, version, registrar FROM atsigns ORDER BY atsign',
    ),
    countHistoryRows(),
    database.pool.query<{ id: string; scope: string; registrar: string; revoked: boolean }>(
      'SELECT id, scope, registrar, revoked_at IS NOT NULL AS revoked FROM api_keys ORDER BY id',
    ),
  ]);
  return {
    atsigns: new Map(
      atsigns.rows.map((row) => [
        row.atsign,
        { host: row.host, port: row.port, status: row.status, suspensionReason: row.suspension_reason, version: Number(row.version), registrar: row.registrar },
      ]),
    ),
    historyRows,
    keys: new Map(keys.rows.map(({ id, ...key }) => [id, key])),
  };
}

/** What the database row of a record the API answered must be. */
function storedRowOf(record: ApiRecord): StoredRow {
  const { host, port, status, suspensionReason, version, registrar } = record;
  return { host, port, status, suspensionReason, version, registrar };
}

/** Atsigns added, removed or changed between two states, in order. */
function changedAtsigns(before: DatabaseState, after: DatabaseState): string[] {
  const atsigns = new Set([...before.atsigns.keys(), ...after.atsigns.keys()]);
  return [...atsigns].filter((atsign) => JSON.stringify(before.atsigns.get(atsign)) !== JSON.stringify(after.atsigns.get(atsign))).sort();
}

// ---------------------------------------------------------------------------------------------
// One request, checked for what every answer owes
// ---------------------------------------------------------------------------------------------

interface FuzzRequest {
  method: string;
  path: string;
  scope: Scope;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

interface Exchange {
  status: number;
  headers: Headers;
  /** Parsed JSON; undefined for 204. */
  body: unknown;
  before: DatabaseState;
  after: DatabaseState;
  /** The request and its answer, for assertion messages. */
  shown: string;
}

interface ApiRecord {
  atsign: string;
  host: string;
  port: number;
  status: string;
  suspensionReason: string | null;
  registrar: string | null;
  version: number;
}

function clip(text: string, length = 400): string {
  return text.length > length ? `${text.slice(0, length)}… (${text.length} characters)` : text;
}

function bodyText(body: string | Uint8Array | undefined): string {
  return body === undefined ? '' : typeof body === 'string' ? body : Buffer.from(body).toString('utf8');
}

/**
 * Sends a request between two snapshots of the database and checks the answer's form: 2xx with a
 * JSON body (none for 204) or a 4xx problem whose `status` is the HTTP status; and that a refusal
 * or a read changed nothing.
 */
async function exchange(request: FuzzRequest): Promise<Exchange> {
  const before = await snapshot();
  const response = await fetch(admin.url + request.path, {
    method: request.method,
    headers: { authorization: `Bearer ${tokens[request.scope]}`, ...request.headers },
    body: request.body,
  });
  const text = await response.text();
  const after = await snapshot();
  const contentType = response.headers.get('content-type') ?? '';
  const shown =
    `${request.method} ${clip(request.path)} (${request.scope} key) ${JSON.stringify(request.headers ?? {})} ${JSON.stringify(clip(bodyText(request.body)))}\n` +
    `→ ${response.status} ${contentType} ${clip(text)}`;

  expect([2, 4], `only 2xx and 4xx answers: ${shown}`).toContain(Math.floor(response.status / 100));
  let body: unknown;
  if (response.status === 204) {
    expect(text, shown).toBe('');
  } else {
    expect(contentType, shown).toMatch(response.status >= 400 ? /^application\/problem\+json/ : /^application\/json/);
    try {
      body = JSON.parse(text);
    } catch {
      throw new Error(`the body is not JSON: ${shown}`);
    }
  }
  if (response.status >= 400) {
    expect(body, shown).toMatchObject({ type: expect.stringMatching(/^\/problems\//), status: response.status, title: expect.any(String) });
  }
  if (response.status >= 400 || request.method === 'GET') {
    expect(after, `a refusal or a read changed the database: ${shown}`).toEqual(before);
  }
  return { status: response.status, headers: response.headers, body, before, after, shown };
}

function jsonRequest(method: string, path: string, scope: Scope, body: unknown): FuzzRequest {
  return { method, path, scope, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
}

// ---------------------------------------------------------------------------------------------
// What a record route's 2xx must mean
// ---------------------------------------------------------------------------------------------

type RecordOperation = 'GET' | 'PUT' | 'PATCH' | 'DELETE' | 'HISTORY';

function recordPath(operation: RecordOperation, segment: string): string {
  return operation === 'HISTORY' ? `/v1/atsigns/${segment}/history` : `/v1/atsigns/${segment}`;
}

function recordMethod(operation: RecordOperation): string {
  return operation === 'HISTORY' ? 'GET' : operation;
}

/**
 * The 2xx of a record route against the database: reads answer what is stored, a write changed
 * exactly its one record (and wrote one history row) to what it answered, as the request asked, and
 * registrar keys touched only their own atsigns.
 */
async function checkRecordSuccess(operation: RecordOperation, segment: string, request: FuzzRequest, result: Exchange): Promise<void> {
  if (result.status >= 300) return;
  const { before, after, shown } = result;
  const isWrite = operation === 'PUT' || operation === 'PATCH' || operation === 'DELETE';
  if (isWrite) {
    expect(request.scope, `a read key wrote: ${shown}`).not.toBe('read');
    expect(after.historyRows, `one history row per write: ${shown}`).toBe(before.historyRows + 1);
    expect(after.keys, shown).toEqual(before.keys);
  }

  if (operation === 'DELETE') {
    const removed = [...before.atsigns.keys()].filter((atsign) => !after.atsigns.has(atsign));
    expect(removed, shown).toHaveLength(1);
    expect(changedAtsigns(before, after), shown).toEqual(removed);
    if (request.scope === 'registrar') expect(before.atsigns.get(removed[0]!)?.registrar, shown).toBe(OWN_REGISTRAR);
    return;
  }

  if (operation === 'HISTORY') {
    const history = result.body as { atsign: string; items: unknown[] };
    const { rows } = await database.pool.query<{ count: number }>('SELECT count(*)::int AS count FROM atsign_history WHERE atsign = $1', [history.atsign]);
    expect(history.items.length, shown).toBe(rows[0]!.count);
    if (request.scope === 'registrar') expect(after.atsigns.get(history.atsign)?.registrar, shown).toBe(OWN_REGISTRAR);
    return;
  }

  const record = result.body as ApiRecord;
  const { atsign, suspensionReason } = record;
  expect(after.atsigns.get(atsign), `the database holds what the answer says: ${shown}`).toEqual(storedRowOf(record));
  expect(result.headers.get('etag'), shown).toBe(`"${record.version}"`);
  if (request.scope === 'registrar') expect(record.registrar, shown).toBe(OWN_REGISTRAR);
  if (operation === 'GET') return;

  expect(changedAtsigns(before, after), `a write changed exactly its own record: ${shown}`).toEqual([atsign]);
  const sent = JSON.parse(bodyText(request.body)) as Record<string, unknown>;
  if (typeof sent.host === 'string') expect(record.host, shown).toBe(sent.host.toLowerCase());
  if (sent.port !== undefined) expect(record.port, shown).toBe(sent.port);
  const previous = before.atsigns.get(atsign);
  if (request.scope === 'registrar' && previous) expect(previous.registrar, shown).toBe(OWN_REGISTRAR);

  if (operation === 'PUT') {
    expect(result.status === 201, `201 exactly when the atsign is new: ${shown}`).toBe(previous === undefined);
    if (previous) {
      // Replacing moves the atServer only: ownership and suspension stay.
      expect({ status: record.status, suspensionReason, registrar: record.registrar }, shown).toEqual({
        status: previous.status,
        suspensionReason: previous.suspensionReason,
        registrar: previous.registrar,
      });
    } else {
      expect(result.headers.get('location'), shown).toBe(`/v1/atsigns/${encodeURIComponent(atsign)}`);
      expect(record.registrar, shown).toBe(sent.registrar ?? (request.scope === 'admin' ? ADMIN_REGISTRAR : OWN_REGISTRAR));
    }
  } else {
    expect(previous, `PATCH answered 200 for an atsign that did not exist: ${shown}`).toBeDefined();
    if (sent.status !== undefined) expect(record.status, shown).toBe(sent.status);
    if (sent.status === 'suspended') expect(suspensionReason, shown).toBe(sent.reason);
    if (record.status === 'active') expect(suspensionReason, shown).toBeNull();
  }

  // What was stored is what a client asking by the same name gets: the API and the database's
  // trigger agree on the key.
  const reread = await fetch(`${admin.url}/v1/atsigns/${segment}`, { headers: { authorization: `Bearer ${tokens.admin}` } });
  expect(reread.status, shown).toBe(200);
  expect(((await reread.json()) as ApiRecord).version, shown).toBe(record.version);
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

// Admin keys get furthest into every route; read keys are mostly refused at once.
const scopes = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Scope>('admin') },
  { weight: 2, arbitrary: fc.constant<Scope>('registrar') },
  { weight: 1, arbitrary: fc.constant<Scope>('read') },
);

// Characters that have broken routers, normalisers, parsers and databases before, in groups of
// equal weight so that the rare kinds (controls above all) turn up often.
const awkwardCharacter = fc.oneof(
  fc.constantFrom('a', 'Z', '0', '-', '.', '_'),
  fc.constantFrom('@', ':', '%', '/', '?', '#', '&', '=', '+', ',', ';', '*', '\\', '"', "'"),
  fc.constantFrom(' ', '\t', '\n', '\r', '\u00a0', '\u2028'),
  fc.constantFrom('\u0000', '\u0001', '\u001f', '\u007f', '\u0085'),
  fc.constantFrom('\u200b', '\u200d', '\ufeff', '\uffff', 'é', 'İ', 'Σ', 'ß', 'ﬃ', '🛠', '👩‍💻', '\u{10ffff}'),
);

/**
 * Any text of the length of a name: full Unicode, control characters, '@', ':' and literal '%xx'.
 * Very long text has a property of its own, so that it cannot hide what the others find.
 */
const anyText = fc.oneof(
  { weight: 2, arbitrary: fc.string({ unit: 'binary' }) },
  { weight: 4, arbitrary: fc.string({ unit: awkwardCharacter }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme' }) },
);

/** Longer than any atsign (55) or prefix (256) may be; up to URLs of tens of kilobytes. */
const longText = fc
  .tuple(fc.string({ unit: awkwardCharacter, minLength: 1, maxLength: 3 }), fc.integer({ min: 300, max: 3000 }))
  .map(([piece, times]) => piece.repeat(times));

const anyJson = fc.jsonValue({ stringUnit: 'binary' });

/** The seeded atsigns as clients spell them, and two that do not exist. */
const knownAtsign = fc.constantFrom('alice', 'ALICE', '@alice', '@Alice', ' alice', 'paused', 'bob', '@bob', '🛠tools', '@🛠TOOLS', 'legacy', 'nobody', '@newcomer');

const atsignSegment = fc.oneof(knownAtsign, anyText).map(encodeURIComponent);

/** Bytes percent-encoded one by one: valid URI syntax, but often not UTF-8 once decoded. */
const percentEncodedBytes = fc
  .uint8Array({ minLength: 1, maxLength: 24 })
  .map((bytes) => Array.from(bytes, (byte) => `%${byte.toString(16).toUpperCase().padStart(2, '0')}`).join(''));

const validHost = fc.oneof(fc.domain(), fc.ipV4());
const validPort = fc.integer({ min: 1, max: 65535 });
const awkwardHost = fc.oneof(
  anyText,
  fc.ipV6(),
  fc.constantFrom(
    '[::1]', '::ffff:127.0.0.1', 'a..b', '.a.example', 'a.example.', '-a.example', 'a-.example', '1.2.3.4.5', '256.1.1.1', '1.2.3', '01.2.3.4', '999',
    'EXAMPLE.COM', 'a_b.example', 'xn--bcher-kva.example', ' a.example', 'a.example:64', 'user@a.example', `${'a'.repeat(64)}.example`, `${'a.'.repeat(127)}ab`,
  ),
);
// Mostly valid, so that a body often fails on one field only, or not at all.
const hostValue = fc.oneof({ weight: 6, arbitrary: validHost }, { weight: 1, arbitrary: awkwardHost }, { weight: 1, arbitrary: anyJson });
const portValue = fc.oneof(
  { weight: 6, arbitrary: validPort },
  { weight: 1, arbitrary: fc.oneof(fc.integer(), fc.double(), fc.constantFrom<unknown>(0, -1, 65536, 1.5, 1e21, '6464', null, true, [], {})) },
  { weight: 1, arbitrary: anyJson },
);
const registrarName = fc.oneof(fc.constantFrom(OWN_REGISTRAR, OTHER_REGISTRAR, ADMIN_REGISTRAR), anyText);

/** Mostly nothing; sometimes fields no route accepts, or that look like ones it does. */
const extraFields = fc.oneof(
  { weight: 6, arbitrary: fc.constant({}) },
  { weight: 1, arbitrary: fc.dictionary(fc.oneof(fc.constantFrom('owner', 'atsign', 'version', 'registrar', 'Host', 'PORT', '__proto__', 'constructor'), anyText), anyJson, { maxKeys: 2 }) },
);

/** Objects of the model's fields, mostly with the required ones, sometimes with any subset. */
function shapedObject(model: Record<string, fc.Arbitrary<unknown>>, required: string[]): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof({ weight: 3, arbitrary: fc.record(model, { requiredKeys: required }) }, { weight: 1, arbitrary: fc.record(model, { requiredKeys: [] }) });
}

function withExtraFields<T extends object>(shaped: fc.Arbitrary<T>): fc.Arbitrary<Record<string, unknown>> {
  // Extra fields first, so the shaped ones win a clash of names.
  return fc.tuple(extraFields, shaped).map(([extra, fields]) => ({ ...extra, ...fields }));
}

const plausiblePutBody = fc.record({ host: validHost, port: validPort, registrar: fc.constantFrom(OWN_REGISTRAR, OTHER_REGISTRAR, ADMIN_REGISTRAR) }, { requiredKeys: ['host', 'port'] });
const plausiblePatchBody = fc.record(
  { host: validHost, port: validPort, status: fc.constantFrom('active', 'suspended'), reason: fc.string({ minLength: 1, maxLength: 30 }) },
  { requiredKeys: [] },
);
const putBodyShape = withExtraFields(
  shapedObject({ host: hostValue, port: portValue, registrar: fc.oneof({ weight: 6, arbitrary: registrarName }, { weight: 1, arbitrary: anyJson }) }, ['host', 'port']),
);
const patchBodyShape = withExtraFields(
  fc.record(
    {
      host: hostValue,
      port: portValue,
      status: fc.oneof({ weight: 6, arbitrary: fc.constantFrom<unknown>('active', 'suspended') }, { weight: 1, arbitrary: fc.constantFrom('deleted', 'ACTIVE') }, { weight: 1, arbitrary: anyJson }),
      reason: fc.oneof({ weight: 6, arbitrary: anyText }, { weight: 1, arbitrary: anyJson }),
    },
    { requiredKeys: [] },
  ),
);

const jsonMediaTypes = fc.constantFrom('application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json;charset=latin1', 'application/json; charset=utf-16');
const otherMediaTypes = fc.oneof(
  fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/merge-patch+json', 'application/jsonx', 'text/csv', 'application/x-ndjson', '*/*', ';', ''),
  fc.string(),
);

interface BodyCase {
  contentType?: string;
  body?: string | Uint8Array;
}

/** A JSON body shaped like the route's, or anything else a client could send in its place. */
function anyBody(shaped: fc.Arbitrary<unknown>): fc.Arbitrary<BodyCase> {
  const asJson = (values: fc.Arbitrary<unknown>) => fc.tuple(jsonMediaTypes, values).map(([contentType, value]): BodyCase => ({ contentType, body: JSON.stringify(value) ?? 'null' }));
  return fc.oneof(
    { weight: 6, arbitrary: asJson(shaped) },
    { weight: 1, arbitrary: asJson(fc.anything({ stringUnit: 'binary' })) },
    { weight: 1, arbitrary: fc.json({ stringUnit: 'binary' }).map((body): BodyCase => ({ contentType: 'application/json', body })) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((body): BodyCase => ({ contentType: 'application/json', body })) },
    { weight: 1, arbitrary: fc.tuple(otherMediaTypes, fc.oneof(shaped.map((value) => JSON.stringify(value) ?? ''), anyText)).map(([contentType, body]): BodyCase => ({ contentType, body })) },
    { weight: 1, arbitrary: fc.constantFrom<BodyCase>({}, { contentType: 'application/json', body: '' }, { contentType: 'application/json', body: JSON.stringify({ host: 'big.example', port: 1, pad: 'x'.repeat(70_000) }) }) },
  );
}

function withBody(request: FuzzRequest, { contentType, body }: BodyCase): FuzzRequest {
  return { ...request, headers: { ...request.headers, ...(contentType === undefined ? {} : { 'content-type': contentType }) }, body };
}

/**
 * A query string: the route's parameters, each absent, plausible or any text (mostly plausible, so
 * that one odd value is not always hidden behind another's refusal), now and then repeated or
 * joined by unknown ones; or raw printable text.
 */
function anyQuery(plausible: Record<string, fc.Arbitrary<string>>): fc.Arbitrary<string> {
  const names = Object.keys(plausible);
  const known = fc.record(
    Object.fromEntries(Object.entries(plausible).map(([name, values]) => [name, fc.oneof({ weight: 6, arbitrary: values }, { weight: 1, arbitrary: anyText })])),
    { requiredKeys: [] },
  );
  const extra = fc.oneof(
    { weight: 8, arbitrary: fc.constant([]) },
    { weight: 1, arbitrary: fc.array(fc.tuple(fc.oneof(fc.constantFrom(...names), anyText), anyText), { minLength: 1, maxLength: 2 }) },
  );
  const structured = fc
    .tuple(known, extra)
    .map(([parameters, unknown]) =>
      [...(Object.entries(parameters) as Array<[string, string]>), ...unknown].map(([name, value]) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}`).join('&'),
    );
  return fc.oneof({ weight: 12, arbitrary: structured }, { weight: 1, arbitrary: fc.string() });
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

const PROPERTY_TIMEOUT_MS = 60_000;

describe('record routes: PUT, GET, PATCH, DELETE /v1/atsigns/{atsign} and its history', () => {
  const operations = fc.constantFrom<RecordOperation>('GET', 'PUT', 'PATCH', 'DELETE', 'HISTORY');

  function plausibleRequest(operation: RecordOperation, segment: string, scope: Scope, putBody: unknown, patchBody: unknown): FuzzRequest {
    const path = recordPath(operation, segment);
    if (operation === 'PUT') return jsonRequest('PUT', path, scope, putBody);
    if (operation === 'PATCH') return jsonRequest('PATCH', path, scope, patchBody);
    return { method: recordMethod(operation), path, scope };
  }

  it('answers any text as the atsign with a 2xx or a problem', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    await fc.assert(
      fc.asyncProperty(operations, atsignSegment, scopes, plausiblePutBody, plausiblePatchBody, async (operation, segment, scope, putBody, patchBody) => {
        await resetRecords();
        const request = plausibleRequest(operation, segment, scope, putBody, patchBody);
        await checkRecordSuccess(operation, segment, request, await exchange(request));
      }),
      { numRuns: 300 },
    );
  });

  it('answers any percent-encoded bytes in a path parameter with a 2xx or a problem', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const routes = fc.constantFrom<RecordOperation | 'REVOKE KEY'>('GET', 'PUT', 'PATCH', 'DELETE', 'HISTORY', 'REVOKE KEY');
    await fc.assert(
      fc.asyncProperty(routes, percentEncodedBytes, scopes, plausiblePutBody, plausiblePatchBody, async (route, segment, scope, putBody, patchBody) => {
        await resetRecords();
        if (route === 'REVOKE KEY') {
          const result = await exchange({ method: 'DELETE', path: `/v1/keys/${segment}`, scope });
          expect(result.after.atsigns, result.shown).toEqual(result.before.atsigns);
          return;
        }
        const request = plausibleRequest(route, segment, scope, putBody, patchBody);
        await checkRecordSuccess(route, segment, request, await exchange(request));
      }),
      { numRuns: 150 },
    );
  });

  it('answers any body of PUT, PATCH and DELETE with a 2xx or a problem, and writes only what it answers', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const writes = fc.oneof(
      fc.tuple(fc.constant<RecordOperation>('PUT'), anyBody(putBodyShape)),
      fc.tuple(fc.constant<RecordOperation>('PATCH'), anyBody(patchBodyShape)),
      fc.tuple(fc.constant<RecordOperation>('DELETE'), anyBody(anyJson)),
    );
    await fc.assert(
      fc.asyncProperty(writes, knownAtsign.map(encodeURIComponent), scopes, async ([operation, body], segment, scope) => {
        await resetRecords();
        const request = withBody({ method: operation, path: recordPath(operation, segment), scope }, body);
        await checkRecordSuccess(operation, segment, request, await exchange(request));
      }),
      { numRuns: 300 },
    );
  });

  it('answers any If-Match with a 2xx or a problem, and writes only under a matching one', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    // "current" stands for the target's version at the time of the request, so matches happen.
    const ifMatch = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom('current', '*') },
      { weight: 2, arbitrary: fc.constantFrom(' * ', '"0"', '"1"', 'W/"1"', '"-1"', '"1.5"', '"1", "2"', '""', '"', '1', '"99999999999999999999"', '"9007199254740993"', 'W/*') },
      { weight: 1, arbitrary: fc.nat({ max: 100_000 }).map((version) => `"${version}"`) },
      { weight: 1, arbitrary: fc.string() },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom<RecordOperation>('PUT', 'PATCH', 'DELETE'),
        knownAtsign.map(encodeURIComponent),
        ifMatch,
        scopes,
        plausiblePutBody,
        plausiblePatchBody,
        async (operation, segment, condition, scope, putBody, patchBody) => {
          await resetRecords();
          const { rows } = await database.pool.query<{ version: string }>('SELECT version FROM atsigns WHERE atsign = atsign_key($1)', [decodeURIComponent(segment)]);
          const tag = condition === 'current' ? `"${rows[0]?.version ?? 0}"` : condition;
          const request = plausibleRequest(operation, segment, scope, putBody, patchBody);
          const result = await exchange({ ...request, headers: { ...request.headers, 'if-match': tag } });
          await checkRecordSuccess(operation, segment, request, result);
          if (result.status < 300) {
            const written = operation === 'DELETE' ? changedAtsigns(result.before, result.after)[0]! : (result.body as ApiRecord).atsign;
            const version = result.before.atsigns.get(written)?.version;
            expect(version, `a conditional write created a record: ${result.shown}`).toBeDefined();
            if (tag.trim() !== '*') expect(tag.trim(), `a write went ahead under a non-matching If-Match: ${result.shown}`).toBe(`"${version}"`);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('answers any query string on PUT and PATCH with a 2xx or a problem', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    // ?verify=true dials host:port, so the body always names a closed loopback port.
    const loopbackPut = fc.record({ host: fc.constant('127.0.0.1'), port: fc.constantFrom(1, 9) });
    const loopbackPatch = fc.record({ host: fc.constant('127.0.0.1'), port: fc.constantFrom(1, 9), status: fc.constantFrom('active', 'suspended'), reason: fc.constant('fuzz') }, { requiredKeys: ['host'] });
    const query = anyQuery({ verify: fc.constantFrom('true', 'false', 'TRUE', '1', '') });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom<RecordOperation>('PUT', 'PATCH'), knownAtsign.map(encodeURIComponent), query, scopes, loopbackPut, loopbackPatch, async (operation, segment, queryString, scope, putBody, patchBody) => {
        await resetRecords();
        const request = jsonRequest(operation, `${recordPath(operation, segment)}?${queryString}`, scope, operation === 'PUT' ? putBody : patchBody);
        const result = await exchange(request);
        await checkRecordSuccess(operation, segment, request, result);
      }),
      { numRuns: 100 },
    );
  });
});

describe('listing: GET /v1/atsigns', () => {
  it('answers any query string with a page of stored records or a problem', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const cursor = fc.oneof(
      // Well-formed cursors for atsigns that may never have been stored.
      { weight: 3, arbitrary: anyText.map((atsign) => Buffer.from(`a:${atsign}`).toString('base64url')) },
      { weight: 1, arbitrary: anyText.map((text) => Buffer.from(text).toString('base64url')) },
      { weight: 1, arbitrary: fc.base64String() },
    );
    const query = anyQuery({
      registrar: fc.constantFrom(OWN_REGISTRAR, OTHER_REGISTRAR, ADMIN_REGISTRAR),
      prefix: fc.constantFrom('a', 'al', '@al', 'ALI', 'p', '🛠', '@🛠', '@'),
      status: fc.constantFrom('active', 'suspended'),
      limit: fc.oneof({ weight: 3, arbitrary: fc.constantFrom('1', '2', '1000', '1001', '9999999') }, { weight: 1, arbitrary: fc.constantFrom('0', '-1', '01', '1e3', '99999999', '') }),
      cursor,
    });
    await fc.assert(
      fc.asyncProperty(query, scopes, async (queryString, scope) => {
        await resetRecords();
        const result = await exchange({ method: 'GET', path: `/v1/atsigns?${queryString}`, scope });
        if (result.status >= 300) return;
        const { shown, after } = result;
        const page = result.body as { items: ApiRecord[]; nextCursor: string | null };
        const query = new URLSearchParams(queryString);
        for (const record of page.items) {
          expect(after.atsigns.get(record.atsign), shown).toEqual(storedRowOf(record));
          if (scope === 'registrar') expect(record.registrar, shown).toBe(OWN_REGISTRAR);
          if (query.get('status') === 'active' || query.get('status') === 'suspended') expect(record.status, shown).toBe(query.get('status'));
        }
        const order = page.items.map((item) => Buffer.from(item.atsign));
        expect(order.every((atsign, index) => index === 0 || Buffer.compare(order[index - 1]!, atsign) < 0), `not in byte order: ${shown}`).toBe(true);
        if (page.nextCursor !== null) {
          // A cursor the API made is one it accepts.
          const next = await exchange({ method: 'GET', path: `/v1/atsigns?cursor=${encodeURIComponent(page.nextCursor)}`, scope });
          expect(next.status, next.shown).toBe(200);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('keys: POST /v1/keys, GET /v1/keys, DELETE /v1/keys/{id}', () => {
  it('answers any key request with a 2xx or a problem, and only admin keys manage keys', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const keyBodyShape = withExtraFields(
      shapedObject(
        {
          registrar: fc.oneof({ weight: 6, arbitrary: registrarName }, { weight: 1, arbitrary: anyJson }),
          scope: fc.oneof({ weight: 6, arbitrary: fc.constantFrom<unknown>('admin', 'registrar', 'read') }, { weight: 1, arbitrary: fc.constantFrom('root', 'Admin', '') }, { weight: 1, arbitrary: anyJson }),
        },
        ['registrar', 'scope'],
      ),
    );
    const operation = fc.oneof(
      anyBody(keyBodyShape).map((body) => ({ kind: 'create' as const, body })),
      fc.constant({ kind: 'list' as const }),
      fc.oneof(fc.constant(revocableKeyId), anyText).map((id) => ({ kind: 'revoke' as const, id })),
    );
    await fc.assert(
      fc.asyncProperty(operation, scopes, async (action, scope) => {
        await resetRecords();
        const request: FuzzRequest =
          action.kind === 'create'
            ? withBody({ method: 'POST', path: '/v1/keys', scope }, action.body)
            : action.kind === 'list'
              ? { method: 'GET', path: '/v1/keys', scope }
              : { method: 'DELETE', path: `/v1/keys/${encodeURIComponent(action.id)}`, scope };
        const result = await exchange(request);
        const { before, after, shown } = result;
        expect(after.atsigns, shown).toEqual(before.atsigns);
        expect(after.historyRows, shown).toBe(before.historyRows);
        if (result.status >= 300) return;
        expect(scope, `a ${scope} key managed keys: ${shown}`).toBe('admin');
        if (action.kind === 'create') {
          const created = result.body as { id: string; scope: string; registrar: string; revokedAt: string | null; key: string };
          const sent = JSON.parse(bodyText(request.body)) as { registrar: unknown; scope: unknown };
          expect([...after.keys.keys()].filter((id) => !before.keys.has(id)), shown).toEqual([created.id]);
          expect(after.keys.get(created.id), shown).toEqual({ scope: sent.scope, registrar: sent.registrar, revoked: false });
          expect(created, shown).toMatchObject({ scope: sent.scope, registrar: sent.registrar, revokedAt: null });
          expect(created.key.startsWith(`atd_${created.id}_`), shown).toBe(true);
        } else if (action.kind === 'list') {
          const { items } = result.body as { items: Array<Record<string, unknown>> };
          expect(items.map((item) => item.id).sort(), shown).toEqual([...after.keys.keys()].sort());
          expect(items.some((item) => 'key' in item || 'secretHash' in item), `a key list leaked secrets: ${shown}`).toBe(false);
        } else {
          const others = (state: DatabaseState) => new Map([...state.keys].filter(([id]) => id !== action.id));
          expect(after.keys.get(action.id)?.revoked, shown).toBe(true);
          expect(others(after), shown).toEqual(others(before));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('bulk import: POST /v1/import', () => {
  // Mostly valid, so that most imports write something and one bad field shows on its own line.
  const importAtsign = fc.oneof({ weight: 3, arbitrary: knownAtsign }, { weight: 3, arbitrary: fc.constantFrom('fuzz1', 'FUZZ1', '@fuzz2', ' fuzz3 ') }, { weight: 1, arbitrary: anyText });
  const hostText = fc.oneof({ weight: 6, arbitrary: validHost }, { weight: 1, arbitrary: awkwardHost });
  const portText = fc.oneof(
    { weight: 6, arbitrary: validPort.map(String) },
    { weight: 1, arbitrary: fc.constantFrom('0', '65536', '-1', '1.5', '0x10', ' 64 ', '', '00064', '1e3') },
    { weight: 1, arbitrary: anyText },
  );
  const csvField = (value: string, quoted: boolean) => (quoted ? `"${value.replaceAll('"', '""')}"` : value);
  const csvLine = fc.tuple(importAtsign, hostText, portText, fc.boolean()).map(([atsign, host, port, quoted]) => [atsign, host, port].map((field) => csvField(field, quoted)).join(','));
  const ndjsonLine = withExtraFields(
    shapedObject({ atsign: fc.oneof({ weight: 6, arbitrary: importAtsign }, { weight: 1, arbitrary: anyJson }), host: hostValue, port: portValue }, ['atsign', 'host', 'port']),
  ).map((record) => JSON.stringify(record));
  const otherLine = fc.oneof(
    anyText,
    fc.json({ stringUnit: 'binary' }),
    fc.constantFrom('atsign,host,port', '"atsign","host","port"', '', ' ', '"unclosed,a.example,1', 'a,"b"x,1', 'a,b.example', '{', '[]', 'null', '\uFEFFfuzz4,b.example,1', `fuzz5,${'h'.repeat(5000)}.example,1`),
  );
  const lines = fc.array(fc.oneof({ weight: 3, arbitrary: csvLine }, { weight: 3, arbitrary: ndjsonLine }, { weight: 1, arbitrary: otherLine }), { maxLength: 12 });
  const anyImportBody = fc.oneof(
    { weight: 6, arbitrary: fc.tuple(lines, fc.constantFrom('\n', '\r\n'), fc.boolean()).map(([texts, eol, trailing]) => texts.join(eol) + (trailing ? eol : '')) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }) },
  );
  const anyMediaType = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom('text/csv', 'application/x-ndjson', 'application/ndjson', 'application/jsonl') },
    { weight: 1, arbitrary: fc.constantFrom('text/csv; charset=utf-8', 'TEXT/CSV', 'application/json', 'text/plain', 'application/octet-stream') },
    { weight: 1, arbitrary: fc.string() },
  );
  const plausibleQuery = fc.constantFrom('', 'atomic=true', 'atomic=false', `registrar=${OTHER_REGISTRAR}`, `atomic=true&registrar=${OWN_REGISTRAR}`);
  const validRecords = fc.array(fc.tuple(fc.constantFrom('alice', '@bob', 'paused', 'fuzz1', 'FUZZ1', '@fuzz2'), validHost, validPort), { minLength: 1, maxLength: 3 });

  /** A report's numbers against the database: it applied exactly what it says, and no more. */
  function checkImport(scope: Scope, result: Exchange): void {
    const { before, after, shown } = result;
    expect(after.keys, shown).toEqual(before.keys);
    if ((result.body as { type?: string } | undefined)?.type === '/problems/invalid-import-line') {
      const refused = result.body as { failed: number; created: number; replaced: number };
      expect(refused.failed, shown).toBeGreaterThan(0);
      expect(refused.created + refused.replaced, shown).toBe(0);
    }
    if (result.status >= 300) return;
    expect(scope, `a read key imported: ${shown}`).not.toBe('read');
    const report = result.body as { format: string; atomic: boolean; lines: number; created: number; replaced: number; failed: number; errors: Array<Record<string, unknown>>; errorsTruncated: boolean };
    expect(report, shown).toMatchObject({ format: expect.stringMatching(/^(csv|ndjson)$/), atomic: expect.any(Boolean), lines: expect.any(Number), errorsTruncated: false });
    expect(report.errors.length, shown).toBe(report.failed);
    for (const error of report.errors) {
      expect(error, shown).toMatchObject({ type: expect.stringMatching(/^\/problems\//), detail: expect.any(String) });
      expect(Number.isInteger(error.line) && (error.line as number) >= 1 && (error.line as number) <= report.lines, shown).toBe(true);
    }
    if (report.atomic) expect(report.failed, shown).toBe(0);
    // One history row per write, one new row per creation.
    expect(after.historyRows - before.historyRows, shown).toBe(report.created + report.replaced);
    expect(after.atsigns.size - before.atsigns.size, shown).toBe(report.created);
    expect([...after.atsigns.keys()].filter((atsign) => !before.atsigns.has(atsign)).length, shown).toBe(report.created);
    for (const atsign of changedAtsigns(before, after)) {
      const previous = before.atsigns.get(atsign);
      const current = after.atsigns.get(atsign)!;
      if (scope === 'registrar') expect(current.registrar, shown).toBe(OWN_REGISTRAR);
      // Replacing moves the atServer only: ownership and suspension stay.
      if (previous) expect({ ...current, host: previous.host, port: previous.port, version: previous.version }, shown).toEqual(previous);
    }
  }

  it('answers any body and media type with a report or a problem, and applies what it reports', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    await fc.assert(
      fc.asyncProperty(anyImportBody, anyMediaType, plausibleQuery, scopes, async (body, contentType, queryString, scope) => {
        await resetRecords();
        checkImport(scope, await exchange({ method: 'POST', path: `/v1/import?${queryString}`, scope, headers: { 'content-type': contentType }, body }));
      }),
      { numRuns: 300 },
    );
  });

  it('answers any query string with a report or a problem, and an atomic refusal applies nothing', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const query = anyQuery({
      atomic: fc.oneof({ weight: 3, arbitrary: fc.constantFrom('true', 'false') }, { weight: 1, arbitrary: fc.constantFrom('TRUE', '1', '') }),
      registrar: registrarName,
    });
    await fc.assert(
      fc.asyncProperty(validRecords, fc.constantFrom('text/csv', 'application/x-ndjson'), query, scopes, async (records, contentType, queryString, scope) => {
        await resetRecords();
        const body = records.map(([atsign, host, port]) => (contentType === 'text/csv' ? `${atsign},${host},${port}` : JSON.stringify({ atsign, host, port }))).join('\n');
        checkImport(scope, await exchange({ method: 'POST', path: `/v1/import?${queryString}`, scope, headers: { 'content-type': contentType }, body }));
      }),
      { numRuns: 200 },
    );
  });
});

describe('any route', () => {
  it('answers any method on any path under /v1 with a 2xx or a problem', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    const segment = fc.oneof(
      fc.constantFrom('v1', 'atsigns', 'keys', 'import', 'history', 'alice', '@bob', '', '.', '..', '%2F', '%40', '%00'),
      anyText.map(encodeURIComponent),
    );
    const path = fc.tuple(fc.array(segment, { minLength: 1, maxLength: 4 }), fc.option(fc.string())).map(([segments, query]) => `/v1/${segments.join('/')}${query === null ? '' : `?${query}`}`);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'), path, scopes, async (method, target, scope) => {
        await resetRecords();
        const result = await exchange({ method, path: target, scope });
        // Without a body, only a DELETE can be a write.
        if (method !== 'DELETE') expect(result.after, result.shown).toEqual(result.before);
      }),
      { numRuns: 200 },
    );
  });
});

describe('any length', () => {
  it('answers a path parameter or query parameter of any length with a problem', { timeout: PROPERTY_TIMEOUT_MS }, async () => {
    // {} stands for the long text.
    const targets = fc.constantFrom('GET /v1/atsigns/{}', 'PUT /v1/atsigns/{}', 'GET /v1/atsigns/{}/history', 'DELETE /v1/keys/{}', 'GET /v1/atsigns?prefix={}', 'POST /v1/import?registrar={}');
    await fc.assert(
      fc.asyncProperty(targets, longText, scopes, async (target, text, scope) => {
        await resetRecords();
        const [method, path] = target.split(' ') as [string, string];
        const result = await exchange({ method, path: path.replace('{}', encodeURIComponent(text)), scope });
        // Nothing that long is a valid atsign, key id, prefix or import.
        expect(result.status, result.shown).toBeGreaterThanOrEqual(400);
      }),
      { numRuns: 100 },
    );
  });
});
