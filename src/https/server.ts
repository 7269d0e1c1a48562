import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { AdmissionOptions } from '../lookup/admission.js';
import { SocketGate } from '../lookup/socket-gate.js';
import type { AnswerSource } from '../lookup/connection.js';
import { connectionsOpen, handshakeFailuresBy, handshakes, rejectedBy } from '../lookup/metrics.js';
import { HttpsLookupHandler, type HttpsLookupOptions } from './lookup-handler.js';
import { httpsConnectionsOpen } from './metrics.js';
import { handshakeFailure, MIN_TLS_VERSION } from '../tls/policy.js';
import { listenPublic } from '../lookup/listen.js';

export interface HttpsLookupServerOptions {
  host: string;
  /** 0 picks any free port. */
  port: number;
  /** The lookup port's certificate chain and key, PEM. */
  cert: string | Buffer;
  key: string | Buffer;
  /** The lookup port's ticket keys, so sessions resume across processes. */
  ticketKeys?: Buffer;
  handshakeTimeoutMs: number;
  /** A connection silent this long is closed, between requests as before the first. */
  idleTimeoutMs: number;
  /** From a request's first byte to its complete headers. */
  requestTimeoutMs: number;
  admission: AdmissionOptions;
  lookup: HttpsLookupOptions;
  logger: Logger;
}

/** How often Node's HTTP server checks request deadlines (its default, 30 s, would let a slow request run that much over). */
const DEADLINE_CHECK_MS = 1000;

type ConnectionListener = (socket: Socket) => void;

/**
 * HTTPS lookups (`--https-port`): a plain node:https server, kept-alive connections, on the lookup
 * port's certificate, resolver, admission limits and metrics. Admission runs on the TCP socket
 * before any TLS work; shutdown stops accepting, closes idle connections at once, answers requests
 * already received with `Connection: close`, and cuts what remains at the deadline.
 */
export class HttpsLookupServer {
  private readonly server: https.Server;
  private readonly handler: HttpsLookupHandler;
  private readonly gate: SocketGate;
  /** Every admitted socket, handshake done or not, so that shutdown can cut all of them. */
  private readonly logger: Logger;

  constructor(
    private readonly options: HttpsLookupServerOptions,
    source: AnswerSource,
  ) {
    this.logger = options.logger;
    this.gate = new SocketGate(options.admission);
    this.handler = new HttpsLookupHandler(source, options.lookup);
    this.server = https.createServer(
      {
        cert: options.cert,
        key: options.key,
        minVersion: MIN_TLS_VERSION,
        handshakeTimeout: options.handshakeTimeoutMs,
        ...(options.ticketKeys ? { ticketKeys: options.ticketKeys } : {}),
        headersTimeout: options.requestTimeoutMs,
        requestTimeout: options.requestTimeoutMs,
        connectionsCheckingInterval: Math.min(DEADLINE_CHECK_MS, options.requestTimeoutMs),
      },
      this.handler.handle,
    );
    this.server.timeout = options.idleTimeoutMs;
    this.server.keepAliveTimeout = options.idleTimeoutMs;
    // With a listener here Node leaves the timed-out socket to us; without one it would destroy it
    // uncounted.
    this.server.on('timeout', (socket: Socket) => {
      rejectedBy.idle_timeout.inc();
      socket.destroy();
    });

    // tls.Server starts TLS on each accepted socket in its own 'connection' listener. Admission must
    // come first and a refused socket must cost no TLS work, so that listener is taken out and
    // called for admitted sockets only (the documented way to hand a socket to a TLS server).
    const startTls = this.server.listeners('connection') as ConnectionListener[];
    this.server.removeAllListeners('connection');
    this.server.on('connection', (socket: Socket) => this.accept(socket, startTls));

    this.server.on('secureConnection', (socket: TLSSocket) => {
      handshakes.inc({ version: socket.getProtocol() ?? 'unknown', resumed: String(socket.isSessionReused()) });
      connectionsOpen.inc();
      httpsConnectionsOpen.inc();
      socket.once('close', () => {
        connectionsOpen.dec();
        httpsConnectionsOpen.dec();
      });
    });
    // Probes that never finish TLS are normal; node:https destroys the socket after this.
    this.server.on('tlsClientError', (error: NodeJS.ErrnoException, socket: TLSSocket) => {
      handshakeFailuresBy[handshakeFailure(error)].inc();
      this.logger.debug({ err: error, remoteAddress: socket.remoteAddress }, 'HTTPS lookup: TLS handshake did not complete');
    });
  }

  /** Binds and resolves with the bound address; a refusal says how to fix it. */
  listen(): Promise<AddressInfo> {
    return listenPublic(this.server, { host: this.options.host, port: this.options.port, logger: this.logger, name: 'HTTPS lookups', unprivileged: '--https-port 8443, and forward 443 to it' });
  }

  get address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Serves a new (already validated) certificate to new handshakes; established connections keep theirs. */
  setCertificate(cert: string | Buffer, key: string | Buffer): void {
    this.server.setSecureContext({ cert, key, minVersion: MIN_TLS_VERSION });
  }

  setTicketKeys(keys: Buffer): void {
    this.server.setTicketKeys(keys);
  }

  /**
   * Stops accepting and closes idle connections (node:http does both in `close`); requests already
   * received are answered with `Connection: close`; whatever is left at the deadline is cut.
   */
  async close(drainTimeoutMs: number): Promise<void> {
    this.handler.drain();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    await this.gate.drain(closed, drainTimeoutMs, (open) => this.logger.warn({ connections: open }, 'HTTPS drain deadline passed; closing remaining connections'));
  }

  private accept(socket: Socket, startTls: ConnectionListener[]): void {
    if (!this.gate.admit(socket)) return;
    for (const listener of startTls) listener.call(this.server, socket);
  }
}
