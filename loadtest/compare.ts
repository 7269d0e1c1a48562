/**
 * atdirectory against the bare node:tls baseline under the same load, alternately (baseline,
 * atdirectory, baseline, …) so that drift on the machine hits both, with the same certificate.
 *
 *   npx tsx loadtest/compare.ts --database-url postgres://… [--pairs 3] [--workers 1] [--out results.json] <load flags>
 *
 * `--server-args="--cache-max-entries 1"` passes serve flags (to measure misses, say). The database gets
 * the record `alice` (upserted). Prints each pair and the median ratio
 * atdirectory/baseline of every figure.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { developmentCertificate } from '../src/tls/certificate.js';
import { runLoadAcrossProcesses } from './lib/load-processes.js';
import { LOAD_FLAGS, LOAD_USAGE, loadOptionsFrom } from './lib/lookup-options.js';
import { ensureBuilt, storeBenchmarkRecord, startAtdirectory, startBaseline, treeCpuSeconds, type RunningServer } from './lib/servers.js';
import { summarise, type LoadSummary } from './lib/summary.js';

const { values } = parseArgs({
  options: {
    ...LOAD_FLAGS,
    pairs: { type: 'string', default: '3' },
    workers: { type: 'string', default: '1' },
    'database-url': { type: 'string' },
    out: { type: 'string' },
    /** More `serve` flags for atdirectory, e.g. "--cache-max-entries 1" to measure misses. */
    'server-args': { type: 'string', default: '' },
  },
});
const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL;
if (!databaseUrl) throw new Error(`usage: npx tsx loadtest/compare.ts --database-url URL [--pairs 3] [--workers 1] [--server-args "..."] [--out file.json] ${LOAD_USAGE}`);
const pairs = Number(values.pairs);
const workers = Number(values.workers);

export interface ComparePair {
  baseline: LoadSummary;
  atdirectory: LoadSummary;
}

await ensureBuilt();
const dir = await mkdtemp(join(tmpdir(), 'atdirectory-compare-'));
try {
  const certificate = await developmentCertificate(dir);
  await storeBenchmarkRecord(databaseUrl);

  const measure = async (server: RunningServer): Promise<LoadSummary> => {
    try {
      const options = loadOptionsFrom(values, server.port);
      const cpuBefore = treeCpuSeconds(server.pid);
      const result = await runLoadAcrossProcesses(options, Number(values.processes));
      return summarise(result, treeCpuSeconds(server.pid) - cpuBefore);
    } finally {
      await server.stop();
    }
  };

  const results: ComparePair[] = [];
  for (let pair = 1; pair <= pairs; pair++) {
    const baseline = await measure(await startBaseline(certificate.certPath, certificate.keyPath));
    const atdirectory = await measure(await startAtdirectory({ databaseUrl, certPath: certificate.certPath, keyPath: certificate.keyPath, dataDir: dir, workers, extra: values['server-args'].split(' ').filter(Boolean) }));
    results.push({ baseline, atdirectory });
    if (!values.json) process.stdout.write(`${formatPair(pair, baseline, atdirectory)}\n`);
  }
  const report = { date: new Date().toISOString(), mode: values.mode, connections: Number(values.connections), workers, seconds: Number(values.duration), pairs: results, median: medianRatios(results) };
  if (values.out) await writeFile(values.out, `${JSON.stringify(report, null, 2)}\n`);
  process.stdout.write(values.json ? `${JSON.stringify(report)}\n` : `${formatMedian(report.median)}\n`);
} finally {
  await rm(dir, { recursive: true, force: true });
}

function ratio(a: number, b: number): number {
  return Math.round((a / b) * 1000) / 1000;
}

function ratios({ baseline, atdirectory }: ComparePair) {
  return {
    lookupsPerSecond: ratio(atdirectory.lookupsPerSecond, baseline.lookupsPerSecond),
    connectionsPerSecond: ratio(atdirectory.connectionsPerSecond, baseline.connectionsPerSecond),
    p50: ratio(atdirectory.latencyMs.p50, baseline.latencyMs.p50),
    p99: ratio(atdirectory.latencyMs.p99, baseline.latencyMs.p99),
    cpuPerLookup: ratio(atdirectory.serverCpuMicrosecondsPerLookup ?? NaN, baseline.serverCpuMicrosecondsPerLookup ?? NaN),
  };
}

function medianRatios(results: ComparePair[]) {
  const all = results.map(ratios);
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)]!;
  return {
    lookupsPerSecond: median(all.map((r) => r.lookupsPerSecond)),
    connectionsPerSecond: median(all.map((r) => r.connectionsPerSecond)),
    p50: median(all.map((r) => r.p50)),
    p99: median(all.map((r) => r.p99)),
    cpuPerLookup: median(all.map((r) => r.cpuPerLookup)),
  };
}

function formatPair(pair: number, baseline: LoadSummary, atdirectory: LoadSummary): string {
  const row = (name: string, s: LoadSummary) =>
    `  ${name.padEnd(11)} ${String(s.lookupsPerSecond).padStart(8)}/s ${String(s.connectionsPerSecond).padStart(7)} conn/s  p50 ${s.latencyMs.p50.toFixed(3)}  p99 ${s.latencyMs.p99.toFixed(3)} ms  cpu ${s.serverCpuMicrosecondsPerLookup ?? '-'} µs/lookup  errors ${Object.keys(s.errors).length === 0 ? 'none' : JSON.stringify(s.errors)}`;
  const r = ratios({ baseline, atdirectory });
  return [`pair ${pair}`, row('baseline', baseline), row('atdirectory', atdirectory), `  ratio       lookups/s ${r.lookupsPerSecond}  p50 ${r.p50}  p99 ${r.p99}  cpu/lookup ${r.cpuPerLookup}`].join('\n');
}

function formatMedian(median: ReturnType<typeof medianRatios>): string {
  return `median atdirectory/baseline: lookups/s ${median.lookupsPerSecond}, connections/s ${median.connectionsPerSecond}, p50 ${median.p50}, p99 ${median.p99}, CPU per lookup ${median.cpuPerLookup}`;
}
