import tls, { type ConnectionOptions, type TLSSocket } from 'node:tls';
import { MAX_REPLY_LENGTH, parseReply, type UpstreamReply } from './reply.js';

/** One key sent upstream, waiting for its reply. */
export interface UpstreamRequest {
  readonly key: string;
  /** The reply, delivered once by the connection that received it. */
  answered(reply: UpstreamReply): void;
}

export interface UpstreamConnectionEvents {
  /** The prompt arrived: requests may be sent. */
  ready(connection: UpstreamConnection): void;
  /**
   * The connection is finished with. `unanswered` were sent and will get no reply here. `error` is
   * set when the connection was lost (or never made); without it, it was retired on purpose and the
   * unanswered requests can be sent again elsewhere.
   */
  closed(connection: UpstreamConnection, unanswered: UpstreamRequest[], error: Error | undefined): void;
}

export interface UpstreamConnectionOptions {
  host: string;
  port: number;
  tls: ConnectionOptions;
  /** From dialling to the `@` prompt. */
  connectTimeoutMs: number;
}

/** How long a retired connection may take to close after `@exit` before it is cut. */
const EXIT_GRACE_MS = 1000;

/**
 * One kept-open connection to an upstream root, speaking the port-64 protocol as an SDK does (see
 * shared/protocol.md): wait for the `@` prompt, send `key\n`, read `value\r\n@`. Requests are
 * pipelined; the root answers in order, so replies are matched to requests by position.
 */
export class UpstreamConnection {
  private readonly socket: TLSSocket;
  /** Sent and not yet answered, oldest first. */
  private readonly sent: UpstreamRequest[] = [];
  private received = '';
  private awaitingPrompt = true;
  private state: 'connecting' | 'ready' | 'closed' = 'connecting';
  private readonly connectTimer: NodeJS.Timeout;
  private readonly dialledAt = performance.now();
  private readyAt = 0;
  private replies = 0;

  constructor(
    options: UpstreamConnectionOptions,
    private readonly events: UpstreamConnectionEvents,
  ) {
    this.socket = tls.connect({ ...options.tls, host: options.host, port: options.port });
    // Each request is one small write; Nagle's algorithm would only delay it.
    this.socket.setNoDelay(true);
    this.socket.setEncoding('utf8');
    this.connectTimer = setTimeout(
      () => this.lose(new Error(`no "@" prompt from ${options.host}:${options.port} within ${options.connectTimeoutMs} ms`)),
      options.connectTimeoutMs,
    );
    this.socket.on('data', (text: string) => this.receive(text));
    this.socket.on('error', (error) => this.lose(error));
    this.socket.on('close', () => this.lose(new Error('the upstream closed the connection')));
  }

  get isReady(): boolean {
    return this.state === 'ready';
  }

  private get isOpen(): boolean {
    return this.state !== 'closed';
  }

  /** Requests waiting for a reply on this connection. */
  get load(): number {
    return this.sent.length;
  }

  /** Milliseconds since dialling. */
  get age(): number {
    return performance.now() - this.dialledAt;
  }

  /** Whether it ever worked: answered something, or stayed open `ms` after its prompt. */
  workedFor(ms: number): boolean {
    return this.replies > 0 || (this.readyAt > 0 && performance.now() - this.readyAt >= ms);
  }

  send(request: UpstreamRequest): void {
    this.sent.push(request);
    this.socket.write(`${request.key}\n`);
  }

  /**
   * Stops using the connection and says goodbye with `@exit`, as the Dart SDK does. Requests still
   * unanswered are handed back (their replies would come from a connection we no longer trust, or
   * after a tarpit): the connection is then cut rather than drained.
   */
  retire(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.connectTimer);
    const unanswered = this.sent.splice(0);
    if (unanswered.length === 0) {
      this.socket.end('@exit\n');
      setTimeout(() => this.socket.destroy(), EXIT_GRACE_MS).unref();
    } else {
      this.socket.destroy();
    }
    this.events.closed(this, unanswered, undefined);
  }

  private lose(error: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearTimeout(this.connectTimer);
    this.socket.destroy();
    this.events.closed(this, this.sent.splice(0), error);
  }

  private receive(text: string): void {
    if (this.state === 'closed') return;
    this.received += text;
    for (;;) {
      if (this.awaitingPrompt) {
        if (this.received.length === 0) return;
        if (this.received[0] !== '@') return this.lose(new Error(`expected the "@" prompt, got ${JSON.stringify(this.received.slice(0, 40))}`));
        this.received = this.received.slice(1);
        this.awaitingPrompt = false;
        if (this.state === 'connecting') {
          this.state = 'ready';
          this.readyAt = performance.now();
          clearTimeout(this.connectTimer);
          this.events.ready(this);
          if (!this.isOpen) return;
        }
        continue;
      }
      const newline = this.received.indexOf('\n');
      if (newline === -1) {
        if (this.received.length > MAX_REPLY_LENGTH) this.reply({ kind: 'bad', line: this.received.slice(0, 80) });
        return;
      }
      const line = this.received.slice(0, newline);
      this.received = this.received.slice(newline + 1);
      this.awaitingPrompt = true;
      this.reply(parseReply(line));
      // A reply other than host:port retires the connection.
      if (!this.isOpen) return;
    }
  }

  private reply(reply: UpstreamReply): void {
    const request = this.sent.shift();
    if (request === undefined) return this.lose(new Error('the upstream sent an answer to no request'));
    this.replies++;
    request.answered(reply);
    // Roots throttle misses per connection (the reference delays the 2nd and closes at the 3rd), so
    // a connection that has had one is replaced before it meets the tarpit; one that sent a bad
    // answer can no longer be trusted to stay in step.
    if (reply.kind !== 'found') this.retire();
  }
}
