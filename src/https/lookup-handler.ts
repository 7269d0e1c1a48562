import type { IncomingMessage, ServerResponse } from 'node:http';
import { NOT_FOUND } from '../directory/answer.js';
import type { Resolution } from '../directory/cache.js';
import type { AnswerSource } from '../lookup/connection.js';
import { lookupDuration, lookupsByResult, rejectedBy } from '../lookup/metrics.js';
import { MissWindow } from '../lookup/miss-window.js';
import type { HotCounter } from '../ops/hot-metrics.js';
import { httpsRequestsByStatus } from './metrics.js';
import { parseRequestTarget } from './request-target.js';

export interface HttpsLookupOptions {
  /** Longest key in UTF-16 units, after decoding and without its `@`: the port-64 line limit. */
  maxKeyLength: number;
  missDelayFrom: number;
  missDelayMs: number;
  missCloseAt: number;
  missWindowMs: number;
}

const FAILED: Resolution = { answer: NOT_FOUND, result: 'error' };
const UNMATCHABLE: Resolution = { answer: NOT_FOUND, result: 'not_found' };

/** A port-64 answer is `host:port\r\n@`; over HTTPS the value goes without its `\r\n@`. */
const ANSWER_TAIL = 3;

const TEXT = 'text/plain; charset=utf-8';
const NULL_BODY = Buffer.from('null');
const NULL_HEADERS = ['content-type', TEXT, 'content-length', String(NULL_BODY.length)];
const UNAUTHORIZED_BODY = Buffer.from('Unauthorized');
const UNAUTHORIZED_HEADERS = ['content-type', TEXT, 'content-length', String(UNAUTHORIZED_BODY.length)];

/**
 * Answers HTTPS lookups with the newer reference root's semantics: `GET /alice` (or `/@alice`) →
 * 200 `host:port`, unknown or suspended → 404 `null`, `GET /alice/rest?q` → 302 to
 * `https://host:port/rest?q`, any method but GET and HEAD → 401. Lookups are counted, timed and
 * throttled as on port 64, with a miss window per connection.
 */
export class HttpsLookupHandler {
  /** Made at a connection's first miss; most connections (one lookup each) never need one. */
  private readonly missWindows = new WeakMap<object, MissWindow>();
  private draining = false;

  constructor(
    private readonly source: AnswerSource,
    private readonly options: HttpsLookupOptions,
  ) {}

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => {
    // HEAD is GET without the body (RFC 9110 requires both of a general-purpose server): uptime
    // checks use it. The reference root answers it 401, which no client can rely on.
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      this.send(res, 401, httpsRequestsByStatus['401'], UNAUTHORIZED_HEADERS, UNAUTHORIZED_BODY);
      return;
    }
    const target = parseRequestTarget(req.url ?? '', this.options.maxKeyLength);
    // Like port 64's empty line, `GET /` is no lookup and no miss: a health check may send it
    // every few seconds on one kept-alive connection.
    if (target.kind === 'empty') {
      this.sendNull(res);
      return;
    }
    const started = performance.now();
    if (target.kind === 'unmatchable') {
      this.answer(req, res, UNMATCHABLE, '', started);
      return;
    }
    const resolution = this.source.resolve(target.key);
    if (!(resolution instanceof Promise)) {
      this.answer(req, res, resolution, target.redirect, started);
      return;
    }
    resolution.then(
      (resolved) => this.answer(req, res, resolved, target.redirect, started),
      () => this.answer(req, res, FAILED, target.redirect, started),
    );
  };

  /** Shutdown: every answer from now on closes its connection after it is sent. */
  drain(): void {
    this.draining = true;
  }

  private answer(req: IncomingMessage, res: ServerResponse, resolution: Resolution, redirect: string, started: number): void {
    const socket = req.socket;
    if (socket.destroyed) return;
    // Port 64 can only say null; HTTP can say "try again" without it being cached as a denial,
    // and a failing database is not the client's miss.
    if (resolution.result === 'error') {
      this.record(resolution, started);
      this.send(res, 503, httpsRequestsByStatus['503'], NULL_HEADERS, NULL_BODY);
      return;
    }
    if (resolution.answer === NOT_FOUND) {
      this.answerMiss(req, res, resolution, started);
      return;
    }
    this.record(resolution, started);
    const value = resolution.answer.subarray(0, resolution.answer.length - ANSWER_TAIL);
    if (redirect === '') {
      this.send(res, 200, httpsRequestsByStatus['200'], ['content-type', TEXT, 'content-length', String(value.length)], value);
      return;
    }
    this.send(res, 302, httpsRequestsByStatus['302'], ['location', `https://${value.toString('latin1')}${redirect}`, 'content-length', '0'], undefined);
  }

  /**
   * Enumeration throttling as on port 64, counted per connection: a kept-alive HTTPS connection is
   * the same enumerator as a port-64 connection. The Nth miss within the window is answered after
   * the delay (later requests on the connection wait behind it, as HTTP/1.1 orders responses); the
   * Mth closes the connection unanswered. A client that opens a connection per lookup never meets
   * either; it meets the per-client connection rate instead.
   */
  private answerMiss(req: IncomingMessage, res: ServerResponse, resolution: Resolution, started: number): void {
    const { missDelayFrom, missCloseAt } = this.options;
    const misses = this.missWindowOf(req.socket).record(Date.now());
    if (missCloseAt > 0 && misses >= missCloseAt) {
      lookupsByResult.throttled.inc();
      rejectedBy.throttled.inc();
      req.socket.destroy();
      return;
    }
    this.record(resolution, started);
    if (missDelayFrom > 0 && misses >= missDelayFrom) {
      const timer = setTimeout(() => this.sendNull(res), this.options.missDelayMs);
      res.once('close', () => clearTimeout(timer));
      return;
    }
    this.sendNull(res);
  }

  private missWindowOf(socket: object): MissWindow {
    let window = this.missWindows.get(socket);
    if (window === undefined) {
      const { missWindowMs, missDelayFrom, missCloseAt } = this.options;
      window = new MissWindow(missWindowMs, Math.max(1, missDelayFrom, missCloseAt));
      this.missWindows.set(socket, window);
    }
    return window;
  }

  /** Counts a lookup by result, as port 64 does. A throttling delay is not part of its duration. */
  private record(resolution: Resolution, started: number): void {
    lookupsByResult[resolution.result].inc();
    lookupDuration.observe((performance.now() - started) / 1000);
  }

  private sendNull(res: ServerResponse): void {
    this.send(res, 404, httpsRequestsByStatus['404'], NULL_HEADERS, NULL_BODY);
  }

  /** Headers as a flat list go straight to the wire: no header map is built per response. */
  private send(res: ServerResponse, status: number, counter: HotCounter, headers: string[], body: Buffer | undefined): void {
    counter.inc();
    if (this.draining) res.shouldKeepAlive = false;
    res.writeHead(status, headers);
    res.end(body);
  }
}
