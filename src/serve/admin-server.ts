import type { AddressInfo } from 'node:net';
import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { buildAdminApp, type AdminApp } from '../admin/app.js';
import type { Config } from '../config.js';
import { createPool } from '../store/pool.js';
import { packageVersion } from './package-version.js';

export interface AdminServer {
  readonly address: AddressInfo;
  readonly app: AdminApp;
  stop(): Promise<void>;
}

/** The admin REST API on its own port and pool. It writes to the database only; caches follow by notification. */
export async function startAdminServer(config: Config, databaseUrl: string, logger: Logger): Promise<AdminServer> {
  const pool = createPool({
    connectionString: databaseUrl,
    max: config.dbPoolSize,
    connectTimeoutMs: config.dbConnectTimeout,
    statementTimeoutMs: config.dbStatementTimeout,
    applicationName: 'atdirectory-admin',
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
  });
  try {
    await app.listen({ host: config.adminHost, port: config.adminPort });
  } catch (error) {
    await pool.end();
    const code = (error as NodeJS.ErrnoException).code;
    throw new Error(`cannot listen on ${config.adminHost}:${config.adminPort} for the admin API${code ? ` (${code})` : ''}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  return {
    address: app.server.address() as AddressInfo,
    app,
    async stop() {
      await app.close();
      await pool.end();
    },
  };
}
