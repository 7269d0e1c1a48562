import { STATUS_CODES } from 'node:http';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyError, type FastifyReply, type FastifyInstance, type FastifyBaseLogger, type RawServerDefault, type RawRequestDefaultExpression, type RawReplyDefaultExpression } from 'fastify';
import type pg from 'pg';
import type { Logger } from 'pino';
import { ChangeFeed, type ChangeFeedOptions } from '../feed/feed.js';
import type { SigningKey } from '../feed/signing.js';
import { ImportInterrupted, importRecords, type ImportOptions, type ImportReport } from '../import/importer.js';
import { ImportTooLarge } from '../import/lines.js';
import { BlockStore } from '../mirror/blocks.js';
import type { MirrorState } from '../mirror/mirror.js';
import { ApiKeyStore } from '../store/api-keys.js';
import { AtsignStore } from '../store/atsigns.js';
import { isDatabaseUnavailable } from '../store/unavailable.js';
import { authenticate } from './auth.js';
import { adminAuthFailures, adminRequestDuration, adminRequests } from './metrics.js';
import { PROBLEMS, ProblemError, problemTypeUri, type ProblemType } from './problems.js';
import { atsignRoutes } from './routes/atsigns.js';
import { blockRoutes } from './routes/blocks.js';
import { feedRoutes, identityRoutes } from './routes/feed.js';
import { importRoutes, reportBody } from './routes/import.js';
import { keyRoutes } from './routes/keys.js';
import { mirrorRoutes, refuseRegistrarWrites } from './routes/mirror.js';
import { verifyAtServer } from './verify.js';

export type AdminApp = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, TypeBoxTypeProvider>;

export interface AdminOptions {
  pool: pg.Pool;
  logger: Logger;
  /** Requests per minute per key. */
  rateLimit: number;
  /** Largest JSON body, bytes. */
  bodyLimit: number;
  /** Largest import body, bytes (streamed). */
  importLimit: number;
  /** Trust anchors for ?verify=true (PEM); public roots when absent. */
  verifyCa?: string | Buffer;
  verifyTimeoutMs: number;
  version: string;
  /** Signs the change feed and snapshots. */
  signingKey: SigningKey;
  /** Connections that snapshot streams hold while their clients read (at least MAX_SNAPSHOT_STREAMS); `pool` when absent. */
  snapshotPool?: pg.Pool;
  /** Change-feed timings and limits; the defaults suit production. */
  feed?: Pick<ChangeFeedOptions, 'probeIntervalMs' | 'keepaliveMs' | 'maxBufferedBytes'>;
  /** Set when this directory mirrors others (--mirror): registrar writes are refused, blocks allowed. */
  mirror?: MirrorState;
}

/** What routes are given: stores and the verification, never the pool itself. */
export interface AdminDependencies {
  atsigns: AtsignStore;
  keys: ApiKeyStore;
  verify: (host: string, port: number) => Promise<void>;
  importRecords: (source: AsyncIterable<Buffer | string>, options: ImportOptions) => Promise<ImportReport>;
  feed: ChangeFeed;
  blocks: BlockStore;
}

/** Any error as a problem: declared ones as they are, framework and database errors mapped. */
function toProblem(error: FastifyError & { code?: string }): ProblemError {
  if (error instanceof ProblemError) return error;
  if (error instanceof ImportTooLarge) return new ProblemError('body-too-large', `${error.message} (--admin-import-limit)`);
  if (error instanceof ImportInterrupted) {
    // Say exactly what was applied before the stop: a partial import is never silent.
    const problem = toProblem(error.cause as FastifyError);
    const applied = error.report.created + error.report.replaced;
    return new ProblemError(problem.problem, `${problem.detail ?? problem.message}; the import stopped at line ${error.report.lines} with ${applied} records applied`, {
      ...problem.extensions,
      report: reportBody(error.report),
    });
  }
  if (error.validation) {
    const first = error.validation[0]!;
    const field = (first.instancePath || '').replace(/^\//, '');
    if (first.keyword === 'pattern') {
      const detail = field === 'reason' ? 'the reason must not contain NUL characters' : `${field} must not contain control characters`;
      return new ProblemError(error.validationContext === 'querystring' ? 'invalid-query' : 'invalid-body', detail);
    }
    if (error.validationContext === 'querystring') return new ProblemError('invalid-query', `query ${error.message.replace(/^querystring\/?/, '')}`);
    if (error.validationContext === 'params') return new ProblemError('invalid-atsign', error.message);
    if (first.keyword === 'additionalProperties') {
      return new ProblemError('unknown-field', `unknown field "${(first.params as { additionalProperty: string }).additionalProperty}"`);
    }
    if (field === 'port') return new ProblemError('invalid-port', 'the port must be an integer from 1 to 65535');
    if (field === 'host') return new ProblemError('invalid-host', 'the host must be a string');
    return new ProblemError('invalid-body', error.message);
  }
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ProblemError('unsupported-media-type', error.message);
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ProblemError('body-too-large');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new ProblemError('malformed-json', error.message);
  }
  if (error.statusCode === 400 && error instanceof SyntaxError) return new ProblemError('malformed-json', error.message);
  if (isDatabaseUnavailable(error)) return new ProblemError('database-unavailable');
  // A value PostgreSQL cannot store (NUL, untranslatable characters) that validation let through.
  if (error.code === '22021' || error.code === '22P05') return new ProblemError('invalid-body', 'a value contains a character that cannot be stored (such as NUL)');
  return new ProblemError('internal-error');
}

export async function buildAdminApp(options: AdminOptions): Promise<AdminApp> {
  const app = Fastify({
    loggerInstance: options.logger as FastifyBaseLogger,
    bodyLimit: options.bodyLimit,
    // Atsigns with emoji grow long when percent-encoded; the route validates the real length.
    routerOptions: { maxParamLength: 1000 },
    requestIdHeader: 'x-request-id',
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false } },
    // Refusals made before routing (bad percent-encoding, an over-long path segment) and by the
    // HTTP parser (oversized headers, malformed requests) are problems like every other error.
    frameworkErrors: (error, request, reply) => {
      const problem = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? new ProblemError('uri-too-long') : new ProblemError('invalid-url', 'the URL is not valid percent-encoded UTF-8');
      return (reply as FastifyReply).status(problem.statusCode).type('application/problem+json').send(problem.body(request.url));
    },
    clientErrorHandler: (error: NodeJS.ErrnoException, socket) => {
      if (error.code === 'ECONNRESET' || socket.destroyed) return;
      const problem =
        error.code === 'HPE_HEADER_OVERFLOW' ? new ProblemError('headers-too-large') : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? new ProblemError('request-timeout') : new ProblemError('malformed-request');
      const body = JSON.stringify(problem.body());
      socket.end(
        `HTTP/1.1 ${problem.statusCode} ${STATUS_CODES[problem.statusCode]}\r\nContent-Type: application/problem+json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const dependencies: AdminDependencies = {
    atsigns: new AtsignStore(options.pool),
    keys: new ApiKeyStore(options.pool),
    verify: (host, port) => verifyAtServer(host, port, { ca: options.verifyCa, timeoutMs: options.verifyTimeoutMs }),
    importRecords: (source, importOptions) => importRecords(options.pool, source, importOptions),
    blocks: new BlockStore(options.pool),
    feed: new ChangeFeed({ pool: options.pool, snapshotPool: options.snapshotPool ?? options.pool, signingKey: options.signingKey, logger: options.logger, ...options.feed }),
  };
  // The feed follows the horizon while the app serves; closing ends its streams, which would
  // otherwise keep the server from closing.
  app.addHook('onReady', () => dependencies.feed.start());
  app.addHook('preClose', async () => dependencies.feed.stop());

  app.addHook('onSend', async (request, reply) => {
    void reply.header('x-request-id', request.id);
  });
  // Labelled by route pattern, never by URL, so that atsigns do not become label values.
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    adminRequests.inc({ route, method: request.method, status: String(reply.statusCode) });
    adminRequestDuration.observe({ route, method: request.method }, reply.elapsedTime / 1000);
  });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const problem = toProblem(error);
    if (problem.statusCode >= 500) request.log.error({ err: error }, 'admin request failed');
    // Refused part-way through a streamed body (an import over its limit): close rather than read
    // the rest, and tell the client so it can stop sending.
    if (!request.raw.complete) void reply.header('connection', 'close');
    return reply.status(problem.statusCode).type('application/problem+json').send(problem.body(request.url));
  });
  app.setNotFoundHandler((request, reply) => {
    const problem = new ProblemError('not-found', `no route ${request.method} ${request.url.split('?')[0]}`);
    return reply.status(404).type('application/problem+json').send(problem.body(request.url));
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'atdirectory admin API', version: options.version, description: 'Register, move, suspend and delete atsigns. Errors are RFC 9457 problem details.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'atd_<id>_<secret>' } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get('/problems', { schema: { hide: true } }, async () =>
    Object.entries(PROBLEMS).map(([slug, entry]) => ({ type: problemTypeUri(slug as ProblemType), ...entry })),
  );
  app.get('/problems/:slug', { schema: { hide: true } }, async (request) => {
    const slug = (request.params as { slug: string }).slug;
    if (!Object.hasOwn(PROBLEMS, slug)) throw new ProblemError('not-found', `no problem type ${slug}`);
    return { type: problemTypeUri(slug as ProblemType), ...PROBLEMS[slug as ProblemType] };
  });

  identityRoutes(app, dependencies);
  await app.register(async (v1) => {
    v1.addHook('onRequest', authenticate(dependencies.keys, (reason) => adminAuthFailures.inc({ reason })));
    if (options.mirror) v1.addHook('onRequest', refuseRegistrarWrites);
    // Per key, after authentication, so one registrar cannot use up another's allowance.
    await v1.register(rateLimit, {
      max: options.rateLimit,
      timeWindow: 60_000,
      hook: 'preHandler',
      keyGenerator: (request) => request.principal.id,
      errorResponseBuilder: (_request, context) =>
        new ProblemError('rate-limited', `more than ${context.max} requests per minute with this key; retry in ${Math.ceil(context.ttl / 1000)} s`),
    });
    atsignRoutes(v1 as AdminApp, dependencies);
    keyRoutes(v1 as AdminApp, dependencies);
    feedRoutes(v1 as AdminApp, dependencies);
    blockRoutes(v1 as AdminApp, dependencies, options.mirror);
    mirrorRoutes(v1 as AdminApp, options.mirror);
    // In a scope of its own, so that only the import route accepts NDJSON and CSV bodies.
    await v1.register(async (imports) => importRoutes(imports as AdminApp, dependencies, options.importLimit));
  });
  return app;
}
