/**
 * User-space instructions per cache-hit lookup, atdirectory against the bare baseline, counted by
 * valgrind's callgrind. CPU seconds per lookup move by 10–20 % between runs on a shared or virtual
 * machine; an instruction count does not depend on what else the machine is doing. The baseline's
 * repeats within 2 %; atdirectory's depends on how V8 optimised its code in that run (39–40k and
 * 51k per lookup have both been seen, docs/performance.md), so compare several runs.
 *
 *   npx tsx loadtest/instructions.ts --database-url postgres://… [--rates 250,500] [--seconds 20] [--warm-up 60] [--connections 10]
 *                                    [--dumps DIR] [--json]
 *
 * Both servers run at once under callgrind (counts do not depend on timing), uninstrumented until
 * they listen. Each gets a paced warm-up load on kept-open connections (see Lookups), so V8 has
 * compiled the lookup path, then three measured windows, at the low rate, the high rate and the
 * low rate again: counters zeroed, paced load, counters dumped. Only the main thread, which serves
 * every lookup, is counted: V8's compiler threads go on optimising long after the warm-up, and
 * would be counted in whichever window they happen to fall. Instructions per lookup is the slope
 * from the low windows' mean to the high window, so work that goes with time rather than with
 * lookups (timers, background probes) cancels out, and so does a steady drift (code still being
 * optimised: the two low windows differ by `drift`). Kernel time is not counted: both servers make
 * the same system calls per lookup (one read, one write). `--dumps DIR` keeps callgrind's files
 * there, to see where the instructions go with `callgrind_annotate DIR/atdirectory.callgrind.2-01`.
 * Needs valgrind; loopback only.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { parseArgs, promisify } from 'node:util';
import { developmentCertificate } from '../src/tls/certificate.js';
import { ensureBuilt, storeBenchmarkRecord, startAtdirectory, startBaseline, valgrindInstalled, type RunningServer } from './lib/servers.js';

const { values } = parseArgs({
  options: {
    'database-url': { type: 'string' },
    rates: { type: 'string', default: '250,500' },
    seconds: { type: 'string', default: '20' },
    'warm-up': { type: 'string', default: '60' },
    connections: { type: 'string', default: '10' },
    dumps: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL;
const rates = values.rates.split(',').map(Number);
if (!databaseUrl || rates.length !== 2 || !rates.every((rate) => rate > 0) || rates[0] === rates[1]) {
  throw new Error('usage: npx tsx loadtest/instructions.ts --database-url URL [--rates 250,500 (two different rates)] [--seconds 20] [--warm-up 60] [--connections 10] [--json]');
}
const run = promisify(execFile);
if (!valgrindInstalled()) throw new Error('valgrind is needed (Debian: apt-get install valgrind)');

const PROMPT = 0x40;

interface Window {
  rate: number;
  lookups: number;
  instructions: number;
}

export interface InstructionsResult {
  server: string;
  /** Low rate, high rate, low rate again. */
  windows: Window[];
  instructionsPerLookup: number;
  /** How much the second low window's instructions per lookup differ from the first's (0.01 = 1 %). */
  drift: number;
}

export interface InstructionsReport {
  date: string;
  rates: number[];
  seconds: number;
  connections: number;
  baseline: InstructionsResult;
  atdirectory: InstructionsResult;
  ratio: number;
}

/**
 * Instructions the main thread executed since the last zeroing, from the dump callgrind just wrote
 * (one file per thread, the main thread's ending in -01).
 */
async function dumpInstructions(server: RunningServer, dir: string): Promise<number> {
  const before = new Set(await readdir(dir));
  await run('callgrind_control', ['--dump', String(server.pid)]);
  const dump = (await readdir(dir)).find((file) => file.startsWith(`${server.name}.callgrind.`) && file.endsWith('-01') && !before.has(file));
  if (dump === undefined) throw new Error(`callgrind wrote no dump of the main thread for ${server.name}`);
  const summary = /^summary: (\d+)$/m.exec(await readFile(join(dir, dump), 'utf8'));
  if (!summary) throw new Error(`no summary line in ${dump}`);
  return Number(summary[1]);
}

/**
 * Kept-open connections that look up `alice` on a schedule, reused by the warm-up and every window:
 * connections opened per window would put handshakes and connection set-up, still being optimised,
 * into the windows' counts.
 */
class Lookups {
  private constructor(private readonly sockets: tls.TLSSocket[]) {}

  static async open(port: number, count: number): Promise<Lookups> {
    const sockets = await Promise.all(
      Array.from({ length: count }, () =>
        new Promise<tls.TLSSocket>((resolve, reject) => {
          const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false });
          socket.once('data', () => resolve(socket));
          socket.once('error', reject);
        }),
      ),
    );
    return new Lookups(sockets);
  }

  /** `rate` lookups/s for `seconds`, spread over the connections; resolves with the lookups answered. */
  run(rate: number, seconds: number): Promise<number> {
    const interval = (this.sockets.length / rate) * 1000;
    const deadline = performance.now() + seconds * 1000;
    let answered = 0;
    return Promise.all(
      this.sockets.map(
        (socket, i) =>
          new Promise<void>((resolve, reject) => {
            let due = performance.now() + (i * interval) / this.sockets.length;
            const send = (): void => {
              if (due >= deadline) {
                socket.off('data', onAnswer);
                socket.off('error', reject);
                return resolve();
              }
              setTimeout(() => socket.write('alice\n'), Math.max(0, due - performance.now()));
              due += interval;
            };
            const onAnswer = (chunk: Buffer): void => {
              if (chunk[chunk.length - 1] !== PROMPT) return;
              answered++;
              send();
            };
            socket.on('data', onAnswer);
            socket.once('error', reject);
            send();
          }),
      ),
    ).then(() => answered);
  }

  close(): void {
    for (const socket of this.sockets) socket.end('@exit\n');
  }
}

async function measure(server: RunningServer, dir: string): Promise<InstructionsResult> {
  try {
    await run('callgrind_control', ['--instr=on', String(server.pid)]);
    const lookups = await Lookups.open(server.port, Number(values.connections));
    await lookups.run(rates[0]!, Number(values['warm-up']));
    const windows: Window[] = [];
    for (const rate of [rates[0]!, rates[1]!, rates[0]!]) {
      await run('callgrind_control', ['--zero', String(server.pid)]);
      const answered = await lookups.run(rate, Number(values.seconds));
      windows.push({ rate, lookups: answered, instructions: await dumpInstructions(server, dir) });
    }
    lookups.close();
    const [before, high, after] = windows as [Window, Window, Window];
    const perLookup = (window: Window) => window.instructions / window.lookups;
    return {
      server: server.name,
      windows,
      instructionsPerLookup: Math.round((high.instructions - (before.instructions + after.instructions) / 2) / (high.lookups - (before.lookups + after.lookups) / 2)),
      drift: Math.round((perLookup(after) / perLookup(before) - 1) * 1000) / 1000,
    };
  } finally {
    await server.stop();
  }
}

await ensureBuilt();
const dir = await mkdtemp(join(tmpdir(), 'atdirectory-instructions-'));
try {
  const certificate = await developmentCertificate(dir);
  await storeBenchmarkRecord(databaseUrl);
  const dumps = values.dumps ?? dir;
  await mkdir(dumps, { recursive: true });
  const callgrind = (name: string) => ['valgrind', '--tool=callgrind', '--instr-atstart=no', '--separate-threads=yes', `--callgrind-out-file=${join(dumps, `${name}.callgrind`)}`, process.execPath];
  const [baseline, atdirectory] = await Promise.all([
    startBaseline(certificate.certPath, certificate.keyPath, callgrind('baseline')).then((server) => measure(server, dumps)),
    startAtdirectory({
      databaseUrl,
      certPath: certificate.certPath,
      keyPath: certificate.keyPath,
      dataDir: dir,
      wrapper: callgrind('atdirectory'),
      // Under valgrind the event loop is slow enough to look overloaded.
      extra: ['--overload-delay', '0'],
    }).then((server) => measure(server, dumps)),
  ]);
  const ratio = Math.round((atdirectory.instructionsPerLookup / baseline.instructionsPerLookup) * 1000) / 1000;
  const report: InstructionsReport = { date: new Date().toISOString(), rates, seconds: Number(values.seconds), connections: Number(values.connections), baseline, atdirectory, ratio };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(report)}\n`);
  } else {
    for (const result of [baseline, atdirectory]) {
      const windows = result.windows.map((w) => `${w.rate}/s: ${w.lookups} lookups, ${w.instructions} instructions`).join('; ');
      process.stdout.write(`${result.server.padEnd(11)} ${String(result.instructionsPerLookup).padStart(7)} instructions per lookup, drift ${result.drift}  (${windows})\n`);
    }
    process.stdout.write(`ratio atdirectory/baseline: ${ratio}\n`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
