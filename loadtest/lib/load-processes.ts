import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { LatencyHistogram } from './histogram.js';
import { runLoad, type LoadOptions, type LoadResult } from './lookup-load.js';

const CHILD = fileURLToPath(new URL('./load-child.ts', import.meta.url));

type SerializedResult = Omit<LoadResult, 'latency'> & { latency: { counts: number[]; max: number } };

/**
 * Spreads the load over `processes` Node processes (one core each), so the generator is not the
 * bottleneck of a multi-core server; the results are merged as if one client had run.
 */
export async function runLoadAcrossProcesses(options: LoadOptions, processes: number): Promise<LoadResult> {
  if (processes <= 1) return runLoad(options);
  const shares = Array.from({ length: processes }, (_, i) => Math.floor(options.connections / processes) + (i < options.connections % processes ? 1 : 0)).filter((n) => n > 0);
  const results = await Promise.all(
    shares.map(
      (connections) =>
        new Promise<SerializedResult>((resolve, reject) => {
          const child = fork(CHILD, [], { execArgv: ['--import', 'tsx'], stdio: 'inherit' });
          child.once('message', (result: SerializedResult) => {
            resolve(result);
            child.kill();
          });
          child.once('exit', (code) => code !== 0 && code !== null && reject(new Error(`load process exited with ${code}`)));
          child.send({ ...options, connections, rate: (options.rate * connections) / options.connections });
        }),
    ),
  );
  const latency = new LatencyHistogram();
  const merged: LoadResult = { mode: options.mode, seconds: 0, lookups: 0, connections: 0, warmUpLookups: 0, latency, errors: {} };
  for (const result of results) {
    merged.seconds = Math.max(merged.seconds, result.seconds);
    merged.lookups += result.lookups;
    merged.connections += result.connections;
    merged.warmUpLookups += result.warmUpLookups;
    latency.merge(LatencyHistogram.fromJSON(result.latency));
    for (const [kind, count] of Object.entries(result.errors)) merged.errors[kind] = (merged.errors[kind] ?? 0) + count;
  }
  return merged;
}
