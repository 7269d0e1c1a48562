import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startTestAdmin, type TestAdmin } from '../support/admin-harness.js';
import { createTestDatabase, type TestDatabase } from '../support/database.js';
import { eventually, startTestLookup, type TestLookup } from '../support/lookup-harness.js';
import { lookupOnce } from '../support/raw-client.js';
import { CLI, cleanEnv } from '../support/serve-process.js';

// POST /v1/import and `atdirectory import`, against a real database, with a lookup process
// listening to the same database.

let database: TestDatabase;
let admin: TestAdmin;
let lookup: TestLookup;
let adminToken: string;
let workDir: string;

const IMPORT_LIMIT = 8 * 1024 * 1024;
const LONG_HOST = Array.from({ length: 4 }, () => 'h'.repeat(60)).join('.') + '.example';
const BAD_LINES = new Map<number, { problem: string; detail: string }>([
  [2, { problem: 'invalid-port', detail: 'the port must be an integer from 1 to 65535' }],
  [25_000, { problem: 'invalid-host', detail: '"bad host" is not a DNS label (letters, digits and inner hyphens, at most 63 characters)' }],
  [50_000, { problem: 'ipv6-host', detail: 'IPv6 addresses cannot be served: every SDK splits the answer host:port on ":". Use a DNS name with an AAAA record instead.' }],
  [75_000, { problem: 'invalid-line', detail: 'expected 3 fields (atsign,host,port), got 2' }],
  [100_001, { problem: 'invalid-atsign', detail: 'the atsign contains ":"; whitespace, control characters, ":" and a second "@" are not allowed' }],
]);

/** A header and 100,000 records, five of them bad (at the line numbers above). */
function bigCsv(): string {
  const lines = ['atsign,host,port'];
  for (let i = 1; i <= 100_000; i++) {
    const line = i + 1;
    if (line === 2) lines.push(`user${i},h.example,0`);
    else if (line === 25_000) lines.push(`user${i},bad host,1`);
    else if (line === 50_000) lines.push(`user${i},[2001:db8::1],1`);
    else if (line === 75_000) lines.push(`user${i},h.example`);
    else if (line === 100_001) lines.push(`user:${i},h.example,1`);
    else lines.push(`@user${i},host${i % 97}.example.com,${1 + (i % 60_000)}`);
  }
  return lines.join('\n') + '\n';
}

async function count(): Promise<number> {
  return Number((await database.pool.query('SELECT count(*) FROM atsigns')).rows[0].count);
}

function post(body: string | AsyncIterable<Uint8Array>, { token = adminToken, type = 'text/csv', query = '' } = {}): Promise<Response> {
  return fetch(`${admin.url}/v1/import${query}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': type },
    body: body as RequestInit['body'],
    ...(typeof body === 'string' ? {} : { duplex: 'half' }),
  } as RequestInit);
}

/** Streams CSV without end over chunked HTTP until the server answers; returns that answer. */
function postUntilAnswered(query: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }> {
  return new Promise((resolve, reject) => {
    let answered = false;
    const request = httpRequest(`${admin.url}/v1/import${query}`, { method: 'POST', headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'text/csv' } });
    request.on('response', (response) => {
      answered = true;
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
    });
    request.on('error', (error) => answered || reject(error));
    let chunk = 0;
    const send = () => {
      while (!answered && !request.destroyed) {
        // Long hosts (about 250 bytes a line) reach the limit in few records, so the test is quick.
        const lines = Array.from({ length: 100 }, (_, i) => `c${chunk}r${i},${LONG_HOST},1\n`).join('');
        chunk++;
        if (!request.write(lines)) return request.once('drain', send);
      }
    };
    send();
  });
}

beforeAll(async () => {
  database = await createTestDatabase();
  admin = await startTestAdmin(database.url, { importLimit: IMPORT_LIMIT });
  lookup = await startTestLookup(database.url, ['--miss-delay-from', '0', '--miss-close-at', '0']);
  adminToken = await admin.key('admin', 'operator');
  workDir = await mkdtemp(join(tmpdir(), 'atdirectory-import-'));
});

afterAll(async () => {
  await lookup?.stop();
  await admin?.stop();
  await database?.drop();
  await rm(workDir, { recursive: true, force: true });
});

beforeEach(async () => {
  await database.pool.query('DELETE FROM atsigns');
});

describe('POST /v1/import', () => {
  it('applies a 100,000-line CSV, reporting each bad line by number and applying the rest', async () => {
    const response = await post(bigCsv());
    expect(response.status).toBe(200);
    const report = (await response.json()) as { errors: Array<{ line: number; type: string; detail: string }> };
    expect(report).toMatchObject({ format: 'csv', atomic: false, lines: 100_001, created: 99_995, replaced: 0, failed: 5, errorsTruncated: false });
    expect(report.errors).toEqual([...BAD_LINES].map(([line, { problem, detail }]) => ({ line, type: `/problems/${problem}`, detail })));
    expect(await count()).toBe(99_995);
    const history = await database.pool.query("SELECT count(*)::int AS n, min(action) AS action, min(actor) AS actor FROM atsign_history WHERE action = 'import'");
    expect(history.rows[0]).toEqual({ n: 99_995, action: 'import', actor: expect.stringMatching(/^[a-z2-7]{16}$/) });
    // The lookup process learnt of the new records through the database's notification.
    expect(await lookupOnce(lookup.port, 'user100')).toBe('@host3.example.com:101\r\n@');
  });

  it('applies nothing in atomic mode, and lists every bad line', async () => {
    await database.pool.query("INSERT INTO atsigns (atsign, host, port) VALUES ('user7', 'before.example', 1)");
    const response = await post(bigCsv(), { query: '?atomic=true' });
    expect(response.status).toBe(422);
    expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    const problem = (await response.json()) as Record<string, unknown>;
    expect(problem).toMatchObject({
      type: '/problems/invalid-import-line',
      status: 422,
      detail: '5 of 100001 lines were refused; nothing was applied',
      atomic: true,
      created: 0,
      replaced: 0,
      failed: 5,
    });
    expect((problem.errors as Array<{ line: number }>).map((error) => error.line)).toEqual([...BAD_LINES.keys()]);
    expect((await database.pool.query('SELECT atsign, host FROM atsigns')).rows).toEqual([{ atsign: 'user7', host: 'before.example' }]);
    expect(await lookupOnce(lookup.port, 'user8')).toBe('@null\r\n@');
  });

  it('applies a clean file atomically', async () => {
    const response = await post('a,a.example,1\nb,b.example,2\n', { query: '?atomic=true' });
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ created: 2, failed: 0 });
  });

  it('takes NDJSON, replaces existing records, and lets a later line for the same atsign win', async () => {
    await database.pool.query("INSERT INTO atsigns (atsign, host, port, status, suspension_reason) VALUES ('alice', 'old.example', 1, 'suspended', 'abuse')");
    const body = [
      '{"atsign":"@Alice","host":"new.example","port":2}',
      '',
      '{"atsign":"bob","host":"bob.example","port":3}',
      '{"atsign":"bob","host":"bob2.example","port":4}',
      '{"atsign":"carol","host":"c.example","port":5,"registrar":"x"}',
      '{"atsign":"dave","host":"d.example","port":"5"}',
      '{"atsign":"erin",',
      '["erin","e.example",1]',
    ].join('\n');
    const response = await post(body, { type: 'application/x-ndjson; charset=utf-8' });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({
      format: 'ndjson',
      atomic: false,
      lines: 8,
      created: 1,
      replaced: 2,
      failed: 4,
      errorsTruncated: false,
      errors: [
        { line: 5, type: '/problems/unknown-field', detail: 'unknown field "registrar"' },
        { line: 6, type: '/problems/invalid-port', detail: 'the port must be an integer from 1 to 65535' },
        { line: 7, type: '/problems/malformed-json', detail: expect.any(String) },
        { line: 8, type: '/problems/invalid-line', detail: 'each NDJSON line must be an object {"atsign","host","port"}' },
      ],
    });
    const { rows } = await database.pool.query('SELECT atsign, host, port, status FROM atsigns ORDER BY atsign');
    // Replacing moves an atsign; it does not lift a suspension (that takes PATCH status=active).
    expect(rows).toEqual([
      { atsign: 'alice', host: 'new.example', port: 2, status: 'suspended' },
      { atsign: 'bob', host: 'bob2.example', port: 4, status: 'active' },
    ]);
    const history = await database.pool.query("SELECT new_value->>'host' AS host FROM atsign_history WHERE atsign = 'bob' ORDER BY id");
    expect(history.rows).toEqual([{ host: 'bob.example' }, { host: 'bob2.example' }]);
  });

  it('reads the body as it arrives instead of buffering it', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    async function* body() {
      const first = Array.from({ length: 1500 }, (_, i) => `early${i},e.example,1`).join('\n') + '\n';
      yield new TextEncoder().encode(first);
      await held;
      yield new TextEncoder().encode('late,l.example,1\n');
    }
    const responding = post(body());
    // The first full batch (1,000 records) is committed while the rest of the body is still unsent.
    expect(await eventually(async () => (await count()) >= 1000, 5000, 20)).toBe(true);
    release();
    const response = await responding;
    expect(await response.json()).toMatchObject({ created: 1501, failed: 0 });
  });

  it('stops a body that grows past the limit, saying how much was applied, and closes the connection', async () => {
    for (const query of ['', '?atomic=true']) {
      const response = await postUntilAnswered(query);
      expect(response.status).toBe(413);
      expect(response.headers.connection).toBe('close');
      const problem = JSON.parse(response.body) as { type: string; detail: string; report: { created: number; lines: number } };
      expect(problem.type).toBe('/problems/body-too-large');
      expect(problem.detail).toMatch(new RegExp(`^the import is larger than ${IMPORT_LIMIT} bytes \\(--admin-import-limit\\); the import stopped at line \\d+ with \\d+ records applied$`));
      // Without atomic, the batches before the limit stay applied, and the report says how many.
      expect(problem.report.created).toBe(query ? 0 : await count());
      if (!query) expect(problem.report.created).toBeGreaterThan(0);
      await database.pool.query('DELETE FROM atsigns');
    }
  });

  it('refuses a declared oversize body before reading it', async () => {
    const response = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const request = httpRequest(`${admin.url}/v1/import`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'text/csv', 'content-length': String(IMPORT_LIMIT + 1) },
      });
      request.on('response', (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      request.on('error', reject);
      request.write('a,a.example,1\n');
    });
    expect(response.status).toBe(413);
    expect(JSON.parse(response.body)).toMatchObject({ type: '/problems/body-too-large', detail: `the import is larger than ${IMPORT_LIMIT} bytes (--admin-import-limit)` });
    expect(await count()).toBe(0);
  });

  it.each([
    ['application/json', '{"atsign":"a","host":"h.example","port":1}'],
    ['text/plain', 'a,h.example,1'],
  ])('refuses %s with 415', async (type, body) => {
    const response = await post(body, { type });
    expect(response.status).toBe(415);
    expect(await response.json()).toMatchObject({ type: '/problems/unsupported-media-type', detail: `imports are application/x-ndjson or text/csv, not ${type}` });
    expect(await count()).toBe(0);
  });

  it('is not accepted without a key', async () => {
    const response = await post('a,h.example,1\n', { token: 'nope' });
    expect(response.status).toBe(401);
    expect(await count()).toBe(0);
  });

  it('gives new atsigns to ?registrar= (admin keys only)', async () => {
    const response = await post('a,h.example,1\n', { query: '?registrar=globex' });
    expect(response.status).toBe(200);
    expect((await database.pool.query('SELECT registrar FROM atsigns')).rows).toEqual([{ registrar: 'globex' }]);
    const registrarKey = await admin.key('registrar', 'acme');
    const refused = await post('b,h.example,1\n', { token: registrarKey, query: '?registrar=globex' });
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ type: '/problems/forbidden', detail: 'only admin keys may set the registrar' });
  });

  it('refuses unknown query parameters', async () => {
    const response = await post('a,h.example,1\n', { query: '?atomically=yes' });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ type: '/problems/invalid-query' });
  });
});

describe('atdirectory import', () => {
  const run = async (args: string[], input?: string) => {
    const child = promisify(execFile)(process.execPath, [CLI, 'import', ...args, '--database-url', database.url], { env: cleanEnv({}) });
    if (input !== undefined) child.child.stdin!.end(input);
    return child.then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, stdout: error.stdout, stderr: error.stderr }),
    );
  };

  it('imports a file, printing refused lines and a summary, and exits 1 when any line was refused', async () => {
    const file = join(workDir, 'atsigns.csv');
    await writeFile(file, 'atsign,host,port\nalice,a.example,1\nbob,b.example,99999\n');
    const result = await run([file, '--registrar', 'acme']);
    expect(result).toEqual({
      code: 1,
      stdout: `line 3: the port must be an integer from 1 to 65535 (invalid-port)\n${file}: 3 lines (csv), 1 created, 0 replaced, 1 refused\n`,
      stderr: '',
    });
    expect((await database.pool.query('SELECT atsign, registrar FROM atsigns')).rows).toEqual([{ atsign: 'alice', registrar: 'acme' }]);
    expect((await database.pool.query("SELECT action, actor FROM atsign_history WHERE atsign = 'alice' ORDER BY id DESC LIMIT 1")).rows).toEqual([{ action: 'import', actor: 'cli' }]);
  });

  it('applies nothing with --atomic when a line is bad, and everything when none is', async () => {
    const bad = await run(['-', '--atomic'], '{"atsign":"a","host":"a.example","port":1}\n{"atsign":"b","host":"b..example","port":1}\n');
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('line 2: "b..example" has an empty label (two dots in a row, or a leading or trailing dot) (invalid-host)\n-: 2 lines (ndjson), nothing applied (--atomic), 1 refused\n');
    expect(await count()).toBe(0);
    const good = await run(['-', '--atomic'], '{"atsign":"a","host":"a.example","port":1}\n');
    expect(good).toMatchObject({ code: 0, stdout: '-: 1 lines (ndjson), 1 created, 0 replaced, 0 refused\n' });
  });

  it('names a file it cannot read', async () => {
    const result = await run([join(workDir, 'missing.csv')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`atdirectory: cannot read ${join(workDir, 'missing.csv')}: ENOENT: no such file or directory, stat '${join(workDir, 'missing.csv')}'\n`);
  });

  it('needs exactly one file', async () => {
    const result = await run([]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('import takes exactly one file (or - for standard input)');
  });
});
