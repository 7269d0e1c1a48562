import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry } from 'prom-client';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { Mirror, withMirrorReadiness } from '../mirror/mirror.js';
import { createLogger } from '../ops/logger.js';
import { registry } from '../ops/registry.js';
import { OpsServer, type Readiness } from '../ops/server.js';
import { readinessCheck } from '../serve/readiness.js';
import { answerPrimary, askWorkers } from '../serve/worker-exchange.js';
import { createPool } from '../store/pool.js';
import { startAdminServer, type AdminServer } from '../serve/admin-server.js';
import { openDatabase, type Database } from '../serve/database.js';
import { startLookupProcess, type LookupProcess } from '../serve/lookup-process.js';
import { developmentCertificate, loadCertificate, type CertificatePair } from '../tls/certificate.js';
import { randomTicketKeys, readTicketKeys } from '../tls/ticket-keys.js';
import { newInstanceId } from '../upstream/loop.js';

/** What the primary prepared, handed to each worker so they share one database and certificate. */
interface Prepared {
  databaseUrl: string;
  certPath: string;
  keyPath: string;
  /** Base64: from --tls-ticket-keys, or random for this process group. */
  ticketKeys: string;
  /** Random for this process group: each of its lookup processes recognises the group's upstream loop probe. */
  instanceId: string;
}

const PREPARED_ENV = 'ATDIR_PREPARED';

interface BoundAddress {
  host: string;
  port: number;
}

type WorkerMessage = ({ type: 'listening'; https: BoundAddress | null } & BoundAddress) | { type: 'failed'; message: string };

/**
 * `atdirectory serve`. The process that starts is the primary: it opens the database (starting the
 * embedded one if needed), migrates, loads the certificate, then either serves lookups itself
 * (--workers 1) or forks workers that do. SIGTERM and SIGINT drain and stop everything, the
 * embedded database last.
 */
export async function serve(config: Config): Promise<void> {
  if (cluster.isWorker) return serveAsWorker(config);
  const logger = createLogger(config.logLevel, { role: 'primary' });
  // Up first, so probes see "starting" (503) while the database and certificate come up.
  let readiness: () => Promise<Readiness> = async () => ({ ready: false, checks: { startup: 'starting' } });
  const ops = config.ops
    ? new OpsServer({ host: config.opsHost, port: config.opsPort, logger, metrics: () => metricsOf(config), readiness: () => readiness() })
    : undefined;
  const opsAddress = await ops?.listen();
  const ticketKeys = config.tlsTicketKeys ? await readTicketKeys(config.tlsTicketKeys) : randomTicketKeys();
  const database = await openDatabase(config, logger, (error) => {
    readiness = async () => ({ ready: false, checks: { startup: `waiting for the database: ${error.message}` } });
  });
  let certificate: CertificatePair;
  try {
    certificate = await certificateFor(config, logger);
  } catch (error) {
    await database.stop();
    throw error;
  }
  const prepared: Prepared = { databaseUrl: database.url, certPath: certificate.certPath, keyPath: certificate.keyPath, ticketKeys: ticketKeys.toString('base64'), instanceId: newInstanceId() };
  const lookup =
    config.workers === 1
      ? await startInProcess(config, prepared.databaseUrl, certificate, ticketKeys, logger, database, prepared.instanceId)
      : await startWorkers(config, prepared, logger, database);

  // Sources are followed by the primary alone; every lookup process sees what it applies through
  // the database and its notifications.
  let mirror: Mirror | undefined;
  if (config.mirror.length > 0) {
    try {
      mirror = await Mirror.start(config, database.url, logger);
    } catch (error) {
      await lookup.stop();
      await database.stop();
      throw error;
    }
  }

  let admin: AdminServer | undefined;
  if (config.admin) {
    try {
      admin = await startAdminServer(config, database.url, logger, mirror);
    } catch (error) {
      await mirror?.stop();
      await lookup.stop();
      await database.stop();
      throw error;
    }
  }

  const checkPool = createPool({
    connectionString: database.url,
    max: 1,
    connectTimeoutMs: Math.min(config.dbConnectTimeout, 2000),
    statementTimeoutMs: 2000,
    applicationName: 'atdirectory-readiness',
    logger,
  });
  const serving = readinessCheck({ pool: checkPool, listening: lookup.listening, tls: () => true });
  readiness = mirror ? withMirrorReadiness(serving, mirror) : serving;

  logger.info(
    {
      lookup: { host: lookup.host, port: lookup.port, workers: config.workers },
      https: lookup.https,
      ops: opsAddress ? { host: opsAddress.address, port: opsAddress.port } : null,
      admin: admin ? { host: admin.address.address, port: admin.address.port, docs: `http://${formatHost(admin.address.address)}:${admin.address.port}/docs` } : null,
      database: database.description,
      dataDir: resolve(config.dataDir),
      certificate: {
        path: certificate.certPath,
        generated: certificate.generated,
        expires: certificate.expiresAt.toISOString(),
        names: certificate.names,
      },
    },
    `atdirectory serving lookups on tls://${formatHost(lookup.host)}:${lookup.port} from ${database.description}`,
  );

  onShutdownSignal(logger, async () => {
    ops?.beginShutdown();
    await admin?.stop();
    await mirror?.stop();
    await lookup.stop();
    await checkPool.end();
    await database.stop();
    await ops?.close();
  });
}

async function certificateFor(config: Config, logger: Logger): Promise<CertificatePair> {
  if (config.tlsCert) return loadCertificate(config.tlsCert, config.tlsKey);
  const certificate = await developmentCertificate(config.dataDir);
  logger.warn(
    { certificate: certificate.certPath, names: certificate.names },
    'no --tls-cert given: serving a self-signed development certificate that SDKs will not trust; production needs a publicly trusted certificate for the name clients dial',
  );
  return certificate;
}

interface RunningLookup {
  host: string;
  port: number;
  /** Where HTTPS lookups are served, or null when --https-port is off. */
  https: BoundAddress | null;
  /** Whether every lookup process follows changes. */
  listening(): Promise<boolean>;
  stop(): Promise<void>;
}

/** One exposition for the whole process group: the primary's metrics and every worker's, aggregated. */
async function metricsOf(config: Config): Promise<{ contentType: string; body: string }> {
  if (config.workers === 1) return { contentType: registry.contentType, body: await registry.metrics() };
  type MetricsJson = Awaited<ReturnType<typeof registry.getMetricsAsJSON>>;
  const all = [await registry.getMetricsAsJSON(), ...(await askWorkers<MetricsJson>('metrics'))];
  const aggregated = AggregatorRegistry.aggregate(all as Parameters<typeof AggregatorRegistry.aggregate>[0]);
  return { contentType: aggregated.contentType, body: await aggregated.metrics() };
}

async function startInProcess(
  config: Config,
  databaseUrl: string,
  certificate: CertificatePair,
  ticketKeys: Buffer,
  logger: Logger,
  database: Database,
  instanceId: string,
): Promise<RunningLookup> {
  let process: LookupProcess;
  try {
    process = await startLookupProcess(config, databaseUrl, certificate, ticketKeys, logger, instanceId);
  } catch (error) {
    await database.stop();
    throw error;
  }
  return {
    host: process.address.address,
    port: process.address.port,
    https: boundHttps(process),
    listening: async () => process.listening(),
    stop: () => process.stop(),
  };
}

/** Forks the workers and keeps their number up: a worker that dies is replaced. */
async function startWorkers(config: Config, prepared: Prepared, logger: Logger, database: Database): Promise<RunningLookup> {
  let stopping = false;
  let restarts = 0;
  const fork = (): Worker => {
    const worker = cluster.fork({ [PREPARED_ENV]: JSON.stringify(prepared) });
    // Sends to a worker that just died fail with EPIPE as an 'error' event; the 'exit' handler
    // below deals with the death itself.
    worker.on('error', (error) => logger.debug({ err: error, worker: worker.process.pid }, 'message to a lookup worker failed'));
    return worker;
  };
  const listening = new Promise<Extract<WorkerMessage, { type: 'listening' }>>((resolveListening, reject) => {
    let ready = 0;
    cluster.on('message', (worker, message: WorkerMessage) => {
      if (message.type === 'failed') reject(new Error(message.message));
      if (message.type === 'listening' && ++ready === config.workers) resolveListening(message);
    });
    cluster.on('exit', (worker, code, signal) => {
      if (stopping) return;
      if (ready < config.workers) {
        reject(new Error(`worker ${worker.process.pid} exited during start (code ${code}, signal ${signal})`));
        return;
      }
      restarts++;
      logger.error({ worker: worker.process.pid, code, signal, restarts }, 'lookup worker died; starting a replacement');
      // Back off when workers keep dying, so a crash loop does not spin the machine.
      setTimeout(fork, Math.min(5000, 100 * restarts)).unref();
    });
  });
  for (let i = 0; i < config.workers; i++) fork();
  let address: Extract<WorkerMessage, { type: 'listening' }>;
  try {
    address = await listening;
  } catch (error) {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill();
    await database.stop();
    throw error;
  }
  return {
    ...address,
    async listening() {
      const statuses = await askWorkers<{ listening: boolean }>('status');
      return statuses.length === config.workers && statuses.every((status) => status.listening);
    },
    async stop() {
      stopping = true;
      const workers = Object.values(cluster.workers ?? {}).filter((worker): worker is Worker => worker !== undefined);
      await Promise.all(
        workers.map(
          (worker) =>
            new Promise<void>((resolveExit) => {
              if (worker.isDead()) return resolveExit();
              worker.once('exit', () => resolveExit());
              worker.send({ type: 'shutdown' }, undefined, () => undefined);
              // A worker that cannot drain in time is killed: the primary must still stop the database.
              setTimeout(() => worker.process.kill('SIGKILL'), config.drainTimeout + 5000).unref();
            }),
        ),
      );
    },
  };
}

async function serveAsWorker(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel, { role: 'worker' });
  const prepared = JSON.parse(process.env[PREPARED_ENV] ?? 'null') as Prepared | null;
  if (!prepared) throw new Error(`worker started without ${PREPARED_ENV}`);
  let lookup: LookupProcess;
  try {
    const certificate = await loadCertificate(prepared.certPath, prepared.keyPath);
    lookup = await startLookupProcess(config, prepared.databaseUrl, certificate, Buffer.from(prepared.ticketKeys, 'base64'), logger, prepared.instanceId);
  } catch (error) {
    process.send?.({ type: 'failed', message: (error as Error).message } satisfies WorkerMessage);
    throw error;
  }
  answerPrimary({
    metrics: () => registry.getMetricsAsJSON(),
    status: async () => ({ listening: lookup.listening() }),
  });
  process.send?.({ type: 'listening', host: lookup.address.address, port: lookup.address.port, https: boundHttps(lookup) } satisfies WorkerMessage);
  const stop = async () => {
    await lookup.stop();
    process.exit(0);
  };
  process.on('message', (message: { type?: string }) => {
    if (message.type === 'shutdown') void stop();
  });
  // Ctrl-C reaches the whole process group; the primary coordinates, workers just drain.
  process.once('SIGINT', () => void stop());
  process.once('SIGTERM', () => void stop());
}

function onShutdownSignal(logger: Logger, shutdown: () => Promise<void>): void {
  let startedAt = 0;
  const handle = (signal: NodeJS.Signals) => {
    if (startedAt) {
      // Ctrl-C under `npm start` can arrive twice at once (terminal and npm); a later one is the
      // operator insisting.
      if (Date.now() - startedAt < 1000) return;
      logger.warn({ signal }, 'second signal: exiting without waiting for the drain');
      process.exit(1);
    }
    startedAt = Date.now();
    logger.info({ signal }, 'shutting down: draining connections');
    shutdown().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}

function boundHttps(lookup: LookupProcess): BoundAddress | null {
  return lookup.https ? { host: lookup.https.address.address, port: lookup.https.address.port } : null;
}

function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
