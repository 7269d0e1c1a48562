import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * An HTTP proxy in front of a directory's admin API, for a mirror to follow through. It can alter
 * the host of one change event in the feed's stream (a man in the middle, once), and it can refuse
 * everything with 503 for a while (a source not yet reachable).
 */
export class TamperingProxy {
  /** Change events altered so far. */
  tampered = 0;
  private holding = false;
  private readonly server: http.Server;
  private readonly exchanges = new Set<http.ClientRequest>();

  private constructor(
    private readonly target: URL,
    private readonly rewrite: { atsign: string; host: string } | undefined,
  ) {
    this.server = http.createServer((request, response) => this.forward(request, response));
  }

  /** `rewrite`: the first change event of this atsign gets this host instead of its own. */
  static async start(targetUrl: string, rewrite?: { atsign: string; host: string }): Promise<TamperingProxy & { url: string }> {
    const proxy = new TamperingProxy(new URL(targetUrl), rewrite);
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return Object.assign(proxy, { url: `http://127.0.0.1:${(proxy.server.address() as AddressInfo).port}` });
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
        const stream = answer.headers['content-type']?.startsWith('text/event-stream');
        if (!stream || !this.rewrite) {
          answer.pipe(response);
          return;
        }
        // Events are rewritten whole, so one split across reads is still found.
        let pending = '';
        answer.setEncoding('utf8');
        answer.on('data', (text: string) => {
          pending += text;
          const end = pending.lastIndexOf('\n\n');
          if (end === -1) return;
          response.write(pending.slice(0, end + 2).split('\n\n').map((event) => this.alter(event)).join('\n\n'));
          pending = pending.slice(end + 2);
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

  private alter(event: string): string {
    const rewrite = this.rewrite!;
    if (this.tampered > 0 || !event.includes('event: change') || !event.includes(`"atsign":${JSON.stringify(rewrite.atsign)}`)) return event;
    this.tampered++;
    return event.replace(/"host":"[^"]*"/, `"host":${JSON.stringify(rewrite.host)}`);
  }
}
