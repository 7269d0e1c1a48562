import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { cpuSeconds } from './summary.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI = `${ROOT}dist/cli.js`;

export interface RunningServer {
  name: string;
  port: number;
  /** Ports of the admin API and ops endpoint, for atdirectory. */
  adminPort?: number;
  opsPort?: number;
  pid: number;
  stop(): Promise<void>;
}

/** Builds dist/ when missing, so the tools run on a fresh clone after npm install. */
export async function ensureBuilt(): Promise<void> {
  if (existsSync(CLI)) return;
  await new Promise<void>((resolve, reject) =>
    spawn('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' }).once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`npm run build failed (${code})`)))),
  );
}

/** Stores the record cache-hit runs look up, `alice`, with the answer the baseline sends every line. */
export async function storeBenchmarkRecord(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query("INSERT INTO atsigns (atsign, host, port) VALUES ('alice', 'alice.example.com', 6464) ON CONFLICT (atsign) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port");
  } finally {
    await client.end();
  }
}

/** A new admin-scope API key for `registrar`, from the CLI as an operator would make one. */
export async function createAdminKey(databaseUrl: string, registrar: string): Promise<string> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'keys', 'create', '--registrar', registrar, '--scope', 'admin', '--database-url', databaseUrl]);
  return stdout.trim();
}

/** Whether valgrind can be run here (loadtest/instructions.ts needs it). */
export function valgrindInstalled(): boolean {
  return spawnSync('valgrind', ['--version']).status === 0;
}

/** Starts a server process and waits for the line that says where it listens. */
function startProcess(name: string, command: string, args: string[], parse: (line: string) => Omit<RunningServer, 'name' | 'pid' | 'stop'> | undefined): Promise<RunningServer> {
  const child: ChildProcess = spawn(command, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start in 120 s: ${output}`)), 120_000);
    child.stderr!.on('data', (data: Buffer) => (output += data));
    let buffered = '';
    child.stdout!.on('data', (data: Buffer) => {
      buffered += data;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const where = parse(line);
        if (!where) continue;
        clearTimeout(timer);
        resolve({ name, ...where, pid: child.pid!, stop: () => stopProcess(child) });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code} before listening: ${output}`));
    });
  });
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * How to run node instead of plainly: the command up to node's own flags, e.g. `['valgrind',
 * '--tool=callgrind', process.execPath]`. `pid` is then the command's, which valgrind shares with
 * the program it runs.
 */
export type Wrapper = string[];

function wrapped(wrapper: Wrapper, nodeArgs: string[]): [string, string[]] {
  return wrapper.length === 0 ? [process.execPath, nodeArgs] : [wrapper[0]!, [...wrapper.slice(1), ...nodeArgs]];
}

export function startBaseline(certPath: string, keyPath: string, wrapper: Wrapper = []): Promise<RunningServer> {
  return startProcess('baseline', ...wrapped(wrapper, ['--import', 'tsx', 'loadtest/baseline.ts', '--cert', certPath, '--key', keyPath]), (line) => {
    const parsed = JSON.parse(line) as { port?: number };
    return parsed.port === undefined ? undefined : { port: parsed.port };
  });
}

/**
 * atdirectory as an operator runs it, with the limits a benchmark would trip turned off: one client
 * address opens thousands of connections a second, and misses are made on purpose.
 */
export function startAtdirectory(options: { databaseUrl: string; certPath: string; keyPath: string; dataDir: string; workers?: number; extra?: string[]; wrapper?: Wrapper }): Promise<RunningServer> {
  const args = [
    CLI, 'serve', '--database-url', options.databaseUrl, '--lookup-host', '127.0.0.1', '--lookup-port', '0', '--admin-port', '0', '--ops-host', '127.0.0.1', '--ops-port', '0',
    '--tls-cert', options.certPath, '--tls-key', options.keyPath, '--data-dir', options.dataDir, '--workers', String(options.workers ?? 1),
    '--miss-delay-from', '0', '--miss-close-at', '0', '--client-rate', '0', '--max-connections-per-client', '0', '--max-connections', '0', ...(options.extra ?? []),
  ];
  return startProcess('atdirectory', ...wrapped(options.wrapper ?? [], args), (line) => {
    const entry = JSON.parse(line) as { msg?: string; lookup?: { port: number }; admin?: { port: number } | null; ops?: { port: number } | null };
    if (!entry.msg?.startsWith('atdirectory serving lookups')) return undefined;
    return { port: entry.lookup!.port, adminPort: entry.admin?.port, opsPort: entry.ops?.port };
  });
}

/** CPU seconds of a process and all its descendants (cluster workers). */
export function treeCpuSeconds(pid: number): number {
  let total = cpuSeconds(pid);
  for (const child of childPids(pid)) total += treeCpuSeconds(child);
  return total;
}

function childPids(pid: number): number[] {
  try {
    return readdirSync(`/proc/${pid}/task`).flatMap((task) =>
      readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number),
    );
  } catch {
    return [];
  }
}
