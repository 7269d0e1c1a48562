import { isUtf8 } from 'node:buffer';
import type { TLSSocket } from 'node:tls';
import { NOT_FOUND, PROMPT } from '../directory/answer.js';
import { EXIT_COMMAND, lookupKey } from '../directory/atsign.js';
import type { Resolution } from '../directory/cache.js';
import { lookupDuration, lookupsByResult, rejectedBy, type RejectionReason } from './metrics.js';
import { MissWindow } from './miss-window.js';

export interface LookupConnectionOptions {
  /** Longest request line in UTF-16 code units (the reference's unit); longer lines close the connection. */
  maxLineLength: number;
  missDelayFrom: number;
  missDelayMs: number;
  missCloseAt: number;
  missWindowMs: number;
  /** From a request's first byte to its newline; a client that trickles bytes is dropped. */
  requestTimeoutMs: number;
  /** How long a client may leave its answers unread (our send buffer full) before it is dropped. */
  writeTimeoutMs: number;
}

/** What a connection needs from the directory: an answer now, or a promise of one. */
export interface AnswerSource {
  resolve(key: string): Resolution | Promise<Resolution>;
}

const FAILED: Resolution = { answer: NOT_FOUND, result: 'error' };

const LF = 0x0a;
const CR = 0x0d;
const REPLACEMENT_CHARACTER = '\uFFFD';
/** How long a rejected connection may take to receive its last answers before it is cut. */
const LINGER_MS = 2000;

/**
 * One client connection speaking the root protocol (shared/protocol.md): prompt, framing, keys,
 * answers in request order, `@exit`, and enumeration throttling. It knows nothing of caches or the
 * database; it asks an AnswerSource.
 */
export class LookupConnection {
  /** Bytes received and not yet consumed; `offset` marks where the next line starts. */
  private input: Buffer | undefined;
  private offset = 0;
  /** An answer is pending (database read or throttling delay); later requests wait in `input`. */
  private busy = false;
  private closed = false;
  private draining = false;
  private delayTimer: NodeJS.Timeout | undefined;
  /** Armed while a request line is incomplete; only split lines pay for it. */
  private requestTimer: NodeJS.Timeout | undefined;
  /** Armed while the client is not reading its answers. */
  private writeTimer: NodeJS.Timeout | undefined;
  private lingerTimer: NodeJS.Timeout | undefined;
  /** Lookups answered or refused on this connection, for the debug line at close. */
  lookups = 0;
  private readonly misses: MissWindow;
  /** The bytes a line may take: 3 UTF-8 bytes per UTF-16 unit at most, plus `\r`. */
  private readonly maxLineBytes: number;

  constructor(
    readonly socket: TLSSocket,
    private readonly source: AnswerSource,
    private readonly options: LookupConnectionOptions,
  ) {
    this.misses = new MissWindow(options.missWindowMs, Math.max(1, options.missDelayFrom, options.missCloseAt));
    this.maxLineBytes = options.maxLineLength * 3 + 1;
  }

  /** Sends the prompt and starts reading. Call once the TLS handshake has completed. */
  start(): void {
    // The prompt is a write of its own: a Go client requires its first read to be exactly "@".
    this.socket.write(PROMPT);
    this.socket.on('data', (chunk: Buffer) => this.receive(chunk));
    this.socket.on('close', () => this.onClose());
  }

  /**
   * Shutdown: answer the requests already received, then close. An idle connection closes at once.
   */
  drain(): void {
    this.draining = true;
    if (!this.busy) this.closeIfDrained();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private receive(chunk: Buffer): void {
    if (this.closed) return;
    if (this.input === undefined || this.offset >= this.input.length) {
      this.input = chunk;
    } else {
      // Only a request split across reads, or requests arriving while an answer is pending, pay
      // for a copy.
      this.input = Buffer.concat([this.input.subarray(this.offset), chunk]);
    }
    this.offset = 0;
    if (!this.busy) {
      this.processLines();
      return;
    }
    // Requests arriving while an answer is pending wait in `input`; reading stops until it is sent,
    // which bounds what a pipelining client can make us hold. Only then: pausing and resuming the
    // socket for every database read made each in-flight lookup's objects outlive two young-generation
    // collections, tripling what V8 promoted to the old generation (docs/benchmarks.md, Memory).
    this.socket.pause();
  }

  private processLines(): void {
    while (!this.busy && !this.closed) {
      const input = this.input;
      if (input === undefined) break;
      const newline = input.indexOf(LF, this.offset);
      if (newline === -1) {
        if (input.length - this.offset > this.maxLineBytes) this.reject('line_too_long');
        break;
      }
      const start = this.offset;
      const end = newline > start && input[newline - 1] === CR ? newline - 1 : newline;
      this.offset = newline + 1;
      if (this.requestTimer !== undefined) this.disarmRequestTimer();
      if (end - start > this.maxLineBytes) return this.reject('line_too_long');
      const line = input.toString('utf8', start, end);
      if (line.length > this.options.maxLineLength) return this.reject('line_too_long');
      // Decoding replaces invalid bytes with U+FFFD; only then is the exact check worth its cost.
      if (line.includes(REPLACEMENT_CHARACTER) && !isUtf8(input.subarray(start, end))) return this.reject('invalid_utf8');
      this.handleLine(line);
    }
    if (this.input !== undefined && this.offset >= this.input.length) {
      this.input = undefined;
      this.offset = 0;
    }
    if (this.input !== undefined && !this.busy && !this.closed && this.requestTimer === undefined) {
      this.requestTimer = setTimeout(() => this.reject('request_timeout'), this.options.requestTimeoutMs);
    }
    if (!this.busy) this.closeIfDrained();
  }

  private disarmRequestTimer(): void {
    clearTimeout(this.requestTimer);
    this.requestTimer = undefined;
  }

  private handleLine(line: string): void {
    const key = lookupKey(line);
    if (key === EXIT_COMMAND) {
      this.closed = true;
      this.socket.end();
      return;
    }
    // An empty line is the C SDK's liveness probe: answered at once and never counted as a miss.
    if (key === '') {
      this.write(NOT_FOUND);
      return;
    }
    const started = performance.now();
    const resolution = this.source.resolve(key);
    if (!(resolution instanceof Promise)) {
      this.send(resolution, started);
      return;
    }
    this.wait();
    resolution.then(
      (resolved) => this.resume(resolved, started),
      () => this.resume(FAILED, started),
    );
  }

  /**
   * Sends an answer, unless enumeration throttling (protocol.md) says otherwise: within the window,
   * the Nth miss is delayed and the Mth closes the connection unanswered.
   */
  private send(resolution: Resolution, started: number): void {
    if (resolution.answer === NOT_FOUND) {
      const { missDelayFrom, missCloseAt } = this.options;
      const misses = this.misses.record(Date.now());
      if (missCloseAt > 0 && misses >= missCloseAt) {
        this.lookups++;
        lookupsByResult.throttled.inc();
        rejectedBy.throttled.inc();
        this.closed = true;
        this.socket.end();
        return;
      }
      if (missDelayFrom > 0 && misses >= missDelayFrom) {
        this.record(resolution, started);
        this.wait();
        this.delayTimer = setTimeout(() => {
          this.delayTimer = undefined;
          if (this.closed) return;
          this.busy = false;
          this.write(NOT_FOUND);
          if (!this.busy) this.continue();
        }, this.options.missDelayMs);
        return;
      }
    }
    this.record(resolution, started);
    this.write(resolution.answer);
  }

  /** Counts a lookup by result. The delay of a throttled answer is not part of its duration. */
  private record(resolution: Resolution, started: number): void {
    this.lookups++;
    lookupsByResult[resolution.result].inc();
    lookupDuration.observe((performance.now() - started) / 1000);
  }

  /**
   * One write per answer, so it travels in one TLS record. A client that sends requests without
   * reading the answers is stopped being read until it catches up, which bounds our buffers.
   */
  private write(answer: Buffer): void {
    if (this.socket.write(answer) || this.busy) return;
    this.wait();
    this.socket.pause();
    this.writeTimer = setTimeout(() => this.reject('slow_reader'), this.options.writeTimeoutMs);
    this.socket.once('drain', () => {
      clearTimeout(this.writeTimer);
      this.continue();
    });
  }

  /** Holds later requests until the pending answer is sent, to keep order (see `receive`). */
  private wait(): void {
    this.busy = true;
    // A request waiting on us is not the client's delay.
    if (this.requestTimer !== undefined) this.disarmRequestTimer();
  }

  private resume(resolution: Resolution, started: number): void {
    if (this.closed) return;
    this.busy = false;
    this.send(resolution, started);
    if (!this.busy) this.continue();
  }

  private continue(): void {
    this.busy = false;
    if (this.closed) return;
    if (this.socket.isPaused()) this.socket.resume();
    this.processLines();
  }

  private closeIfDrained(): void {
    if (this.draining && !this.closed) {
      this.closed = true;
      this.socket.end();
    }
  }

  /**
   * A broken rule or limit (line, UTF-8, deadline, unread answers): close without another byte.
   * Answers already written to earlier requests are still delivered: the socket is ended, not
   * destroyed, and what the client sends meanwhile is read and dropped (closing with unread input
   * would reset the connection and lose those answers); after LINGER_MS it is cut regardless. A
   * client that does not read its answers is cut at once: nothing would be delivered anyway.
   */
  private reject(reason: RejectionReason): void {
    rejectedBy[reason].inc();
    this.closed = true;
    this.input = undefined;
    if (reason === 'slow_reader') {
      this.socket.destroy();
      return;
    }
    this.socket.resume();
    this.socket.end();
    this.lingerTimer = setTimeout(() => this.socket.destroy(), LINGER_MS);
  }

  private onClose(): void {
    this.closed = true;
    this.input = undefined;
    clearTimeout(this.delayTimer);
    clearTimeout(this.requestTimer);
    clearTimeout(this.writeTimer);
    clearTimeout(this.lingerTimer);
  }
}
