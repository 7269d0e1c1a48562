import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { LogLine } from './lookup-harness.js';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface ServeProcess {
  port: number;
  /** The admin API's port, or undefined when started with --no-admin. */
  adminPort: number | undefined;
  /** The ops endpoint's port (/metrics, /healthz, /readyz). */
  opsPort: number | undefined;
  child: ChildProcess;
  logs: LogLine[];
  stderr: () => string;
  /** SIGTERM, then waits for the exit code (SIGKILL after `timeoutMs`). */
  stop(timeoutMs?: number): Promise<number | null>;
}

/** The environment without any setting of the developer's or CI's, so only `env` applies. */
export function cleanEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('ATDIR_') && name !== 'DATABASE_URL'),
  );
  return { ...base, ...env };
}

/**
 * Starts several `serve` processes at once. If any fails to start, the others are stopped before
 * the error is thrown: the caller never got their handles, so nothing else could stop them.
 */
export async function spawnServes(argsOfEach: string[][]): Promise<ServeProcess[]> {
  const started = await Promise.allSettled(argsOfEach.map((args) => spawnServe(args)));
  const failure = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
  if (failure === undefined) return started.map((result) => (result as PromiseFulfilledResult<ServeProcess>).value);
  await Promise.all(started.map((result) => (result.status === 'fulfilled' ? result.value.stop() : undefined)));
  throw failure.reason;
}

/** Runs the built CLI's `serve` as a real process and waits until it serves lookups. */
export async function spawnServe(
  args: string[],
  env: Record<string, string> = {},
  { startTimeoutMs = 60_000, asUser }: { startTimeoutMs?: number; asUser?: string } = {},
): Promise<ServeProcess> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (npm test does it first)`);
  const command = [process.execPath, CLI, 'serve', '--lookup-host', '127.0.0.1', '--lookup-port', '0', '--admin-port', '0', '--ops-host', '127.0.0.1', '--ops-port', '0', ...args];
  // As root, `asUser` runs the service as an ordinary user, the way a self-hoster would.
  const argv = asUser ? ['setpriv', `--reuid=${asUser}`, `--regid=${asUser === 'nobody' ? 'nogroup' : asUser}`, '--clear-groups', ...command] : command;
  const child = spawn(argv[0]!, argv.slice(1), {
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let stderr = '';
  let buffered = '';
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const [port, adminPort, opsPort] = await new Promise<[number, number | undefined, number | undefined]>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start within ${startTimeoutMs} ms: ${stderr}`)), startTimeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (data: string) => {
      buffered += data;
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        const entry = JSON.parse(line) as LogLine & { lookup?: { port: number }; admin?: { port: number } | null; ops?: { port: number } | null };
        logs.push(entry);
        if (entry.msg.startsWith('atdirectory serving lookups')) {
          clearTimeout(timer);
          resolve([entry.lookup!.port, entry.admin?.port, entry.ops?.port]);
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (data: string) => (stderr += data));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code} before serving: ${stderr}`));
    });
  });
  return {
    port,
    adminPort,
    opsPort,
    child,
    logs,
    stderr: () => stderr,
    async stop(timeoutMs = 20_000) {
      if (child.exitCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}
