import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import { isOwnLookupAddress, loopAnswer, loopProbeKey } from './loop.js';
import { UPSTREAM_QUERY_RESULTS, upstreamQueries, upstreamQueryDuration, upstreamRejectedBy, upstreamStatuses, type UpstreamQueryResult, type UpstreamStatus } from './metrics.js';
import { UpstreamPool, nextBackoff } from './pool.js';
import { UpstreamFailure, type UpstreamReply } from './reply.js';

export interface UpstreamsOptions {
  /** `host:port` of each upstream, in the order they are tried. */
  targets: ReadonlyArray<{ host: string; port: number }>;
  /** Kept-open connections per upstream. */
  connections: number;
  /** Longest wait for one upstream's reply. */
  timeoutMs: number;
  /** Trust anchors (PEM) instead of the public roots. */
  ca?: string;
  /** Skip certificate verification. */
  insecure: boolean;
  instanceId: string;
  /** Where our own lookup port listens, so an upstream that is ourselves is refused before dialling. */
  listening: { host: string; port: number };
  logger: Logger;
}

/** An upstream's reply that can be served: `found` or `not_found`. */
export type ServableReply = Exclude<UpstreamReply, { kind: 'bad' }>;

/** Consecutive failures that mark an upstream down. */
const FAILURES_TO_DOWN = 3;

class Upstream {
  readonly label: string;
  readonly pool: UpstreamPool;
  health: 'up' | 'down' | 'refused' = 'up';
  failures = 0;
  /** While down: when it may be tried again, and the backoff that set it. */
  retryAt = 0;
  backoffMs = 0;
  /** How long its last failure took: when every upstream is down, the fastest to fail goes first. */
  lastFailureMs = 0;
  lastFailure = '';
  readonly results: Record<UpstreamQueryResult, { inc(): void }>;
  readonly duration: { observe(seconds: number): void };

  constructor(
    readonly host: string,
    readonly port: number,
    pool: (upstream: Upstream) => UpstreamPool,
  ) {
    this.label = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.results = Object.fromEntries(UPSTREAM_QUERY_RESULTS.map((result) => [result, upstreamQueries.labels(this.label, result)])) as Upstream['results'];
    this.duration = upstreamQueryDuration.labels(this.label);
    this.pool = pool(this);
  }
}

/**
 * The upstream roots in failover order: each query goes to the first one up, and on to the next
 * when it fails. Health: three failures in a row (timeout, connection error, bad answer) mark an
 * upstream down, to be tried again after a backoff (1 s doubling to 30 s) or as soon as its pool
 * reconnects and it answers the loop probe. An upstream that leads back to us is refused for good.
 */
export class Upstreams {
  private readonly upstreams: Upstream[];
  private readonly probeKey: string;
  private readonly ownLoopAnswer: Buffer;
  private readonly logger: Logger;
  private readonly reporter = { statuses: () => this.statuses() };

  constructor(private readonly options: UpstreamsOptions) {
    this.logger = options.logger;
    this.probeKey = loopProbeKey(options.instanceId);
    this.ownLoopAnswer = loopAnswer(options.instanceId);
    const tls: ConnectionOptions = {
      minVersion: 'TLSv1.2',
      rejectUnauthorized: !options.insecure,
      ...(options.ca ? { ca: options.ca } : {}),
    };
    this.upstreams = options.targets.map(
      ({ host, port }) =>
        new Upstream(host, port, (upstream) =>
          new UpstreamPool({
            host,
            port,
            tls,
            size: options.connections,
            timeoutMs: options.timeoutMs,
            onReachable: () => this.probe(upstream),
            onConnectFailure: (error, elapsedMs) => this.failed(upstream, elapsedMs, `cannot connect: ${error.message}`),
          }),
        ),
    );
  }

  /** Refuses upstreams that are our own lookup port, and opens connections to the others. */
  async start(): Promise<void> {
    upstreamStatuses.add(this.reporter);
    const own = await Promise.all(this.upstreams.map((upstream) => isOwnLookupAddress(upstream, this.options.listening)));
    this.upstreams.forEach((upstream, index) => {
      if (own[index]) this.refuse(upstream, 'it is this directory\'s own lookup address');
      else upstream.pool.start();
    });
  }

  stop(): void {
    upstreamStatuses.delete(this.reporter);
    for (const upstream of this.upstreams) upstream.pool.stop();
  }

  /** True when no upstream is up: an expired answer is then served at once rather than waited for. */
  get allDown(): boolean {
    return !this.upstreams.some((upstream) => upstream.health === 'up');
  }

  /** The first servable reply in failover order, or undefined when every upstream tried failed. */
  async query(key: string): Promise<ServableReply | undefined> {
    for (const upstream of this.candidates()) {
      const reply = await this.ask(upstream, key);
      if (reply !== undefined) return reply;
    }
    return undefined;
  }

  /**
   * Upstreams to try, in order: those up (and those down whose backoff has passed, as a trial).
   * When all are down only the one that failed fastest is tried: trying each in turn would hold a
   * client for --upstream-timeout times their number, past what SDKs wait.
   */
  private candidates(): Upstream[] {
    const now = Date.now();
    const usable = this.upstreams.filter((upstream) => upstream.health !== 'refused');
    const live = usable.filter((upstream) => upstream.health === 'up' || now >= upstream.retryAt);
    if (live.length > 0 || usable.length === 0) return live;
    return [usable.reduce((fastest, upstream) => (upstream.lastFailureMs < fastest.lastFailureMs ? upstream : fastest))];
  }

  private async ask(upstream: Upstream, key: string): Promise<ServableReply | undefined> {
    const started = performance.now();
    let result: UpstreamQueryResult;
    let reply: UpstreamReply | undefined;
    let failure = '';
    try {
      reply = await upstream.pool.ask(key);
      result = reply.kind === 'bad' ? 'bad_answer' : reply.kind;
      if (reply.kind === 'bad') failure = `bad answer ${JSON.stringify(reply.line)}`;
    } catch (error) {
      result = error instanceof UpstreamFailure ? error.kind : 'error';
      failure = (error as Error).message;
    }
    const elapsedMs = performance.now() - started;
    upstream.results[result].inc();
    upstream.duration.observe(elapsedMs / 1000);
    if (reply === undefined || reply.kind === 'bad') {
      this.failed(upstream, elapsedMs, failure);
      return undefined;
    }
    this.succeeded(upstream);
    return reply;
  }

  /**
   * Asks a newly reachable upstream for our own probe key. Its own answer back means the upstream
   * forwards to us (directly or through others): refused. Any other reply proves it answers.
   */
  private probe(upstream: Upstream): void {
    if (upstream.health === 'refused') return;
    const started = performance.now();
    upstream.pool.ask(this.probeKey).then(
      (reply) => {
        if (reply.kind === 'found' && reply.answer.equals(this.ownLoopAnswer)) {
          this.refuse(upstream, 'it answered this directory\'s own loop probe, so it forwards back here');
        } else if (reply.kind === 'bad') {
          this.failed(upstream, performance.now() - started, `bad answer to the loop probe: ${JSON.stringify(reply.line)}`);
        } else {
          this.succeeded(upstream);
        }
      },
      (error: unknown) => this.failed(upstream, performance.now() - started, `loop probe: ${(error as Error).message}`),
    );
  }

  private succeeded(upstream: Upstream): void {
    upstream.failures = 0;
    if (upstream.health !== 'down') return;
    upstream.health = 'up';
    upstream.backoffMs = 0;
    this.logger.info({ upstream: upstream.label }, 'upstream answers again');
  }

  private failed(upstream: Upstream, elapsedMs: number, reason: string): void {
    if (upstream.health === 'refused') return;
    upstream.failures++;
    upstream.lastFailureMs = elapsedMs;
    upstream.lastFailure = reason;
    // A trial after the backoff that fails, or the third failure in a row, puts it down (again).
    if (upstream.health === 'down' ? Date.now() < upstream.retryAt : upstream.failures < FAILURES_TO_DOWN) return;
    const wasUp = upstream.health === 'up';
    upstream.health = 'down';
    upstream.backoffMs = nextBackoff(upstream.backoffMs);
    upstream.retryAt = Date.now() + upstream.backoffMs;
    if (wasUp) {
      this.logger.warn({ upstream: upstream.label, failures: upstream.failures, reason }, 'upstream down; skipped while another is up, retried after a backoff');
    }
  }

  private refuse(upstream: Upstream, why: string): void {
    if (upstream.health === 'refused') return;
    upstream.health = 'refused';
    upstream.pool.stop();
    upstreamRejectedBy.loop.inc();
    this.logger.error({ upstream: upstream.label }, `upstream refused: ${why}; it will not be used`);
  }

  private *statuses(): Iterable<UpstreamStatus> {
    for (const upstream of this.upstreams) {
      yield { upstream: upstream.label, up: upstream.health === 'up', connections: upstream.pool.readyConnections };
    }
  }
}
