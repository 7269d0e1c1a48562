import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import { Admission, type AdmissionOptions } from './admission.js';
import { LookupConnection, type AnswerSource, type LookupConnectionOptions } from './connection.js';
import { connectionsOpen, connectionsTotal, handshakeFailuresBy, handshakes, rejectedBy } from './metrics.js';
import { handshakeFailure, MIN_TLS_VERSION } from '../tls/policy.js';

export interface LookupServerOptions {
  host: string;
  port: number;
  /** Certificate chain and key, PEM. */
  cert: string | Buffer;
  key: string | Buffer;
  /** 48 bytes shared by every process serving this name, so TLS sessions resume across them. */
  ticketKeys?: Buffer;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  admission: AdmissionOptions;
  connection: LookupConnectionOptions;
  logger: Logger;
}

/**
 * The port-64 server. A plain TCP listener accepts and applies the admission limits before any TLS
 * work; admitted sockets are handed to the TLS server, and each one becomes a LookupConnection once
 * its handshake completes. Drains every connection on shutdown.
 */
export class LookupServer {
  private readonly listener: net.Server;
  private readonly tlsServer: tls.Server;
  private readonly admission: Admission;
  /** Every admitted socket, handshake done or not, so that shutdown can cut all of them. */
  private readonly sockets = new Set<net.Socket>();
  private readonly connections = new Set<LookupConnection>();
  private readonly logger: Logger;

  constructor(
    private readonly options: LookupServerOptions,
    source: AnswerSource,
  ) {
    this.logger = options.logger;
    this.admission = new Admission(options.admission);
    this.tlsServer = tls.createServer({
      cert: options.cert,
      key: options.key,
      minVersion: MIN_TLS_VERSION,
      handshakeTimeout: options.handshakeTimeoutMs,
      ...(options.ticketKeys ? { ticketKeys: options.ticketKeys } : {}),
    });
    // Request and answer are each one small write; Nagle's algorithm would only add latency.
    this.listener = net.createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.tlsServer.on('secureConnection', (socket) => {
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
    this.tlsServer.on('tlsClientError', (error: NodeJS.ErrnoException, socket) => {
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
    return this.listener.address() as AddressInfo;
  }

  get openConnections(): number {
    return this.connections.size;
  }

  /** True while new connections are being shed because the event loop is too slow. */
  get overloaded(): boolean {
    return this.admission.overloaded;
  }

  /**
   * Serves a new certificate to new handshakes; established connections keep theirs. The caller
   * has checked that the pair is valid.
   */
  setCertificate(cert: string | Buffer, key: string | Buffer): void {
    this.tlsServer.setSecureContext({ cert, key, minVersion: MIN_TLS_VERSION });
  }

  setTicketKeys(keys: Buffer): void {
    this.tlsServer.setTicketKeys(keys);
  }

  /**
   * Stops accepting, lets every connection finish the requests it has already received, and cuts
   * whatever is left (handshakes included) when the deadline passes.
   */
  async close(drainTimeoutMs: number): Promise<void> {
    const closed = new Promise<void>((resolve) => this.listener.close(() => resolve()));
    for (const connection of this.connections) connection.drain();
    const deadline = new Promise<'timeout'>((resolve) => setTimeout(resolve, drainTimeoutMs, 'timeout').unref());
    if ((await Promise.race([closed, deadline])) === 'timeout') {
      this.logger.warn({ connections: this.sockets.size }, 'drain deadline passed; closing remaining connections');
      for (const socket of this.sockets) {
        rejectedBy.drain_deadline.inc();
        socket.destroy();
      }
      await closed;
    }
    this.admission.stop();
  }

  private accept(socket: net.Socket): void {
    connectionsTotal.inc();
    const client = this.admission.clientOf(socket.remoteAddress);
    const refusal = this.admission.admit(client);
    if (refusal !== undefined) {
      rejectedBy[refusal].inc();
      // A reset, not a goodbye: no TLS, no TIME_WAIT on our side, nothing for a flood to hold.
      socket.resetAndDestroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.admission.release(client);
    });
    // Errors of a socket that never reaches TLS (a reset mid-accept) are the client's business.
    socket.on('error', () => undefined);
    this.tlsServer.emit('connection', socket);
  }

  private bind(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.listener.once('error', onError);
      // A deep accept queue absorbs reconnect bursts (atServers open one connection per lookup);
      // the kernel caps it at net.core.somaxconn.
      this.listener.listen({ host, port, backlog: 4096 }, () => {
        this.listener.off('error', onError);
        resolve(this.listener.address() as AddressInfo);
      });
    });
  }
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
