/**
 * User-space instructions per cache-hit lookup, atdirectory against the bare baseline, counted by
 * valgrind's callgrind. CPU seconds per lookup move by 10–20 % between runs on a shared or virtual
 * machine; an instruction count repeats to within a percent whatever else the machine is doing, so
 * it settles whether atdirectory's lookup path costs more than the limit does.
 *
 *   npx tsx loadtest/instructions.ts --database-url postgres://… [--rates 250,500] [--seconds 20] [--warm-up 60] [--connections 10]
 *                                    [--dumps DIR] [--json]
 *
 * Both servers run at once under callgrind (counts do not depend on timing), uninstrumented until
 * they listen. Each gets a paced warm-up load, so V8 has compiled the lookup path, then one measured
 * window per rate: counters zeroed, paced load, counters dumped. Only the main thread, which serves
 * every lookup, is counted: V8's compiler threads go on optimising long after the warm-up, and
 * would be counted in whichever window they happen to fall. Instructions per lookup is the slope
 * between the two windows, so work that goes with time rather than with lookups (timers,
 * background probes) cancels out. Kernel time is not counted: both servers make the same system
 * calls per lookup (one read, one write). `--dumps DIR` keeps callgrind's files there, to see where
 * the instructions go with `callgrind_annotate DIR/atdirectory.callgrind.2-01`. Needs valgrind;
 * loopback only.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { developmentCertificate } from '../src/tls/certificate.js';
import { runLoad } from './lib/lookup-load.js';
import { ensureBuilt, startAtdirectory, startBaseline, type RunningServer } from './lib/servers.js';

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
await run('valgrind', ['--version']).catch(() => {
  throw new Error('valgrind is needed (Debian: apt-get install valgrind)');
});

interface Window {
  rate: number;
  lookups: number;
  instructions: number;
}

export interface InstructionsResult {
  server: string;
  windows: Window[];
  instructionsPerLookup: number;
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

async function measure(server: RunningServer, dir: string): Promise<InstructionsResult> {
  const load = (rate: number, seconds: number) =>
    runLoad({ host: '127.0.0.1', port: server.port, mode: 'persistent', connections: Number(values.connections), durationMs: seconds * 1000, keys: ['alice'], missRatio: 0, missSet: 1, rate });
  try {
    await run('callgrind_control', ['--instr=on', String(server.pid)]);
    await load(rates[0]!, Number(values['warm-up']));
    const windows: Window[] = [];
    for (const rate of rates) {
      await run('callgrind_control', ['--zero', String(server.pid)]);
      const result = await load(rate, Number(values.seconds));
      if (Object.keys(result.errors).length > 0) throw new Error(`${server.name}: lookups failed: ${JSON.stringify(result.errors)}`);
      windows.push({ rate, lookups: result.lookups + result.warmUpLookups, instructions: await dumpInstructions(server, dir) });
    }
    const [low, high] = windows as [Window, Window];
    return { server: server.name, windows, instructionsPerLookup: Math.round((high.instructions - low.instructions) / (high.lookups - low.lookups)) };
  } finally {
    await server.stop();
  }
}

await ensureBuilt();
const dir = await mkdtemp(join(tmpdir(), 'atdirectory-instructions-'));
try {
  const certificate = await developmentCertificate(dir);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query("INSERT INTO atsigns (atsign, host, port) VALUES ('alice', 'alice.example.com', 6464) ON CONFLICT (atsign) DO UPDATE SET host = EXCLUDED.host, port = EXCLUDED.port");
  await client.end();
  const dumps = values.dumps ?? dir;
  await mkdir(dumps, { recursive: true });
  const callgrind = (name: string) => ['valgrind', '--tool=callgrind', '--instr-atstart=no', '--separate-threads=yes', `--callgrind-out-file=${join(dumps, `${name}.callgrind`)}`];
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
      process.stdout.write(`${result.server.padEnd(11)} ${String(result.instructionsPerLookup).padStart(7)} instructions per lookup  (${windows})\n`);
    }
    process.stdout.write(`ratio atdirectory/baseline: ${ratio}\n`);
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}
