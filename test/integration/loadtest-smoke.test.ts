import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestDatabase, insertRecord, type TestDatabase } from '../support/database.js';
import { startTestLookup, type TestLookup } from '../support/lookup-harness.js';

// The benchmark tools at a tiny load, so they never rot: the real runs are documented commands
// (docs/benchmarks.md), not part of the test suite.

let database: TestDatabase;
let lookup: TestLookup;
let out: string;

beforeAll(async () => {
  database = await createTestDatabase();
  await insertRecord(database.pool, 'alice', 'alice.example.com', 6464);
  lookup = await startTestLookup(database.url, ['--miss-delay-from', '0', '--miss-close-at', '0']);
  out = await mkdtemp(join(tmpdir(), 'atdirectory-report-'));
});

afterAll(async () => {
  await lookup?.stop();
  await database?.drop();
  await rm(out, { recursive: true, force: true });
});

// valgrind is on every machine this project's CI runs on (.ci/run installs it when missing); without
// it the report says the instruction count was not taken.
const hasValgrind = spawnSync('valgrind', ['--version']).status === 0;

const tool = (script: string, args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', `loadtest/${script}`, ...args], { timeout: 120_000 });

it.each(['persistent', 'connect', 'connect-resume'])('lookup.ts drives the protocol in %s mode over two processes', async (mode) => {
  const { stdout } = await tool('lookup.ts', ['--port', String(lookup.port), '--mode', mode, '--connections', '4', '--duration', '0.5', '--processes', '2', '--keys', 'alice', '--miss-ratio', '0.2', '--json']);
  const summary = JSON.parse(stdout) as { lookups: number; errors: Record<string, number>; latencyMs: { p99: number } };
  expect(summary.lookups).toBeGreaterThan(0);
  expect(summary.errors).toEqual({});
  expect(summary.latencyMs.p99).toBeGreaterThan(0);
});

it('lookup.ts offers the asked rate, evenly spaced, and measures after the warm-up', async () => {
  // 2000/s on two connections per process: one lookup every 1 ms on each, which timers firing on
  // Node's 1 ms tick (and waiting for the answer first) could not keep up with.
  const { stdout } = await tool('lookup.ts', ['--port', String(lookup.port), '--mode', 'persistent', '--connections', '4', '--duration', '2', '--processes', '2', '--keys', 'alice', '--rate', '4000', '--json']);
  const summary = JSON.parse(stdout) as { lookups: number; seconds: number; lookupsPerSecond: number; errors: Record<string, number> };
  expect(summary.errors).toEqual({});
  // The first fifth of a run this short is warm-up, sent but not measured.
  expect(summary.seconds).toBeGreaterThan(1.2);
  expect(summary.seconds).toBeLessThanOrEqual(1.6);
  expect(summary.lookupsPerSecond).toBeGreaterThan(3600);
  expect(summary.lookupsPerSecond).toBeLessThan(4400);
});

it('lookup.ts refuses anything but loopback', async () => {
  await expect(tool('lookup.ts', ['--port', '64', '--host', 'root.atsign.org'])).rejects.toThrow('load goes to loopback only, not root.atsign.org');
});

it('report.ts runs every tool (compare, seed, memory, instructions, propagation, admin) and writes the report with its charts', async () => {
  await tool('report.ts', ['--database-url', database.url, '--duration', '0.5', '--pairs', '1', '--scale', '100,1000', '--pools', '2', '--idle', '20', '--instruction-rates', '20,40', '--instruction-seconds', '1.5', '--instruction-warm-up', '1', '--propagation-writes', '5', '--out', out]);
  const report = await readFile(join(out, 'benchmarks.md'), 'utf8');
  expect(report).toContain('| cache-hit lookups on open connections ≥ 0.9 × baseline |');
  expect(report).toMatch(/\| 1000 \| \d+ \| [\d.]+ \| [\d.]+ \|/);
  expect(report).toMatch(/## Database pool size \(misses\)[^]*\| 2 \| \d+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|/);
  expect(report).toContain('npx tsx loadtest/seed.ts --database-url $DATABASE_URL --count 1000');
  expect(report).toMatch(/\| admin write → new answer on another process, p99 < 100 ms \(5 writes\) \| p50 [\d.]+ ms, p99 [\d.]+ ms \|/);
  expect(report).toMatch(hasValgrind ? /\| atdirectory \| -?\d+ \| -?[\d.]+ \| \d+, \d+ \| \d+, \d+ \| \d+, \d+ \|/ : /Not counted: valgrind is not installed/);
  expect(await readFile(join(out, 'benchmarks', 'throughput.svg'), 'utf8')).toMatch(/^<svg[^]*<\/svg>\n$/);
}, 180_000);
