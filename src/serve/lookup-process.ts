import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { AnswerCache } from '../directory/cache.js';
import { DirectoryResolver } from '../directory/resolver.js';
import type { HttpsLookupServer } from '../https/server.js';
import { httpsLookupServer } from '../https/setup.js';
import { certificateExpiry } from '../lookup/metrics.js';
import type { AdmissionOptions } from '../lookup/admission.js';
import { LookupServer } from '../lookup/server.js';
import { trimChangeLog } from '../store/change-log.js';
import { ChangeListener } from '../store/changes.js';
import { createPool } from '../store/pool.js';
import { PostgresRecordSource } from '../store/records.js';
import { limitHeapGrowth } from './heap-growth.js';
import type { CertificatePair } from '../tls/certificate.js';
import { watchTlsFiles } from '../tls/watch.js';
import { newInstanceId } from '../upstream/loop.js';
import { setupUpstreams } from '../upstream/setup.js';

export interface LookupProcess {
  readonly address: AddressInfo;
  readonly resolver: DirectoryResolver;
  readonly server: LookupServer;
  /** HTTPS lookups on the same resolver, when --https-port is set. */
  readonly https: HttpsLookupServer | undefined;
  /** Whether the change listener is connected and caught up (for readiness). */
  readonly listening: () => boolean;
  /** Drains the lookup port, then closes the database connections. */
  stop(): Promise<void>;
}

const SOURCE_ERROR_LOG_INTERVAL_MS = 10_000;
const TRIM_INTERVAL_MS = 3600_000;

/**
 * One lookup process: its own cache, query pool and change listener, the port-64 server and, with
 * --https-port, the HTTPS lookup server on the same resolver.
 * The change listener is connected before the port opens, so no answer is ever given from a cache
 * that is not following changes.
 */
export async function startLookupProcess(
  config: Config,
  databaseUrl: string,
  certificate: CertificatePair,
  ticketKeys: Buffer,
  logger: Logger,
  /** Shared by the process group, so each of its processes recognises the group's loop probe. */
  instanceId: string = newInstanceId(),
): Promise<LookupProcess> {
  limitHeapGrowth();
  const upstream = await setupUpstreams(config, instanceId, logger);
  const pool = createPool({
    connectionString: databaseUrl,
    max: config.dbPoolSize,
    connectTimeoutMs: config.dbConnectTimeout,
    statementTimeoutMs: config.dbStatementTimeout,
    applicationName: 'atdirectory-lookup',
    logger,
  });
  const cache = new AnswerCache({
    maxEntries: config.cacheMaxEntries,
    negativeMaxEntries: config.cacheNegativeMaxEntries,
    ttl: config.cacheTtl,
    negativeTtl: config.cacheNegativeTtl,
    maxStale: config.cacheMaxStale,
  });
  let lastSourceErrorLog = 0;
  const resolver = new DirectoryResolver({
    source: new PostgresRecordSource(pool),
    cache,
    onSourceError: (error, atsign) => {
      // An outage fails every miss; one line per interval says so without flooding the log.
      const now = Date.now();
      if (now - lastSourceErrorLog < SOURCE_ERROR_LOG_INTERVAL_MS) return;
      lastSourceErrorLog = now;
      logger.warn({ err: error, atsign }, 'database read failed; uncached atsigns answer null until it recovers');
    },
    fallback: upstream?.forwarder,
  });
  const listener = new ChangeListener({
    connectionString: databaseUrl,
    connectTimeoutMs: config.dbConnectTimeout,
    heartbeatMs: config.listenerHeartbeat,
    logger,
    onChange: (change) => resolver.applyChange(change),
    onCacheUntrusted: () => resolver.clear(),
    onConnectedChange: (connected) => {
      if (connected) logger.info('change listener connected');
    },
  });
  await listener.start();
  await upstream?.start();

  // The HTTPS lookup port applies the same limits (each port counts its own connections).
  const admission: AdmissionOptions = {
    maxConnections: config.maxConnections,
    maxConnectionsPerClient: config.maxConnectionsPerClient,
    clientRate: config.clientRate,
    clientBurst: config.clientBurst,
    ipv6PrefixLength: config.clientIpv6Prefix,
    overloadDelayMs: config.overloadDelay,
  };
  const server = new LookupServer(
    {
      host: config.lookupHost,
      port: config.lookupPort,
      cert: certificate.cert,
      key: certificate.key,
      ticketKeys,
      handshakeTimeoutMs: config.handshakeTimeout,
      idleTimeoutMs: config.idleTimeout,
      admission,
      connection: {
        maxLineLength: config.maxLineLength,
        missDelayFrom: config.missDelayFrom,
        missDelayMs: config.missDelay,
        missCloseAt: config.missCloseAt,
        missWindowMs: config.missWindow,
        requestTimeoutMs: config.requestTimeout,
        writeTimeoutMs: config.writeTimeout,
      },
      logger,
    },
    resolver,
  );
  const https = httpsLookupServer(config, certificate, ticketKeys, logger, resolver, admission);
  let address: AddressInfo;
  try {
    address = await server.listen();
    try {
      await https?.listen();
    } catch (error) {
      await Promise.all([server.close(0), https?.close(0)]);
      throw error;
    }
  } catch (error) {
    cache.release();
    upstream?.stop();
    await Promise.all([listener.stop(), pool.end()]);
    throw error;
  }
  certificateExpiry.set(certificate.expiresAt.getTime() / 1000);
  const tlsFiles = watchTlsFiles({
    certPath: certificate.certPath,
    keyPath: certificate.keyPath,
    ticketKeysPath: config.tlsTicketKeys || undefined,
    intervalMs: config.tlsReloadInterval,
    logger,
    onCertificate: (pair) => {
      server.setCertificate(pair.cert, pair.key);
      https?.setCertificate(pair.cert, pair.key);
      certificateExpiry.set(pair.expiresAt.getTime() / 1000);
    },
    onTicketKeys: (keys) => {
      server.setTicketKeys(keys);
      https?.setTicketKeys(keys);
    },
  });

  const trim = () =>
    trimChangeLog(pool, config.changeLogRetention).then(
      (trimmed) => trimmed > 0 && logger.info({ trimmed }, 'change log trimmed'),
      (error: unknown) => logger.warn({ err: error }, 'change log trim failed; will retry'),
    );
  void trim();
  const trimTimer = setInterval(trim, Math.min(config.changeLogRetention / 10, TRIM_INTERVAL_MS)).unref();

  return {
    address,
    resolver,
    server,
    https,
    listening: () => listener.connected,
    async stop() {
      clearInterval(trimTimer);
      tlsFiles.stop();
      await Promise.all([server.close(config.drainTimeout), https?.close(config.drainTimeout)]);
      upstream?.stop();
      cache.release();
      await Promise.all([listener.stop(), pool.end()]);
    },
  };
}
