import { execFile } from 'node:child_process';
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

const tool = (script: string, args: string[]) => promisify(execFile)(process.execPath, ['--import', 'tsx', `loadtest/${script}`, ...args], { timeout: 120_000 });

it.each(['persistent', 'connect', 'connect-resume'])('lookup.ts drives the protocol in %s mode over two processes', async (mode) => {
  const { stdout } = await tool('lookup.ts', ['--port', String(lookup.port), '--mode', mode, '--connections', '4', '--duration', '0.5', '--processes', '2', '--keys', 'alice', '--miss-ratio', '0.2', '--json']);
  const summary = JSON.parse(stdout) as { lookups: number; errors: Record<string, number>; latencyMs: { p99: number } };
  expect(summary.lookups).toBeGreaterThan(0);
  expect(summary.errors).toEqual({});
  expect(summary.latencyMs.p99).toBeGreaterThan(0);
});

it('lookup.ts refuses anything but loopback', async () => {
  await expect(tool('lookup.ts', ['--port', '64', '--host', 'root.atsign.org'])).rejects.toThrow('load goes to loopback only, not root.atsign.org');
});

it('report.ts runs every tool (compare, seed, memory, admin) and writes the report with its charts', async () => {
  await tool('report.ts', ['--database-url', database.url, '--duration', '0.5', '--pairs', '1', '--scale', '100,1000', '--pools', '2', '--idle', '20', '--out', out]);
  const report = await readFile(join(out, 'benchmarks.md'), 'utf8');
  expect(report).toContain('| cache-hit lookups on open connections ≥ 0.9 × baseline |');
  expect(report).toMatch(/\| 1000 \| \d+ \| [\d.]+ \| [\d.]+ \|/);
  expect(report).toMatch(/## Database pool size \(misses\)[^]*\| 2 \| \d+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \|/);
  expect(report).toContain('npx tsx loadtest/seed.ts --database-url $DATABASE_URL --count 1000');
  expect(await readFile(join(out, 'benchmarks', 'throughput.svg'), 'utf8')).toMatch(/^<svg[^]*<\/svg>\n$/);
}, 180_000);
