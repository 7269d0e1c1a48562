import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { ResyncRequired } from '../../feed/changes.js';
import { FeedNotSettled, SnapshotsBusy } from '../../feed/feed.js';
import { requireScope } from '../auth.js';
import type { AdminApp, AdminDependencies } from '../app.js';
import { ProblemError } from '../problems.js';
import { ChangePage, ChangesQuery, Identity, Problem } from '../schemas.js';

const DEFAULT_PAGE = 1000;
const MAX_PAGE = 10_000;
const VERSION = /^(0|[1-9][0-9]{0,15})$/;
/** What a client told "snapshot-busy" should wait: long enough for a snapshot of a large directory to make progress. */
const SNAPSHOT_RETRY_AFTER_S = 5;

const problemResponses = { default: Problem };

/** The change feed and snapshots (docs/federation.md, "Change feed"); any scope may read them. */
export function feedRoutes(app: AdminApp, { feed }: AdminDependencies): void {
  app.get('/v1/changes', {
    // A HEAD would open a stream and drain it into nothing, for as long as the server runs.
    exposeHeadRoute: false,
    schema: {
      summary: 'Signed changes after a version: a page (JSON), or a live stream (Accept: text/event-stream)',
      tags: ['feed'],
      querystring: ChangesQuery,
      headers: Type.Object({ 'last-event-id': Type.Optional(Type.String({ description: 'On a stream: the last id received; takes precedence over after.' })) }),
      response: {
        200: {
          description: 'A page of changes, or with Accept: text/event-stream, Server-Sent Events: `change` events (id = version, data = a change as in a page), `settled` events (id = settled, data = {"settled": N}) and `: keepalive` comments every 15 s.',
          content: {
            'application/json': { schema: ChangePage },
            'text/event-stream': { schema: Type.String() },
          },
        },
        ...problemResponses,
      },
    },
  }, async (request, reply) => {
    requireScope(request.principal, 'read', 'registrar', 'admin');
    const after = versionParameter(request.query.after, 'after') ?? 0;
    const limit = pageSize(request.query.limit);
    void reply.header('vary', 'accept');
    if (!wantsEventStream(request)) return feedCall(() => feed.page(after, limit));
    const events = await feedCall(() => feed.subscribe(lastEventId(request) ?? after));
    return reply
      .type('text/event-stream; charset=utf-8')
      .header('cache-control', 'no-store')
      // Proxies such as nginx would otherwise hold events back to fill a buffer.
      .header('x-accel-buffering', 'no')
      .send(asBody(events));
  });

  app.get('/v1/snapshot', {
    // A HEAD would read a whole snapshot into nothing.
    exposeHeadRoute: false,
    schema: {
      summary: 'Every record, consistent at one settled version, as signed NDJSON',
      tags: ['feed'],
      response: {
        200: {
          description: 'A `snapshot` line, one `record` line per atsign, and an `end` line with lastChange, count, sha256 and signature; a stream without its end line is incomplete.',
          content: { 'application/x-ndjson': { schema: Type.String() } },
        },
        ...problemResponses,
      },
    },
  }, async (request, reply) => {
    requireScope(request.principal, 'read', 'registrar', 'admin');
    try {
      const lines = await feedCall(() => feed.snapshot());
      return reply.type('application/x-ndjson').header('cache-control', 'no-store').send(asBody(lines));
    } catch (error) {
      if (error instanceof ProblemError && error.problem === 'snapshot-busy') void reply.header('retry-after', String(SNAPSHOT_RETRY_AFTER_S));
      throw error;
    }
  });
}

/** The key that signs the feed; public, so mirror operators can fetch it (and check it out of band). */
export function identityRoutes(app: AdminApp, { feed }: AdminDependencies): void {
  app.get('/v1/identity', {
    schema: { summary: 'The public key that signs the change feed and snapshots', tags: ['feed'], security: [], response: { 200: Identity } },
  }, async () => feed.identity);
}

/** Streams are sent as they are; the response schemas only document what they carry. */
function asBody(stream: Readable): string {
  return stream as unknown as string;
}

/** The feed's own errors, as problems. */
async function feedCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof ResyncRequired) throw new ProblemError('resync-required', error.message, { snapshot: '/v1/snapshot' });
    if (error instanceof FeedNotSettled) throw new ProblemError('database-unavailable', error.message);
    if (error instanceof SnapshotsBusy) throw new ProblemError('snapshot-busy', error.message);
    throw error;
  }
}

function wantsEventStream(request: FastifyRequest): boolean {
  return request.headers.accept?.toLowerCase().includes('text/event-stream') ?? false;
}

function versionParameter(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const version = VERSION.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(version)) throw new ProblemError('invalid-query', `${name} must be a version: an integer from 0`);
  return version;
}

function pageSize(value: string | undefined): number {
  if (value === undefined) return DEFAULT_PAGE;
  const limit = /^[0-9]{1,6}$/.test(value) ? Number(value) : NaN;
  if (!(limit >= 1 && limit <= MAX_PAGE)) throw new ProblemError('invalid-query', `limit must be an integer from 1 to ${MAX_PAGE}`);
  return limit;
}

/** An EventSource resuming sends the last id it received; it takes precedence over ?after. */
function lastEventId(request: FastifyRequest): number | undefined {
  const header = request.headers['last-event-id'];
  if (header === undefined) return undefined;
  const version = typeof header === 'string' && VERSION.test(header.trim()) ? Number(header.trim()) : NaN;
  if (!Number.isSafeInteger(version)) throw new ProblemError('invalid-last-event-id', 'Last-Event-ID must be a version the stream sent: an integer from 0');
  return version;
}
