import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { LookupConnection, type AnswerSource, type LookupConnectionOptions } from './connection.js';
import { connectionsOpen, connectionsTotal, handshakeFailuresBy, handshakes, rejectedBy } from './metrics.js';

export interface LookupServerOptions {
  host: string;
  port: number;
  /** Certificate chain and key, PEM. */
  cert: string | Buffer;
  key: string | Buffer;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  connection: LookupConnectionOptions;
  logger: Logger;
}

/**
 * The port-64 TLS server: accepts connections, hands each one to a LookupConnection once the
 * handshake completes, and drains them on shutdown.
 */
export class LookupServer {
  private readonly server: tls.Server;
  private readonly connections = new Set<LookupConnection>();
  private readonly logger: Logger;

  constructor(
    private readonly options: LookupServerOptions,
    source: AnswerSource,
  ) {
    this.logger = options.logger;
    this.server = tls.createServer({
      cert: options.cert,
      key: options.key,
      minVersion: 'TLSv1.2',
      handshakeTimeout: options.handshakeTimeoutMs,
      // Request and answer are each one small write; Nagle's algorithm would only add latency.
      noDelay: true,
    });
    this.server.on('connection', () => connectionsTotal.inc());
    this.server.on('secureConnection', (socket) => {
      handshakes.inc({ version: socket.getProtocol() ?? 'unknown', resumed: String(socket.isSessionReused()) });
      connectionsOpen.inc();
      socket.on('error', (error) => this.logger.debug({ err: error }, 'lookup connection error'));
      socket.setTimeout(options.idleTimeoutMs, () => {
        rejectedBy.idle_timeout.inc();
        socket.destroy();
      });
      const connection = new LookupConnection(socket, source, options.connection);
      this.connections.add(connection);
      // Read only at debug level: a per-connection log line is too costly for production volumes.
      const opened = this.logger.isLevelEnabled('debug') ? { remoteAddress: socket.remoteAddress, at: performance.now() } : undefined;
      socket.once('close', () => {
        connectionsOpen.dec();
        this.connections.delete(connection);
        if (opened) {
          this.logger.debug({ remoteAddress: opened.remoteAddress, lookups: connection.lookups, openMs: Math.round(performance.now() - opened.at) }, 'lookup connection closed');
        }
      });
      connection.start();
    });
    // Load-balancer and uptime probes open TCP and close without a handshake: normal, not an error.
    // With a listener here Node leaves the socket open (a silent one forever), so close it.
    this.server.on('tlsClientError', (error: NodeJS.ErrnoException, socket) => {
      handshakeFailuresBy[handshakeFailure(error)].inc();
      this.logger.debug({ err: error, remoteAddress: socket.remoteAddress }, 'TLS handshake did not complete');
      socket.destroy();
    });
  }

  /** Binds and resolves with the bound address; the error says how to fix a privileged port. */
  async listen(): Promise<AddressInfo> {
    const { host, port } = this.options;
    try {
      return await this.bind(host, port);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (host === '::' && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
        this.logger.warn('IPv6 is unavailable here; the lookup server listens on IPv4 only (0.0.0.0)');
        return this.bind('0.0.0.0', port);
      }
      throw describeBindError(error as NodeJS.ErrnoException, host, port);
    }
  }

  get address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  get openConnections(): number {
    return this.connections.size;
  }

  /**
   * Stops accepting, lets every connection finish the requests it has already received, and cuts
   * whatever is left when the deadline passes.
   */
  async close(drainTimeoutMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const connection of this.connections) connection.drain();
    const deadline = new Promise<'timeout'>((resolve) => setTimeout(resolve, drainTimeoutMs, 'timeout').unref());
    if ((await Promise.race([closed, deadline])) === 'timeout') {
      this.logger.warn({ connections: this.connections.size }, 'drain deadline passed; closing remaining connections');
      for (const socket of this.sockets()) {
        rejectedBy.drain_deadline.inc();
        socket.destroy();
      }
      await closed;
    }
  }

  private *sockets(): Iterable<tls.TLSSocket> {
    for (const connection of this.connections) yield connection.socket;
  }

  private bind(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.server.once('error', onError);
      this.server.listen({ host, port }, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }
}

function handshakeFailure(error: NodeJS.ErrnoException): 'timeout' | 'closed' | 'protocol' {
  if (error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  if (error.code === 'ECONNRESET' || /socket disconnected|hang up/i.test(error.message)) return 'closed';
  return 'protocol';
}

function describeBindError(error: NodeJS.ErrnoException, host: string, port: number): Error {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  switch (error.code) {
    case 'EACCES':
      return new Error(
        `cannot listen on ${where}: ports below 1024 need privilege. Either choose another port ` +
          `(--lookup-port 6464, and forward 64 to it), or let Node bind low ports: ` +
          `sudo setcap cap_net_bind_service=+ep "$(command -v node)"`,
        { cause: error },
      );
    case 'EADDRINUSE':
      return new Error(`cannot listen on ${where}: the port is already in use`, { cause: error });
    default:
      return new Error(`cannot listen on ${where}: ${error.message}`, { cause: error });
  }
}
