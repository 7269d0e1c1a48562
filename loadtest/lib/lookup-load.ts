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
  /**
   * Total lookups per second to offer (persistent mode), for latency at a given load; 0 = as fast as
   * answered. Paced lookups are evenly spaced and timed from when they were due (see pacedLoad).
   */
  rate: number;
}

export interface LoadResult {
  mode: LoadMode;
  seconds: number;
  lookups: number;
  /** TLS connections completed (handshake done). */
  connections: number;
  /** Lookups answered during a paced run's warm-up: not in `lookups`, but the server's CPU went to them. */
  warmUpLookups: number;
  latency: LatencyHistogram;
  errors: Record<string, number>;
}

const PROMPT = 0x40;
const WARM_UP_MS = 1000;

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
  const counters = { lookups: 0, connections: 0, warmUpLookups: 0 };
  const nextKey = keyChooser(options);
  const countError = (error: NodeJS.ErrnoException) => {
    const kind = error.code ?? error.message;
    errors[kind] = (errors[kind] ?? 0) + 1;
  };
  const started = performance.now();
  const deadline = started + options.durationMs;
  if (options.mode === 'persistent' && options.rate > 0) {
    const seconds = await pacedLoad(options, deadline, nextKey, latency, counters, countError);
    return { mode: options.mode, seconds, ...counters, latency, errors };
  }
  const client = options.mode === 'persistent' ? persistentClient : connectingClient;
  await Promise.all(Array.from({ length: options.connections }, () => client(options, deadline, nextKey, latency, counters, countError)));
  return { mode: options.mode, seconds: (performance.now() - started) / 1000, ...counters, latency, errors };
}

type Counters = { lookups: number; connections: number; warmUpLookups: number };

function persistentClient(options: LoadOptions, deadline: number, nextKey: () => Buffer, latency: LatencyHistogram, counters: Counters, onError: (error: NodeJS.ErrnoException) => void): Promise<void> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: options.host, port: options.port, rejectUnauthorized: false, noDelay: true } as tls.ConnectionOptions);
    let prompted = false;
    let sentAt = 0;
    const send = (): void => {
      sentAt = performance.now();
      if (sentAt >= deadline) return void socket.end('@exit\n');
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

/**
 * Persistent connections offered `rate` lookups/s between them, evenly spaced: lookup i is due at
 * start + i / rate and goes out on whichever connection is idle. Per-connection timers would fire
 * together on Node's 1 ms timer tick and send bursts, whose queueing would be measured as the
 * server's latency; so the schedule is polled with setImmediate, at the cost of this process's
 * core. Latency runs from when a lookup was due, not from when it went out: a lookup that waited
 * for a connection to come free is charged for the wait (no coordinated omission).
 *
 * The schedule starts once every connection is ready (lookups due during the others' handshakes
 * would measure the handshakes), and lookups due in its first second (a fifth of a shorter run)
 * are sent but not counted: both processes' code is still being compiled then, and the latency
 * target is about a steady load. Resolves with the seconds measured.
 */
function pacedLoad(options: LoadOptions, deadline: number, nextKey: () => Buffer, latency: LatencyHistogram, counters: Counters, onError: (error: NodeJS.ErrnoException) => void): Promise<number> {
  const interval = 1000 / options.rate;
  const idle: tls.TLSSocket[] = [];
  const dueAt = new Map<tls.TLSSocket, number>();
  /** Lookups that fell due while every connection was waiting for an answer. */
  const overdue: number[] = [];
  let next = Number.POSITIVE_INFINITY;
  let measureFrom = Number.POSITIVE_INFINITY;
  /** Connections prompted or closed: the schedule waits for all of them. */
  let settled = 0;
  let open = 0;

  const send = (socket: tls.TLSSocket, due: number): void => {
    dueAt.set(socket, due);
    socket.write(nextKey());
  };
  const free = (socket: tls.TLSSocket): void => {
    if (performance.now() >= deadline) return void socket.end('@exit\n');
    const due = overdue.shift();
    if (due === undefined) idle.push(socket);
    else send(socket, due);
  };
  const tick = (): void => {
    const now = performance.now();
    if (now >= deadline) {
      for (const socket of idle.splice(0)) socket.end('@exit\n');
      return;
    }
    for (; next <= now; next += interval) {
      const socket = idle.pop();
      if (socket === undefined) overdue.push(next);
      else send(socket, next);
    }
    if (next - now > 2) setTimeout(tick, next - now - 1);
    else setImmediate(tick);
  };
  const settle = (): void => {
    if (++settled < options.connections) return;
    next = performance.now();
    measureFrom = next + Math.min(WARM_UP_MS, (deadline - next) / 5);
    setImmediate(tick);
  };

  return new Promise((resolve) => {
    for (let i = 0; i < options.connections; i++) {
      const socket = tls.connect({ host: options.host, port: options.port, rejectUnauthorized: false, noDelay: true } as tls.ConnectionOptions);
      open++;
      let prompted = false;
      socket.on('secureConnect', () => counters.connections++);
      socket.on('data', (chunk: Buffer) => {
        if (!prompted) {
          prompted = true;
          if (chunk.length === 1) {
            free(socket);
            return settle();
          }
        }
        if (chunk[chunk.length - 1] !== PROMPT) return;
        const due = dueAt.get(socket)!;
        if (due >= measureFrom) {
          latency.record(performance.now() - due);
          counters.lookups++;
        } else {
          counters.warmUpLookups++;
        }
        free(socket);
      });
      socket.on('error', onError);
      socket.on('close', () => {
        const position = idle.indexOf(socket);
        if (position >= 0) idle.splice(position, 1);
        if (!prompted) settle();
        if (--open > 0) return;
        const end = Math.min(performance.now(), deadline);
        resolve(end > measureFrom ? (end - measureFrom) / 1000 : 0);
      });
    }
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
