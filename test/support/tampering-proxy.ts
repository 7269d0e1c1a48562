import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';

/**
 * What a man in the middle does to the first change event of `atsign` in the feed's stream:
 * `rewrite-host` alters its host (the signature no longer verifies); `drop` removes it; `settle`
 * replaces it with an unsigned `settled` event of its id, moving the reader's resume point past it.
 */
export type Tampering = { atsign: string } & ({ action: 'rewrite-host'; host: string } | { action: 'drop' } | { action: 'settle' });

export interface ProxyOptions {
  tampering?: Tampering;
  /** Serve HTTPS with this certificate (the proxy is then the source a mirror sees over TLS). */
  tls?: { cert: string; key: string };
}

/**
 * A proxy in front of a directory's admin API, for a mirror to follow through. It can tamper with
 * one change event of the feed's stream at a time, and it can refuse everything with 503 for a
 * while (a source not yet reachable).
 */
export class TamperingProxy {
  /** Change events tampered with so far. */
  tampered = 0;
  private tampering: Tampering | undefined;
  private holding = false;
  private readonly server: http.Server;
  private readonly exchanges = new Set<http.ClientRequest>();

  private constructor(
    private readonly target: URL,
    options: ProxyOptions,
  ) {
    this.tampering = options.tampering;
    const handler = (request: http.IncomingMessage, response: http.ServerResponse) => this.forward(request, response);
    this.server = options.tls ? https.createServer(options.tls, handler) : http.createServer(handler);
  }

  static async start(targetUrl: string, options: ProxyOptions = {}): Promise<TamperingProxy & { url: string }> {
    const proxy = new TamperingProxy(new URL(targetUrl), options);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    const scheme = options.tls ? 'https' : 'http';
    return Object.assign(proxy, { url: `${scheme}://127.0.0.1:${(proxy.server.address() as AddressInfo).port}` });
  }

  /** Tampers with the next change event of `tampering.atsign`, once. */
  tamperWith(tampering: Tampering): void {
    this.tampering = tampering;
  }

  /** Answers 503 to everything until `release`. */
  hold(): void {
    this.holding = true;
  }

  release(): void {
    this.holding = false;
  }

  async close(): Promise<void> {
    for (const exchange of this.exchanges) exchange.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private forward(request: http.IncomingMessage, response: http.ServerResponse): void {
    if (this.holding) {
      response.writeHead(503, { 'content-type': 'text/plain' }).end('held by the test');
      return;
    }
    const upstream = http.request(
      { host: this.target.hostname, port: this.target.port, path: request.url, method: request.method, headers: { ...request.headers, host: this.target.host } },
      (answer) => {
        response.writeHead(answer.statusCode ?? 502, answer.headers);
        // The directory went away mid-answer: so does the proxy's client, as through any real proxy.
        answer.on('close', () => {
          if (!answer.complete) response.destroy();
        });
        if (!answer.headers['content-type']?.startsWith('text/event-stream')) {
          answer.pipe(response);
          return;
        }
        // Events are handled whole, so one split across reads is still found.
        let pending = '';
        answer.setEncoding('utf8');
        answer.on('data', (text: string) => {
          pending += text;
          const end = pending.lastIndexOf('\n\n');
          if (end === -1) return;
          const events = pending.slice(0, end).split('\n\n');
          pending = pending.slice(end + 2);
          response.write(events.map((event) => this.alter(event)).filter((event) => event !== undefined).map((event) => `${event}\n\n`).join(''));
        });
        answer.on('end', () => response.end(pending));
      },
    );
    this.exchanges.add(upstream);
    upstream.on('close', () => this.exchanges.delete(upstream));
    upstream.on('error', () => response.destroy());
    response.on('close', () => upstream.destroy());
    request.pipe(upstream);
  }

  /** The event as passed on; undefined when dropped. */
  private alter(event: string): string | undefined {
    const tampering = this.tampering;
    if (!tampering || !event.includes('event: change') || !event.includes(`"atsign":${JSON.stringify(tampering.atsign)}`)) return event;
    this.tampering = undefined;
    this.tampered++;
    switch (tampering.action) {
      case 'rewrite-host':
        return event.replace(/"host":"[^"]*"/, `"host":${JSON.stringify(tampering.host)}`);
      case 'drop':
        return undefined;
      case 'settle': {
        const id = /^id: (\d+)$/m.exec(event)![1];
        return `id: ${id}\nevent: settled\ndata: {"settled":${id}}`;
      }
    }
  }
}
