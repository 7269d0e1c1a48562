import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { CLI, cleanEnv, spawnServe, type ServeProcess } from '../support/serve-process.js';

const run = promisify(execFile);
const UNPRIVILEGED_PORT_START = '/proc/sys/net/ipv4/ip_unprivileged_port_start';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

async function cli(args: string[], env: Record<string, string> = {}, command = [process.execPath, CLI]): Promise<Result> {
  try {
    const { stdout, stderr } = await run(command[0]!, [...command.slice(1), ...args], { env: cleanEnv(env), timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

let database: TestDatabase;
let dataDir: string;
let server: ServeProcess;

beforeAll(async () => {
  database = await createTestDatabase();
  await insertRecord(database.pool, 'alice', 'alice.example.com', 6464);
  dataDir = await mkdtemp(join(tmpdir(), 'atdirectory-test-'));
  await chmod(dataDir, 0o777);
  server = await spawnServe(['--database-url', database.url, '--data-dir', dataDir]);
});

afterAll(async () => {
  await server?.stop();
  await database?.drop();
  await rm(dataDir, { recursive: true, force: true });
});

describe('help', () => {
  it('lists the commands', async () => {
    const result = await cli(['--help']);
    expect(result.code).toBe(0);
    for (const command of ['serve', 'migrate', 'lookup']) expect(result.stdout).toContain(`  ${command} `);
  });

  it('prints usage and fails without a command', async () => {
    const result = await cli([]);
    expect(result.code).toBe(2);
    expect(result.stdout).toContain('Usage: atdirectory <command>');
  });

  it.each(['serve', 'migrate', 'lookup'])('documents every option of %s', async (command) => {
    const result = await cli([command, '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`Usage: atdirectory ${command}`);
    expect(result.stdout).toContain('[ATDIR_');
  });
});

describe('invalid command lines fail at start, naming what is wrong', () => {
  const cases: Array<[string[], string]> = [
    [['serve', '--bogus'], 'atdirectory: configuration error: unknown option --bogus for `atdirectory serve` (see --help)\n'],
    [['serve', '--lookup-port', '99999'], 'atdirectory: configuration error: invalid --lookup-port: expected an integer from 0 to 65535, got "99999"\n'],
    [['migrate', '--lookup-port', '64'], 'atdirectory: configuration error: unknown option --lookup-port for `atdirectory migrate` (see --help)\n'],
    [['lookup'], 'atdirectory: configuration error: lookup takes exactly one atsign, e.g. `atdirectory lookup @alice`\n'],
    [['serve', 'extra'], 'atdirectory: configuration error: unexpected argument "extra"\n'],
  ];
  it.each(cases)('%j', async (args, message) => {
    const result = await cli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(message);
  });

  it('names a bad environment variable', async () => {
    const result = await cli(['serve'], { ATDIR_IDLE_TIMEOUT: 'forever' });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      'atdirectory: configuration error: invalid ATDIR_IDLE_TIMEOUT: expected a duration such as 500ms, 3s, 10m, 1h or 7d, got "forever"\n',
    );
  });

  it('refuses an unknown command', async () => {
    const result = await cli(['serv']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('unknown command "serv"');
  });

  it('names an unreadable certificate file', async () => {
    const result = await cli(['serve', '--database-url', database.url, '--tls-cert', '/nonexistent/cert.pem', '--tls-key', '/nonexistent/key.pem', '--lookup-port', '0']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('cannot read --tls-cert /nonexistent/cert.pem');
  });
});

describe('atdirectory lookup', () => {
  const root = () => `127.0.0.1:${server.port}`;
  const ca = () => join(dataDir, 'tls', 'cert.pem');

  it('prints host:port for a known atsign, with or without its @, verifying the certificate', async () => {
    for (const atsign of ['alice', '@alice', '@ALICE']) {
      const result = await cli(['lookup', atsign, '--root', root(), '--ca', ca()]);
      expect(result).toEqual({ code: 0, stdout: 'alice.example.com:6464\n', stderr: '' });
    }
  });

  it('exits 1 for an unknown atsign', async () => {
    const result = await cli(['lookup', '@nosuch', '--root', root(), '--insecure']);
    expect(result).toEqual({ code: 1, stdout: '', stderr: '@nosuch: not found\n' });
  });

  it('refuses an untrusted certificate unless told otherwise', async () => {
    const result = await cli(['lookup', 'alice', '--root', root()]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/self[- ]signed certificate/);
  });

  it('fails clearly when nothing listens', async () => {
    const result = await cli(['lookup', 'alice', '--root', '127.0.0.1:1', '--insecure']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('ECONNREFUSED');
  });

  it('names the generated certificate in the start-up line', async () => {
    const ready = server.logs.find((line) => line.msg.startsWith('atdirectory serving lookups'))!;
    expect(ready).toMatchObject({ certificate: { path: ca(), generated: true }, lookup: { port: server.port, workers: 1 } });
    expect(await readFile(ca(), 'utf8')).toContain('BEGIN CERTIFICATE');
    expect(server.logs.some((line) => line.level === 40 && String(line.msg).includes('self-signed development certificate'))).toBe(true);
  });
});

describe('atdirectory migrate', () => {
  it('applies the migrations to an empty database, and is idempotent', async () => {
    const empty = await createTestDatabase({ migrate: false });
    for (let i = 0; i < 2; i++) {
      const result = await cli(['migrate'], { DATABASE_URL: empty.url });
      expect(result.code).toBe(0);
      expect(result.stdout).toContain('database schema is current');
    }
    const { rows } = await empty.pool.query("SELECT count(*)::int AS n FROM information_schema.tables WHERE table_name = 'atsigns'");
    expect(rows[0].n).toBe(1);
    await empty.drop();
  });
});

describe('binding port 64 without privilege', () => {
  // Where the kernel lets anyone bind low ports there is nothing to provoke.
  const unprivilegedStart = existsSync(UNPRIVILEGED_PORT_START) ? Number(readFileSync(UNPRIVILEGED_PORT_START, 'utf8')) : 1024;
  it.skipIf(unprivilegedStart <= 64)('fails with a message that says how to fix it', async () => {
    const asNobody = process.getuid?.() === 0 ? ['setpriv', '--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, CLI] : undefined;
    const ownDataDir = await mkdtemp(join(tmpdir(), 'atdirectory-test-'));
    await chmod(ownDataDir, 0o777);
    const result = await cli(['serve', '--database-url', database.url, '--data-dir', ownDataDir, '--lookup-port', '64', '--no-migrate'], {}, asNobody);
    await rm(ownDataDir, { recursive: true, force: true });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('cannot listen for lookups on [::]:64: ports below 1024 need privilege');
    expect(result.stderr).toContain('--lookup-port 6464');
    expect(result.stderr).toContain('setcap cap_net_bind_service=+ep');
  });
});

describe('atdirectory keys', () => {
  it('creates a key printed once, lists it without its secret, and revokes it', async () => {
    const created = await cli(['keys', 'create', '--registrar', 'acme', '--scope', 'registrar', '--database-url', database.url]);
    expect(created.code).toBe(0);
    const token = created.stdout.trim();
    expect(token).toMatch(/^atd_[a-z2-7]{16}_[A-Za-z0-9_-]{43}$/);
    const id = token.split('_')[1]!;
    expect(created.stderr).toContain(`created registrar key ${id} for registrar acme; the key above is shown only this once`);

    const listed = await cli(['keys', 'list', '--database-url', database.url]);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`^${id}\\tregistrar\\tacme\\t\\S+\\tactive\\tnever used$`, 'm'));
    expect(listed.stdout).not.toContain(token.split('_').slice(2).join('_'));

    expect((await cli(['keys', 'revoke', id, '--database-url', database.url])).code).toBe(0);
    expect((await cli(['keys', 'list', '--database-url', database.url])).stdout).toMatch(new RegExp(`^${id}\\t.*\\trevoked `, 'm'));
    expect(await cli(['keys', 'revoke', 'nosuchkey', '--database-url', database.url])).toMatchObject({ code: 1, stderr: 'no key nosuchkey\n' });
  });

  it.each([
    [['keys'], 'keys takes create, list or revoke'],
    [['keys', 'create', '--scope', 'admin'], 'keys create needs --registrar NAME'],
    [['keys', 'create', '--registrar', 'x'], 'keys create needs --scope admin|registrar|read'],
    [['keys', 'create', '--registrar', 'x', '--scope', 'root'], 'invalid --scope: expected admin, registrar or read, got "root"'],
    [['keys', 'revoke'], 'keys revoke takes exactly one key id'],
  ])('%j fails naming what is missing', async (args, message) => {
    expect(await cli(args)).toMatchObject({ code: 2, stderr: `atdirectory: configuration error: ${message}\n` });
  });
});
