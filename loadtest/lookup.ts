/**
 * Lookup load on kept-open connections (the Java, Python and Go SDK pattern): C connections, each
 * sending a lookup as soon as the previous answer arrives, for a fixed time. Loopback only.
 *
 *   npx tsx loadtest/lookup.ts --port 6464 [--connections 50] [--duration 10] [--keys alice,bob] [--pid SERVER_PID] [--json]
 *
 * Reports lookups/s, latency p50/p90/p99/max, errors, and with --pid the server's CPU time per
 * lookup (user+system from /proc), which compares builds fairly even when client and server share
 * the cores.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string' },
    connections: { type: 'string', default: '50' },
    duration: { type: 'string', default: '10' },
    keys: { type: 'string', default: 'alice' },
    pid: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
if (!values.port) throw new Error('--port is required');
if (!['127.0.0.1', 'localhost', '::1'].includes(values.host!)) throw new Error('load goes to loopback only');

const port = Number(values.port);
const connections = Number(values.connections);
const durationMs = Number(values.duration) * 1000;
const requests = values.keys!.split(',').map((key) => Buffer.from(`${key}\n`));
const latencies = new Float64Array(50_000_000 / 8);
let recorded = 0;
let completed = 0;
const errors: Record<string, number> = {};

function cpuTicks(pid: string): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function runConnection(index: number, deadline: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: values.host, port, rejectUnauthorized: false });
    socket.setNoDelay(true);
    let prompted = false;
    let sentAt = 0;
    let next = index;
    const send = () => {
      if (performance.now() >= deadline) return socket.end('@exit\n');
      sentAt = performance.now();
      socket.write(requests[next++ % requests.length]!);
    };
    socket.on('data', (chunk: Buffer) => {
      if (!prompted) {
        prompted = true;
        if (chunk.length === 1) return send();
      }
      // Each answer ends with the prompt "@"; one answer per read is the protocol's promise.
      if (chunk[chunk.length - 1] !== 0x40) return;
      if (recorded < latencies.length) latencies[recorded++] = performance.now() - sentAt;
      completed++;
      send();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => {
      errors[error.code ?? error.message] = (errors[error.code ?? error.message] ?? 0) + 1;
    });
    socket.on('close', () => resolve());
  });
}

const ticksBefore = values.pid ? cpuTicks(values.pid) : 0;
const started = performance.now();
const deadline = started + durationMs;
await Promise.all(Array.from({ length: connections }, (_, i) => runConnection(i, deadline)));
const elapsed = (performance.now() - started) / 1000;
const serverCpuSeconds = values.pid ? (cpuTicks(values.pid) - ticksBefore) / 100 : undefined;

const sorted = latencies.subarray(0, recorded).sort();
const percentile = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const report = {
  mode: 'persistent',
  connections,
  seconds: Math.round(elapsed * 100) / 100,
  lookups: completed,
  lookupsPerSecond: Math.round(completed / elapsed),
  latencyMs: { p50: percentile(50), p90: percentile(90), p99: percentile(99), max: sorted[sorted.length - 1] ?? NaN },
  errors,
  ...(serverCpuSeconds === undefined ? {} : { serverCpuMicrosecondsPerLookup: Math.round((serverCpuSeconds / completed) * 1e6 * 100) / 100 }),
};
if (values.json) {
  process.stdout.write(JSON.stringify(report) + '\n');
} else {
  const ms = (value: number) => value.toFixed(3);
  process.stdout.write(
    `${report.lookups} lookups in ${report.seconds} s on ${connections} connections: ${report.lookupsPerSecond}/s\n` +
      `latency ms  p50 ${ms(report.latencyMs.p50)}  p90 ${ms(report.latencyMs.p90)}  p99 ${ms(report.latencyMs.p99)}  max ${ms(report.latencyMs.max)}\n` +
      (serverCpuSeconds === undefined ? '' : `server CPU per lookup: ${report.serverCpuMicrosecondsPerLookup} µs\n`) +
      `errors: ${JSON.stringify(errors)}\n`,
  );
}
