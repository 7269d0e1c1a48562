import v8 from 'node:v8';

/**
 * How far V8 lets the old generation grow past what its last full collection kept: 10 %, where V8
 * otherwise picks up to 300 % on a machine with a few GB (it scales with the heap limit). A cache
 * process's heap is large, long-lived and grows only by misses, and the pages a grown heap takes
 * stay with the process: warming 1M answers by misses left 500 MB of heap around 270 MB of live
 * objects. Measured in docs/benchmarks.md (Memory), CPU included. A `--heap-growing-percent` given
 * to node by the operator wins.
 */
const HEAP_GROWING_PERCENT = 10;

export function limitHeapGrowth(): void {
  if (process.execArgv.some((arg) => /^--heap[-_]growing[-_]percent/.test(arg))) return;
  v8.setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`);
}
