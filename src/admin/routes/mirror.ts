import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import type { MirrorState } from '../../mirror/mirror.js';
import type { AdminApp } from '../app.js';
import { ProblemError } from '../problems.js';
import { Problem } from '../schemas.js';

const SourceStatus = Type.Object({
  url: Type.String(),
  keyId: Type.String({ description: 'Key id of the source\'s signing key; what PUT /v1/blocks/sources/{keyId} takes.' }),
  position: Type.Integer({ description: 'Precedence: 0 for the first --mirror, which wins an atsign several sources have.' }),
  versionApplied: Type.Union([Type.Integer(), Type.Null()], { description: 'The source\'s feed version applied here; null until the first snapshot.' }),
  snapshotVersion: Type.Union([Type.Integer(), Type.Null()]),
  snapshotAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  state: Type.Union([Type.Literal('snapshot'), Type.Literal('following'), Type.Literal('retrying')]),
  connected: Type.Boolean({ description: 'The change stream is open.' }),
  lastError: Type.Union([Type.String(), Type.Null()]),
  lastErrorAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  lagSeconds: Type.Union([Type.Number(), Type.Null()], { description: 'Seconds since this mirror last held everything the source had sent: 0 while the stream is open and applied; null before the first snapshot.' }),
});

/** GET /v1/mirror: how each source is followed (an empty list on a directory that mirrors nothing). */
export function mirrorRoutes(app: AdminApp, mirror: MirrorState | undefined): void {
  app.get('/v1/mirror', {
    schema: { summary: 'The sources this directory mirrors, and how far it has followed each', tags: ['mirror'], response: { 200: Type.Object({ sources: Type.Array(SourceStatus) }), default: Problem } },
  }, async () => ({ sources: mirror?.status() ?? [] }));
}

/** Route patterns of the writes a registrar makes; a mirror's records come from its sources instead. */
const REGISTRAR_WRITES = new Set(['PUT /v1/atsigns/:atsign', 'PATCH /v1/atsigns/:atsign', 'DELETE /v1/atsigns/:atsign', 'POST /v1/import']);

/**
 * An onRequest hook for a mirror, after authentication: refuses registrar writes before their body
 * is read or validated, so a client learns the one thing that matters.
 */
export async function refuseRegistrarWrites(request: FastifyRequest): Promise<void> {
  if (REGISTRAR_WRITES.has(`${request.method} ${request.routeOptions.url}`)) {
    throw new ProblemError('mirror-read-only', 'this directory mirrors others and takes no registrar writes; write to its source');
  }
}
