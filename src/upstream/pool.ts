import type { ConnectionOptions } from 'node:tls';
import { UpstreamConnection, type UpstreamRequest } from './connection.js';
import { UpstreamFailure, type UpstreamReply } from './reply.js';

export interface UpstreamPoolOptions {
  host: string;
  port: number;
  tls: ConnectionOptions;
  /** Connections kept open. */
  size: number;
  /** Longest wait for a reply, and for a new connection's prompt. */
  timeoutMs: number;
  /** A connection is ready after the pool could not reach the upstream (and at the first one). */
  onReachable(): void;
  /** A connection could not be made, or was cut before it answered anything, `elapsedMs` after dialling. */
  onConnectFailure(error: Error, elapsedMs: number): void;
}

/** Reconnection backoff after a failure: 1 s, doubling, at most 30 s. */
export const BACKOFF_FIRST_MS = 1000;
export const BACKOFF_MAX_MS = 30_000;

export function nextBackoff(previousMs: number): number {
  return previousMs === 0 ? BACKOFF_FIRST_MS : Math.min(previousMs * 2, BACKOFF_MAX_MS);
}

/** A connection cut sooner than this after its prompt, before any reply, counts as a failure to connect. */
const SHORTEST_HEALTHY_MS = 1000;

class PooledRequest implements UpstreamRequest {
  settled = false;
  connection: UpstreamConnection | undefined;
  timer: NodeJS.Timeout | undefined;

  constructor(
    readonly key: string,
    private readonly resolve: (reply: UpstreamReply) => void,
    private readonly reject: (failure: UpstreamFailure) => void,
  ) {}

  answered(reply: UpstreamReply): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.resolve(reply);
  }

  fail(failure: UpstreamFailure): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.reject(failure);
  }
}

/**
 * The kept-open connections to one upstream. A request goes to the ready connection with the
 * fewest replies outstanding, or waits for one being made; when none is ready or being made (the
 * upstream is unreachable and the pool is backing off) it fails at once, so a dead upstream costs
 * a lookup nothing. Retired and lost connections are replaced in the background.
 */
export class UpstreamPool {
  private readonly connections = new Set<UpstreamConnection>();
  /** Requests waiting for a connection's prompt. */
  private readonly queue: PooledRequest[] = [];
  private backoffMs = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reachable = false;
  private stopped = true;
  private lastError: Error | undefined;

  constructor(private readonly options: UpstreamPoolOptions) {}

  start(): void {
    this.stopped = false;
    this.fill();
  }

  /** Connections with the prompt received. */
  get readyConnections(): number {
    let ready = 0;
    for (const connection of this.connections) if (connection.isReady) ready++;
    return ready;
  }

  /** The reply to `key`; rejects with an UpstreamFailure. */
  ask(key: string): Promise<UpstreamReply> {
    return new Promise((resolve, reject) => {
      const request = new PooledRequest(key, resolve, reject);
      request.timer = setTimeout(() => this.expire(request), this.options.timeoutMs);
      this.dispatch(request);
    });
  }

  /** Says goodbye on every connection and fails whatever waits. */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    for (const connection of [...this.connections]) connection.retire();
    this.failQueue('the upstream is not in use');
  }

  private dispatch(request: PooledRequest): void {
    if (this.stopped) return request.fail(new UpstreamFailure('error', 'the upstream is not in use'));
    let best: UpstreamConnection | undefined;
    for (const connection of this.connections) {
      if (connection.isReady && (best === undefined || connection.load < best.load)) best = connection;
    }
    if (best !== undefined) {
      request.connection = best;
      best.send(request);
    } else if (this.connections.size > 0) {
      this.queue.push(request);
    } else {
      request.fail(new UpstreamFailure('error', `unreachable: ${this.lastError?.message ?? 'no connection'}`));
    }
  }

  /**
   * A reply that did not come in time. The connection it was sent on is stuck (or the root is
   * overloaded): it is retired, and the requests behind this one are sent elsewhere.
   */
  private expire(request: PooledRequest): void {
    request.fail(new UpstreamFailure('timeout', `no answer within ${this.options.timeoutMs} ms`));
    if (request.connection !== undefined) {
      request.connection.retire();
    } else {
      const at = this.queue.indexOf(request);
      if (at !== -1) this.queue.splice(at, 1);
    }
  }

  private fill(): void {
    if (this.stopped || this.reconnectTimer !== undefined) return;
    while (this.connections.size < this.options.size) {
      const connection = new UpstreamConnection(
        { host: this.options.host, port: this.options.port, tls: this.options.tls, connectTimeoutMs: this.options.timeoutMs },
        { ready: (ready) => this.onReady(ready), closed: (closed, unanswered, error) => this.onClosed(closed, unanswered, error) },
      );
      this.connections.add(connection);
    }
  }

  private onReady(connection: UpstreamConnection): void {
    if (this.stopped) return connection.retire();
    this.backoffMs = 0;
    for (const request of this.queue.splice(0)) {
      if (request.settled) continue;
      request.connection = connection;
      connection.send(request);
    }
    if (!this.reachable) {
      this.reachable = true;
      this.options.onReachable();
    }
  }

  private onClosed(connection: UpstreamConnection, unanswered: UpstreamRequest[], error: Error | undefined): void {
    this.connections.delete(connection);
    // A connection cut at once after its prompt (a root that accepts and hangs up) is a failure to
    // connect too: replacing it at once would spin.
    if (error !== undefined && !connection.workedFor(SHORTEST_HEALTHY_MS)) {
      this.lastError = error;
      this.reachable = false;
      this.scheduleReconnect();
      const failing = unanswered.length + (this.connections.size === 0 ? this.queue.length : 0);
      // Requests that fail with it report the failure themselves; it is reported once either way.
      if (failing === 0 && !this.stopped) this.options.onConnectFailure(error, connection.age);
      if (this.connections.size === 0) this.failQueue(`unreachable: ${error.message}`);
    } else {
      this.fill();
    }
    for (const request of unanswered as PooledRequest[]) {
      if (request.settled) continue;
      if (error !== undefined) {
        request.fail(new UpstreamFailure('error', `connection lost: ${error.message}`));
      } else {
        // Retired on purpose (a null, a bad answer or a stuck reply ahead of it): ask elsewhere.
        request.connection = undefined;
        this.dispatch(request);
      }
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.reconnectTimer !== undefined) return;
    this.backoffMs = nextBackoff(this.backoffMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.fill();
    }, this.backoffMs);
    this.reconnectTimer.unref();
  }

  private failQueue(reason: string): void {
    for (const request of this.queue.splice(0)) request.fail(new UpstreamFailure('error', reason));
  }
}
