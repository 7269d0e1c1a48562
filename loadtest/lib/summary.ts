import { readFileSync } from 'node:fs';
import type { LoadResult } from './lookup-load.js';

/** What every tool prints: rates, latency percentiles in ms, errors by kind. */
export interface LoadSummary {
  mode: string;
  seconds: number;
  lookups: number;
  /** Lookups a paced run answered during its warm-up, not measured. */
  warmUpLookups: number;
  lookupsPerSecond: number;
  connectionsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  errors: Record<string, number>;
  /** Server CPU time per lookup answered (warm-up included), when the server's pid was known. */
  serverCpuMicrosecondsPerLookup?: number;
}

const round = (value: number, digits = 3) => Math.round(value * 10 ** digits) / 10 ** digits;

export function summarise(result: LoadResult, serverCpuSeconds?: number): LoadSummary {
  const { latency } = result;
  return {
    mode: result.mode,
    seconds: round(result.seconds, 2),
    lookups: result.lookups,
    warmUpLookups: result.warmUpLookups,
    lookupsPerSecond: Math.round(result.lookups / result.seconds),
    connectionsPerSecond: Math.round(result.connections / result.seconds),
    latencyMs: { p50: round(latency.percentile(50)), p90: round(latency.percentile(90)), p99: round(latency.percentile(99)), max: round(latency.max) },
    errors: result.errors,
    ...(serverCpuSeconds === undefined || result.lookups === 0 ? {} : { serverCpuMicrosecondsPerLookup: round((serverCpuSeconds / (result.lookups + result.warmUpLookups)) * 1e6, 2) }),
  };
}

export function formatSummary(summary: LoadSummary): string {
  const { latencyMs: l } = summary;
  return [
    `${summary.mode}: ${summary.lookups} lookups in ${summary.seconds} s = ${summary.lookupsPerSecond}/s, ${summary.connectionsPerSecond} TLS connections/s`,
    `latency ms  p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  max ${l.max}`,
    ...(summary.serverCpuMicrosecondsPerLookup === undefined ? [] : [`server CPU per lookup ${summary.serverCpuMicrosecondsPerLookup} µs`]),
    `errors ${Object.keys(summary.errors).length === 0 ? 'none' : JSON.stringify(summary.errors)}`,
  ].join('\n');
}

/** user+system CPU seconds a process has used so far (Linux /proc). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Resident memory of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

