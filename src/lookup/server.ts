import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';
import type { Logger } from 'pino';
import type { AdmissionOptions } from './admission.js';
import { LookupConnection, type AnswerSource, type LookupConnectionOptions } from './connection.js';
import { connectionsOpen, handshakeFailuresBy, handshakes, rejectedBy } from './metrics.js';
import { handshakeFailure, MIN_TLS_VERSION } from '../tls/policy.js';
import { listenPublic } from './listen.js';
import { SocketGate } from './socket-gate.js';

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
  private readonly gate: SocketGate;
  /** Every admitted socket, handshake done or not, so that shutdown can cut all of them. */
  private readonly connections = new Set<LookupConnection>();
  private readonly logger: Logger;

  constructor(
    private readonly options: LookupServerOptions,
    source: AnswerSource,
  ) {
    this.logger = options.logger;
    this.gate = new SocketGate(options.admission);
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

  /** Binds and resolves with the bound address; a refusal says how to fix it. */
  listen(): Promise<AddressInfo> {
    return listenPublic(this.listener, { host: this.options.host, port: this.options.port, logger: this.logger, name: 'lookups', unprivileged: '--lookup-port 6464, and forward 64 to it' });
  }

  get address(): AddressInfo {
    return this.listener.address() as AddressInfo;
  }

  get openConnections(): number {
    return this.connections.size;
  }

  /** True while new connections are being shed because the event loop is too slow. */
  get overloaded(): boolean {
    return this.gate.overloaded;
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
    await this.gate.drain(closed, drainTimeoutMs, (open) => this.logger.warn({ connections: open }, 'drain deadline passed; closing remaining connections'));
  }

  private accept(socket: net.Socket): void {
    if (!this.gate.admit(socket)) return;
    // Errors of a socket that never reaches TLS (a reset mid-accept) are the client's business.
    socket.on('error', () => undefined);
    this.tlsServer.emit('connection', socket);
  }
}
