import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { Logger } from 'pino';

export interface Readiness {
  ready: boolean;
  /** Each check by name: "ok", or why it is not. */
  checks: Record<string, string>;
}

export interface OpsServerOptions {
  host: string;
  port: number;
  logger: Logger;
  /** Prometheus exposition of every metric of the process group. */
  metrics: () => Promise<{ contentType: string; body: string }>;
  readiness: () => Promise<Readiness>;
}

/**
 * The operations port: `/metrics`, `/healthz`, `/readyz` and nothing else, no authentication. Plain
 * node:http: three read-only routes do not need a framework.
 */
export class OpsServer {
  private readonly server: Server;
  private shuttingDown = false;
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 20 });

  constructor(private readonly options: OpsServerOptions) {
    this.loopDelay.enable();
    this.server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0];
      const send = (status: number, contentType: string, body: string) => {
        response.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store' }).end(body);
      };
      const json = (status: number, body: unknown) => send(status, 'application/json', JSON.stringify(body) + '\n');
      if (request.method !== 'GET' && request.method !== 'HEAD') return json(405, { error: 'only GET' });
      switch (path) {
        case '/healthz':
          // Answering at all proves the event loop turns; the delay says how freely.
          return json(200, { status: 'ok', eventLoopDelayP99Ms: Math.round(this.loopDelay.percentile(99) / 1e5) / 10 });
        case '/readyz':
          if (this.shuttingDown) return json(503, { ready: false, checks: { shutdown: 'shutting down' } });
          return void options.readiness().then(
            (readiness) => json(readiness.ready ? 200 : 503, readiness),
            (error: Error) => json(503, { ready: false, checks: { readiness: error.message } }),
          );
        case '/metrics':
          return void options.metrics().then(
            ({ contentType, body }) => send(200, contentType, body),
            (error: Error) => {
              options.logger.error({ err: error }, 'metrics collection failed');
              send(500, 'text/plain', 'metrics collection failed\n');
            },
          );
        default:
          return json(404, { error: 'not found', paths: ['/metrics', '/healthz', '/readyz'] });
      }
    });
  }

  async listen(): Promise<AddressInfo> {
    const { host, port } = this.options;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', (error: NodeJS.ErrnoException) =>
        reject(new Error(`cannot listen on ${host}:${port} for the ops endpoint${error.code ? ` (${error.code})` : ''}: ${error.message}`)),
      );
      this.server.listen({ host, port }, resolve);
    });
    return this.server.address() as AddressInfo;
  }

  /** Readiness turns 503 first, so load balancers stop sending before anything else stops. */
  beginShutdown(): void {
    this.shuttingDown = true;
  }

  async close(): Promise<void> {
    this.loopDelay.disable();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
