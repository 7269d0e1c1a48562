import tls from 'node:tls';
import { LatencyHistogram } from './histogram.js';

/**
 * persistent: each connection sends lookups back to back (Java, Python and Go SDKs).
 * connect: a new TLS connection per lookup, prompt, request, answer, `@exit` (Dart SDK, atServers).
 * connect-resume: the same, resuming the previous TLS session (what a client with a session cache does).
 */
export type LoadMode = 'persistent' | 'connect' | 'connect-resume';
export const LOAD_MODES: readonly LoadMode[] = ['persistent', 'connect', 'connect-resume'];

export interface LoadOptions {
  host: string;
  port: number;
  mode: LoadMode;
  /** Concurrent connections (persistent) or concurrent clients (connect modes). */
  connections: number;
  durationMs: number;
  /** Keys that exist (hits, once cached). */
  keys: string[];
  /** Alternatively, keys `${prefix}0` … `${prefix}${count - 1}`, chosen at random (seeded data). */
  keyRange?: { prefix: string; count: number };
  /** Share of lookups for keys that do not exist (drawn from missSet distinct keys). */
  missRatio: number;
  missSet: number;
  /** Total lookups per second to offer (persistent mode), for latency at a given load; 0 = as fast as answered. */
  rate: number;
}

export interface LoadResult {
  mode: LoadMode;
  seconds: number;
  lookups: number;
  /** TLS connections completed (handshake done). */
  connections: number;
  latency: LatencyHistogram;
  errors: Record<string, number>;
}

const PROMPT = 0x40;

function keyChooser(options: LoadOptions): () => Buffer {
  const hits = options.keys.map((key) => Buffer.from(`${key}\n`));
  const misses = Array.from({ length: Math.max(1, options.missSet) }, (_, i) => Buffer.from(`nosuch-${i}\n`));
  const range = options.keyRange;
  let next = 0;
  return () => {
    if (options.missRatio > 0 && Math.random() < options.missRatio) return misses[Math.floor(Math.random() * misses.length)]!;
    if (range) return Buffer.from(`${range.prefix}${Math.floor(Math.random() * range.count)}\n`);
    return hits[next++ % hits.length]!;
  };
}

/** Runs one load process's share of the load until the deadline. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const latency = new LatencyHistogram();
  const errors: Record<string, number> = {};
  const counters = { lookups: 0, connections: 0 };
  const nextKey = keyChooser(options);
  const countError = (error: NodeJS.ErrnoException) => {
    const kind = error.code ?? error.message;
    errors[kind] = (errors[kind] ?? 0) + 1;
  };
  const started = performance.now();
  const deadline = started + options.durationMs;
  const client = options.mode === 'persistent' ? persistentClient : connectingClient;
  await Promise.all(Array.from({ length: options.connections }, () => client(options, deadline, nextKey, latency, counters, countError)));
  return { mode: options.mode, seconds: (performance.now() - started) / 1000, ...counters, latency, errors };
}

type Counters = { lookups: number; connections: number };

function persistentClient(options: LoadOptions, deadline: number, nextKey: () => Buffer, latency: LatencyHistogram, counters: Counters, onError: (error: NodeJS.ErrnoException) => void): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: options.host, port: options.port, rejectUnauthorized: false, noDelay: true } as tls.ConnectionOptions);
    let prompted = false;
    let sentAt = 0;
    // Paced connections send on a schedule (each at rate/connections per second) rather than
    // as soon as the previous answer arrives.
    const interval = options.rate > 0 ? (options.connections / options.rate) * 1000 : 0;
    let due = performance.now() + Math.random() * interval;
    const send = (): void => {
      const now = performance.now();
      if (now >= deadline) return void socket.end('@exit\n');
      if (interval > 0 && now < due) return void setTimeout(send, due - now);
      due = Math.max(due, now) + interval;
      sentAt = performance.now();
      socket.write(nextKey());
    };
    socket.on('secureConnect', () => counters.connections++);
    socket.on('data', (chunk: Buffer) => {
      if (!prompted) {
        prompted = true;
        if (chunk.length === 1) return send();
      }
      // Each answer ends with the prompt and arrives in one read (protocol.md).
      if (chunk[chunk.length - 1] !== PROMPT) return;
      latency.record(performance.now() - sentAt);
      counters.lookups++;
      send();
    });
    socket.on('error', onError);
    socket.on('close', () => resolve());
  });
}

async function connectingClient(options: LoadOptions, deadline: number, nextKey: () => Buffer, latency: LatencyHistogram, counters: Counters, onError: (error: NodeJS.ErrnoException) => void): Promise<void> {
  let session: Buffer | undefined;
  while (performance.now() < deadline) {
    await new Promise<void>((resolve) => {
      const startedAt = performance.now();
      const socket = tls.connect({
        host: options.host,
        port: options.port,
        rejectUnauthorized: false,
        session: options.mode === 'connect-resume' ? session : undefined,
        noDelay: true,
      } as tls.ConnectionOptions);
      let stage: 'prompt' | 'answer' | 'done' = 'prompt';
      socket.on('session', (ticket: Buffer) => (session = ticket));
      socket.on('secureConnect', () => counters.connections++);
      socket.on('data', (chunk: Buffer) => {
        if (stage === 'prompt') {
          stage = 'answer';
          socket.write(nextKey());
          return;
        }
        if (stage === 'answer' && chunk[chunk.length - 1] === PROMPT) {
          stage = 'done';
          latency.record(performance.now() - startedAt);
          counters.lookups++;
          socket.end('@exit\n');
        }
      });
      socket.on('error', onError);
      socket.on('close', () => resolve());
    });
  }
}
