import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { buildAdminApp, type AdminApp } from '../admin/app.js';
import type { Config } from '../config.js';
import { MAX_SNAPSHOT_STREAMS } from '../feed/feed.js';
import { SigningKey } from '../feed/signing.js';
import type { MirrorState } from '../mirror/mirror.js';
import { createPool } from '../store/pool.js';
import { packageVersion } from './package-version.js';

export interface AdminServer {
  readonly address: AddressInfo;
  readonly app: AdminApp;
  stop(): Promise<void>;
}

/**
 * The admin REST API on its own port and pool. It writes to the database only; caches follow by
 * notification. `mirror` is set when this directory mirrors others, which makes the API refuse
 * registrar writes.
 */
export async function startAdminServer(config: Config, databaseUrl: string, logger: Logger, mirror?: MirrorState): Promise<AdminServer> {
  const signingKeyPath = config.signingKey || join(config.dataDir, 'signing-key.pem');
  const { key: signingKey, generated } = await SigningKey.load(signingKeyPath, { generate: !config.signingKey });
  logger.info(
    { path: signingKeyPath, keyId: signingKey.keyId, publicKey: signingKey.publicKey },
    generated ? 'generated the change-feed signing key; give its public key to mirror operators' : 'change-feed signing key loaded',
  );
  const pool = createPool({
    connectionString: databaseUrl,
    max: config.dbPoolSize,
    connectTimeoutMs: config.dbConnectTimeout,
    statementTimeoutMs: config.dbStatementTimeout,
    applicationName: 'atdirectory-admin',
    logger,
  });
  // Snapshot streams hold a connection for as long as their clients read: a pool of their own
  // keeps them from taking the connections registrar writes need.
  const snapshotPool = createPool({
    connectionString: databaseUrl,
    max: MAX_SNAPSHOT_STREAMS,
    connectTimeoutMs: config.dbConnectTimeout,
    statementTimeoutMs: config.dbStatementTimeout,
    applicationName: 'atdirectory-snapshot',
    logger,
  });
  const verifyCa = config.adminVerifyCa
    ? await readFile(config.adminVerifyCa).catch((error: Error) => {
        throw new Error(`cannot read --admin-verify-ca ${config.adminVerifyCa}: ${error.message}`);
      })
    : undefined;
  const app = await buildAdminApp({
    pool,
    logger: logger.child({ component: 'admin' }),
    rateLimit: config.adminRateLimit,
    bodyLimit: config.adminBodyLimit,
    importLimit: config.adminImportLimit,
    verifyCa,
    verifyTimeoutMs: config.adminVerifyTimeout,
    version: packageVersion(),
    signingKey,
    snapshotPool,
    mirror,
  });
  try {
    await app.listen({ host: config.adminHost, port: config.adminPort });
  } catch (error) {
    // Listening readied the app, which started the change feed's probe.
    await app.close();
    await pool.end();
    await snapshotPool.end();
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(`cannot listen on ${config.adminHost}:${config.adminPort} for the admin API${code ? ` (${code})` : ''}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return {
    address: app.server.address() as AddressInfo,
    app,
    async stop() {
      // Fastify closes idle keep-alive connections at once, but not one that was opened and never
      // sent a request: Node would hold it until its headers timeout, a minute or more.
      const deadline = setTimeout(() => app.server.closeAllConnections(), config.drainTimeout).unref();
      await app.close();
      clearTimeout(deadline);
      await pool.end();
      await snapshotPool.end();
    },
  };
}
