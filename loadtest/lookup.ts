/**
 * Load on the port-64 protocol, spread over several processes. Loopback only.
 *
 *   npx tsx loadtest/lookup.ts --port 6464 [--pid SERVER_PID] <load flags>
 *
 * Prints lookups/s, TLS connections/s, latency p50/p90/p99/max and errors by kind (--json for one
 * JSON object); with --pid, the server's CPU time per lookup, which compares builds fairly even
 * when client and server share the cores.
 */
import { parseArgs } from 'node:util';
import { runLoadAcrossProcesses } from './lib/load-processes.js';
import { LOAD_FLAGS, LOAD_USAGE, loadOptionsFrom } from './lib/lookup-options.js';
import { cpuSeconds, formatSummary, summarise } from './lib/summary.js';

const { values } = parseArgs({ options: { ...LOAD_FLAGS, port: { type: 'string' }, pid: { type: 'string' } } });
if (!values.port) throw new Error(`usage: npx tsx loadtest/lookup.ts --port PORT [--pid PID] ${LOAD_USAGE}`);
const options = loadOptionsFrom(values, Number(values.port));
const pid = values.pid === undefined ? undefined : Number(values.pid);

const cpuBefore = pid === undefined ? 0 : cpuSeconds(pid);
const result = await runLoadAcrossProcesses(options, Number(values.processes));
const summary = summarise(result, pid === undefined ? undefined : cpuSeconds(pid) - cpuBefore);
process.stdout.write(values.json ? `${JSON.stringify(summary)}\n` : `${formatSummary(summary)}\n`);
