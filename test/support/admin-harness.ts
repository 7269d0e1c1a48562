import { generateKeyPairSync } from 'node:crypto';
import { pino } from 'pino';
import { buildAdminApp, type AdminApp, type AdminOptions } from '../../src/admin/app.js';
import { SigningKey } from '../../src/feed/signing.js';
import { ApiKeyStore, type Scope } from '../../src/store/api-keys.js';
import { createPool } from '../../src/store/pool.js';

export interface TestAdmin {
  /** http://127.0.0.1:PORT */
  url: string;
  app: AdminApp;
  /** Creates a key directly in the database and returns its bearer token. */
  key(scope: Scope, registrar?: string): Promise<string>;
  /** fetch against the API with a bearer token; JSON bodies are encoded. */
  request(method: string, path: string, options?: { token?: string; body?: unknown; headers?: Record<string, string> }): Promise<Response>;
  stop(): Promise<void>;
}

/** The admin API on a real HTTP port in this process, against `databaseUrl`. */
export async function startTestAdmin(databaseUrl: string, overrides: Partial<AdminOptions> = {}): Promise<TestAdmin> {
  const logger = pino({ level: 'silent' });
  const pool = createPool({ connectionString: databaseUrl, max: 10, connectTimeoutMs: 2000, statementTimeoutMs: 5000, applicationName: 'test-admin', logger });
  const app = await buildAdminApp({
    pool,
    logger,
    rateLimit: 100_000,
    bodyLimit: 64 * 1024,
    importLimit: 1024 * 1024 * 1024,
    verifyTimeoutMs: 2000,
    version: 'test',
    signingKey: SigningKey.fromPem(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }), 'a test signing key'),
    ...overrides,
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as { port: number };
  const url = `http://127.0.0.1:${port}`;
  const keys = new ApiKeyStore(pool);
  return {
    url,
    app,
    async key(scope, registrar = 'acme') {
      return (await keys.create(registrar, scope)).token;
    },
    request(method, path, { token, body, headers = {} } = {}) {
      return fetch(url + path, {
        method,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined && typeof body !== 'string' ? { 'content-type': 'application/json' } : {}),
          ...headers,
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
    },
    async stop() {
      await app.close();
      await pool.end();
    },
  };
}
