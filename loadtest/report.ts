/**
 * Runs the benchmark suite and writes docs/benchmarks.md with its tables and SVG charts.
 *
 *   npx tsx loadtest/report.ts --database-url postgres://…/scratch [--duration 10] [--pairs 3] [--scale 10000,1000000] [--out docs]
 *                              [--instruction-rates 250,500] [--instruction-seconds 20] [--instruction-warm-up 60]
 *                              [--propagation-writes 200]
 *
 * The database is a scratch one: it is seeded with synthetic records (seed.ts). Every figure is
 * reported against its target from design.md, met or not. Loopback only.
 */
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { barChart } from './lib/svg-chart.js';
import { valgrindInstalled } from './lib/servers.js';
import type { LoadSummary } from './lib/summary.js';
import type { InstructionsReport } from './instructions.js';

const { values } = parseArgs({
  options: {
    'database-url': { type: 'string' },
    duration: { type: 'string', default: '10' },
    pairs: { type: 'string', default: '3' },
    scale: { type: 'string', default: '10000,1000000' },
    pools: { type: 'string', default: '2,5,10,20' },
    idle: { type: 'string', default: '10000' },
    out: { type: 'string', default: 'docs' },
    'instruction-rates': { type: 'string', default: '250,500' },
    'instruction-seconds': { type: 'string', default: '20' },
    'instruction-warm-up': { type: 'string', default: '60' },
    'propagation-writes': { type: 'string', default: '200' },
  },
});
const databaseUrl = values['database-url'] ?? process.env.DATABASE_URL;
if (!databaseUrl) throw new Error('usage: npx tsx loadtest/report.ts --database-url URL [--duration 10] [--pairs 3] [--scale 10000,1000000] [--idle 10000] [--out docs]');
const duration = values.duration!;
const pairs = values.pairs!;
const scales = values.scale!.split(',').map(Number);
const poolSizes = values.pools!.split(',').map(Number);

interface CompareReport {
  pairs: Array<{ baseline: LoadSummary; atdirectory: LoadSummary }>;
  median: { lookupsPerSecond: number; connectionsPerSecond: number; p50: number; p99: number; cpuPerLookup: number };
}

const commands: string[] = [];
async function tool<T>(script: string, args: string[]): Promise<T> {
  commands.push(`npx tsx loadtest/${script} ${args.map((arg) => (arg === databaseUrl ? '$DATABASE_URL' : /\s/.test(arg) || arg === '' ? JSON.stringify(arg) : arg)).join(' ')}`);
  process.stderr.write(`… ${commands.at(-1)}\n`);
  const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', `loadtest/${script}`, ...args, '--json'], { maxBuffer: 64 * 1024 * 1024 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as T;
}
const compare = (args: string[], runPairs = pairs) => tool<CompareReport>('compare.ts', ['--database-url', databaseUrl, '--duration', duration, '--pairs', runPairs, ...args]);
const medianOf = (report: CompareReport, pick: (summary: LoadSummary) => number) => {
  const sorted = report.pairs.map((pair) => pick(pair.atdirectory)).sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
};

const modes = {
  persistent: await compare(['--mode', 'persistent', '--connections', '50']),
  connect: await compare(['--mode', 'connect', '--connections', '16']),
  'connect-resume': await compare(['--mode', 'connect-resume', '--connections', '16']),
};
const maxRate = medianOf(modes.persistent, (s) => s.lookupsPerSecond);
const halfLoad = await compare(['--mode', 'persistent', '--connections', '50', '--rate', String(Math.round(maxRate / 2))], '1');
const misses: Array<{ rows: number; summary: LoadSummary }> = [];
for (const rows of scales) {
  await tool('seed.ts', ['--database-url', databaseUrl, '--count', String(rows)]);
  const report = await compare(['--mode', 'persistent', '--connections', '20', '--key-range', `user:${rows}`, '--server-args=--cache-max-entries 1'], '1');
  misses.push({ rows, summary: report.pairs[0]!.atdirectory });
}
// --db-pool-size, measured rather than guessed: misses only, more connections than the largest pool.
const pools: Array<{ size: number; summary: LoadSummary }> = [];
for (const size of poolSizes) {
  const report = await compare(['--mode', 'persistent', '--connections', '50', '--key-range', `user:${scales.at(-1)}`, `--server-args=--cache-max-entries 1 --db-pool-size ${size}`], '1');
  pools.push({ size, summary: report.pairs[0]!.atdirectory });
}
const memory = await tool<{ rssMB: { empty: number; withCache: number; withIdle: number }; bytesPerCachedAnswer: number; bytesPerIdleConnection: number; cachedAnswers: number; idleConnections: number }>('memory.ts', [
  '--database-url', databaseUrl, '--cached', String(Math.min(1_000_000, scales.at(-1)!)), '--idle', values.idle!,
]);
const workers = availableParallelism() > 1 ? await compare(['--mode', 'persistent', '--connections', '50', '--workers', String(availableParallelism())], '1') : undefined;
// Without valgrind the report says so rather than failing: the other figures stand on their own.
const instructions =
  valgrindInstalled()
    ? await tool<InstructionsReport>('instructions.ts', ['--database-url', databaseUrl, '--rates', values['instruction-rates']!, '--seconds', values['instruction-seconds']!, '--warm-up', values['instruction-warm-up']!])
    : undefined;
const propagation = await tool<{ writes: number; failed: number; latencyMs: { p50: number; p90: number; p99: number; max: number } }>('propagation.ts', [
  '--database-url', databaseUrl, '--writes', values['propagation-writes']!,
]);
const admin = await tool<{ get: Record<'atdirectory' | 'bare', { requestsPerSecond: number; latencyMs: { p50: number; p99: number } }>; put: Record<'atdirectory' | 'bare', { requestsPerSecond: number; latencyMs: { p50: number; p99: number } }>; ratio: { get: number; put: number } }>(
  'admin.ts', ['--database-url', databaseUrl, '--duration', duration],
);

const met = (ok: boolean) => (ok ? 'met' : '**not met**');
const ms = (value: number) => value.toFixed(3);
const modeRows = Object.entries(modes).map(([mode, report]) => {
  const a = report.pairs.map((p) => p.atdirectory);
  const b = report.pairs.map((p) => p.baseline);
  const median = (list: LoadSummary[], pick: (s: LoadSummary) => number) => [...list.map(pick)].sort((x, y) => x - y)[Math.floor((list.length - 1) / 2)]!;
  return { mode, baseline: median(b, (s) => s.lookupsPerSecond), atdirectory: median(a, (s) => s.lookupsPerSecond), p50: median(a, (s) => s.latencyMs.p50), p99: median(a, (s) => s.latencyMs.p99), baseP99: median(b, (s) => s.latencyMs.p99), ratio: report.median };
});
const halfP99 = halfLoad.pairs[0]!.atdirectory.latencyMs.p99;
const halfBaseline = halfLoad.pairs[0]!.baseline;
const missP99s = misses.map((m) => m.summary.latencyMs.p99);

await mkdir(join(values.out!, 'benchmarks'), { recursive: true });
await writeFile(
  join(values.out!, 'benchmarks', 'throughput.svg'),
  barChart({ title: 'Lookups per second (median of pairs)', unit: '/s', groups: modeRows.map((row) => ({ label: row.mode, bars: [{ name: 'baseline', value: row.baseline }, { name: 'atdirectory', value: row.atdirectory }] })) }),
);
await writeFile(
  join(values.out!, 'benchmarks', 'latency.svg'),
  barChart({ title: 'atdirectory latency (ms)', unit: ' ms', groups: modeRows.map((row) => ({ label: row.mode, bars: [{ name: 'p50', value: row.p50 }, { name: 'p99', value: row.p99 }] })) }),
);

const cpu = cpus()[0]?.model ?? 'unknown CPU';
const markdown = `# Benchmarks

Generated by \`loadtest/report.ts\` on ${new Date().toISOString().slice(0, 10)}. Machine: ${availableParallelism()} × ${cpu}, ${Math.round(totalmem() / 2 ** 30)} GiB,
Node.js ${process.version}; load generator and server share the machine (loopback), so every
throughput figure is what is left after the load generator's own CPU. The baseline is
\`loadtest/baseline.ts\`, a bare \`node:tls\` server with the same certificate (ECDSA P-256) and TLS
options answering every line with a constant. Ratios are atdirectory/baseline, median of
${pairs} alternating pairs of ${duration} s (\`loadtest/compare.ts\`). Investigations behind these figures (profiles,
memory, the heap-growth setting, the miss query's plan): [performance.md](performance.md).

## Targets

| target | measured | |
|---|---|---|
| cache-hit lookups on open connections ≥ 0.9 × baseline | ${modes.persistent.median.lookupsPerSecond} × (instructions per lookup: ${instructions ? `${instructions.ratio} ×` : 'not counted, valgrind missing'}) | ${met(modes.persistent.median.lookupsPerSecond >= 0.9)} |
| new connection per lookup ≥ 0.9 × baseline | ${modes.connect.median.lookupsPerSecond} × (resumed sessions: ${modes['connect-resume'].median.lookupsPerSecond} ×) | ${met(modes.connect.median.lookupsPerSecond >= 0.9)} |
| cache-hit p99 < 1 ms at half of max load (${Math.round(maxRate / 2)}/s asked, ${halfLoad.pairs[0]!.atdirectory.lookupsPerSecond}/s reached) | ${ms(halfP99)} ms (the bare baseline at the same rate: ${ms(halfBaseline.latencyMs.p99)} ms) | ${met(halfP99 < 1)} |
| misses: one indexed query each, p99 flat (within 2 ×) from ${scales[0]} to ${scales.at(-1)} rows | ${misses.map((m) => `${m.rows} rows: ${ms(m.summary.latencyMs.p99)} ms`).join('; ')} | ${met(missP99s.at(-1)! <= 2 * missP99s[0]!)} |
| RSS ≤ 400 MB with ${memory.cachedAnswers} cached answers | ${memory.rssMB.withCache} MB (${memory.bytesPerCachedAnswer} B per answer) | ${met(memory.rssMB.withCache <= 400)} |
| ≤ 40 KB per idle TLS connection (${memory.idleConnections} connections) | ${Math.round(memory.bytesPerIdleConnection / 1024)} KB | ${met(memory.bytesPerIdleConnection <= 40 * 1024)} |
| admin write → new answer on another process, p99 < 100 ms (${propagation.writes} writes) | p50 ${ms(propagation.latencyMs.p50)} ms, p99 ${ms(propagation.latencyMs.p99)} ms${propagation.failed > 0 ? `, ${propagation.failed} not propagated within 10 s` : ''} | ${met(propagation.failed === 0 && propagation.latencyMs.p99 < 100)} |
${workers ? `| \`--workers ${availableParallelism()}\` scaling | ${workers.median.lookupsPerSecond} × the single-process baseline, CPU per lookup ${workers.median.cpuPerLookup} × | |\n` : ''}
## Lookups by mode

![throughput](benchmarks/throughput.svg) ![latency](benchmarks/latency.svg)

| mode | baseline /s | atdirectory /s | ratio | atdirectory p50 ms | p99 ms | baseline p99 ms | CPU per lookup vs baseline |
|---|---|---|---|---|---|---|---|
${modeRows.map((r) => `| ${r.mode} | ${r.baseline} | ${r.atdirectory} | ${r.ratio.lookupsPerSecond} | ${ms(r.p50)} | ${ms(r.p99)} | ${ms(r.baseP99)} | ${r.ratio.cpuPerLookup} |`).join('\n')}

persistent: 50 connections sending back to back (Java, Python, Go SDKs). connect: 16 clients each
opening a new TLS connection per lookup and sending \`@exit\` (Dart SDK, atServers); connect-resume:
the same with TLS session resumption.

## Instructions per lookup

Lookups/s and CPU seconds move by 10–20 % between runs on a shared machine; user-space instructions
counted by callgrind do not depend on the machine's other work, though atdirectory's depend on how V8
optimised it in the run (\`loadtest/instructions.ts\`: both servers under
valgrind, paced cache hits on ${instructions?.connections ?? '—'} kept-open connections at a low, a high and again the low
rate, main thread only, the slope between them so that work done per second rather than per lookup
cancels out; system calls are the same for both).

${
  instructions
    ? `| server | instructions per lookup | drift | ${instructions.baseline.windows.map((w) => `at ${w.rate}/s: lookups, instructions`).join(' | ')} |
|---|---|---|${instructions.baseline.windows.map(() => '---|').join('')}
${[instructions.baseline, instructions.atdirectory].map((r) => `| ${r.server} | ${r.instructionsPerLookup} | ${r.drift} | ${r.windows.map((w) => `${w.lookups}, ${w.instructions}`).join(' | ')} |`).join('\n')}

Ratio atdirectory/baseline: ${instructions.ratio}.`
    : 'Not counted: valgrind is not installed on this machine.'
}

## Misses (database reads)

Cache of one entry, keys drawn at random from the seeded rows, 20 connections:

| rows | lookups/s | p50 ms | p99 ms |
|---|---|---|---|
${misses.map((m) => `| ${m.rows} | ${m.summary.lookupsPerSecond} | ${ms(m.summary.latencyMs.p50)} | ${ms(m.summary.latencyMs.p99)} |`).join('\n')}

## Database pool size (misses)

\`--db-pool-size\` per process, every lookup a miss (cache of one entry) over ${scales.at(-1)} rows, 50 connections:

| pool | lookups/s | p50 ms | p99 ms | server CPU per lookup µs |
|---|---|---|---|---|
${pools.map((p) => `| ${p.size} | ${p.summary.lookupsPerSecond} | ${ms(p.summary.latencyMs.p50)} | ${ms(p.summary.latencyMs.p99)} | ${p.summary.serverCpuMicrosecondsPerLookup ?? '—'} |`).join('\n')}

## Memory

RSS ${memory.rssMB.empty} MB at start, ${memory.rssMB.withCache} MB with ${memory.cachedAnswers} cached answers (warmed by a million misses over 50 connections, then 2 s idle); a fresh process holding ${memory.idleConnections} idle TLS connections: ${memory.rssMB.withIdle} MB (\`loadtest/memory.ts\`). Where the memory goes and what was done about it: [performance.md](performance.md).

## Admin API

autocannon, ${duration} s each, against atdirectory and a bare Fastify route in the same run:

| request | atdirectory /s | p99 ms | bare Fastify /s | ratio |
|---|---|---|---|---|
| GET /v1/atsigns/{atsign} | ${admin.get.atdirectory.requestsPerSecond} | ${admin.get.atdirectory.latencyMs.p99} | ${admin.get.bare.requestsPerSecond} | ${admin.ratio.get} |
| PUT /v1/atsigns/{atsign} | ${admin.put.atdirectory.requestsPerSecond} | ${admin.put.atdirectory.latencyMs.p99} | ${admin.put.bare.requestsPerSecond} | ${admin.ratio.put} |

Each admin request authenticates its key against the database and each PUT is a transaction with
its history row and notification, which is what the ratio to a constant route measures.

## Commands

\`\`\`sh
${commands.join('\n')}
\`\`\`
`;
await writeFile(join(values.out!, 'benchmarks.md'), markdown);
process.stderr.write(`wrote ${join(values.out!, 'benchmarks.md')}\n`);
