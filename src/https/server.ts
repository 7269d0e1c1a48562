import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { Admission, type AdmissionOptions } from '../lookup/admission.js';
import type { AnswerSource } from '../lookup/connection.js';
import { connectionsOpen, connectionsTotal, handshakeFailuresBy, handshakes, rejectedBy } from '../lookup/metrics.js';
import { HttpsLookupHandler, type HttpsLookupOptions } from './lookup-handler.js';
import { httpsConnectionsOpen } from './metrics.js';
import { handshakeFailure, MIN_TLS_VERSION } from '../tls/policy.js';

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
  private readonly admission: Admission;
  /** Every admitted socket, handshake done or not, so that shutdown can cut all of them. */
  private readonly sockets = new Set<Socket>();
  private readonly logger: Logger;

  constructor(
    private readonly options: HttpsLookupServerOptions,
    source: AnswerSource,
  ) {
    this.logger = options.logger;
    this.admission = new Admission(options.admission);
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

  /** Binds and resolves with the bound address. */
  async listen(): Promise<AddressInfo> {
    const { host, port } = this.options;
    try {
      return await this.bind(host, port);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (host === '::' && (code === 'EAFNOSUPPORT' || code === 'EADDRNOTAVAIL')) {
        this.logger.warn('IPv6 is unavailable here; HTTPS lookups listen on IPv4 only (0.0.0.0)');
        return this.bind('0.0.0.0', port);
      }
      throw describeBindError(error as NodeJS.ErrnoException, host, port);
    }
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
    const deadline = new Promise<'timeout'>((resolve) => setTimeout(resolve, drainTimeoutMs, 'timeout').unref());
    if ((await Promise.race([closed, deadline])) === 'timeout') {
      this.logger.warn({ connections: this.sockets.size }, 'HTTPS drain deadline passed; closing remaining connections');
      for (const socket of this.sockets) {
        rejectedBy.drain_deadline.inc();
        socket.destroy();
      }
      await closed;
    }
    this.admission.stop();
  }

  private accept(socket: Socket, startTls: ConnectionListener[]): void {
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
    for (const listener of startTls) listener.call(this.server, socket);
  }

  private bind(host: string, port: number): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error) => reject(error);
      this.server.once('error', onError);
      this.server.listen({ host, port, backlog: 4096 }, () => {
        this.server.off('error', onError);
        resolve(this.server.address() as AddressInfo);
      });
    });
  }
}


function describeBindError(error: NodeJS.ErrnoException, host: string, port: number): Error {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const reason =
    error.code === 'EADDRINUSE'
      ? 'the port is already in use'
      : error.code === 'EACCES'
        ? 'ports below 1024 need privilege. Either choose another --https-port (and forward 443 to it), or let Node bind low ports: sudo setcap cap_net_bind_service=+ep "$(command -v node)"'
        : error.message;
  return new Error(`cannot listen for HTTPS lookups on ${where}: ${reason}`, { cause: error });
}
