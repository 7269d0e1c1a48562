import type { FastifyRequest } from 'fastify';
import { Type, type Static } from 'typebox';
import { isFailure, normaliseAtsign } from '../../directory/validation.js';
import type { BlockKind } from '../../mirror/blocks.js';
import type { MirrorState } from '../../mirror/mirror.js';
import type { ApiKey } from '../../store/api-keys.js';
import { requireScope } from '../auth.js';
import type { AdminApp, AdminDependencies } from '../app.js';
import { ProblemError } from '../problems.js';
import { AtsignParams, Problem } from '../schemas.js';

const problemResponses = { default: Problem };

const BlockRecord = Type.Object({
  kind: Type.Union([Type.Literal('atsign'), Type.Literal('source')]),
  target: Type.String({ description: 'The normalised atsign, or the key id of the source.' }),
  reason: Type.String(),
  actor: Type.String({ description: 'The API key id that set the block.' }),
  createdAt: Type.String({ format: 'date-time' }),
});

const BlockBody = Type.Object(
  {
    // Optional here so that a missing reason gets its own problem (block-reason-required).
    reason: Type.Optional(Type.String({ maxLength: 1000, pattern: '^[^\\u0000]*$', description: 'Why; kept with the block and in the history of every atsign it affects. Required.' })),
  },
  { additionalProperties: false },
);
type BlockBody = Static<typeof BlockBody>;

const SourceParams = Type.Object({ keyId: Type.String({ description: 'The key id of a --mirror source, as GET /v1/mirror lists it.' }) });

/**
 * Local governance on a mirror (admin scope): an atsign or a whole source blocked here answers
 * null whatever its source says, while the feed goes on updating the record underneath, so
 * lifting the block restores the current answer. On a directory that mirrors nothing the writes
 * answer 409 not-a-mirror; the list still answers (empty, unless blocks were left by an earlier run
 * as a mirror).
 */
export function blockRoutes(app: AdminApp, { blocks }: AdminDependencies, mirror: MirrorState | undefined): void {
  app.get('/v1/blocks', {
    schema: { summary: 'List local blocks (mirrors)', tags: ['mirror'], response: { 200: Type.Object({ items: Type.Array(BlockRecord) }), ...problemResponses } },
  }, async (request) => {
    requireScope(request.principal, 'admin', 'read');
    return { items: await blocks.list() };
  });

  app.put('/v1/blocks/atsigns/:atsign', {
    schema: {
      summary: 'Block an atsign here: it answers null until the block is lifted (mirrors)',
      tags: ['mirror'],
      params: AtsignParams,
      body: BlockBody,
      response: { 200: BlockRecord, 201: BlockRecord, ...problemResponses },
    },
    preValidation: refuseUnlessMayBlock,
  }, async (request, reply) => {
    const reason = reasonOf(request.body);
    const key = atsignKey(request.params.atsign);
    const { block, created } = await blocks.set('atsign', key, reason, request.principal.id);
    if (created) void reply.status(201).header('Location', `/v1/blocks/atsigns/${encodeURIComponent(key)}`);
    return block;
  });

  app.delete('/v1/blocks/atsigns/:atsign', {
    schema: { summary: 'Lift the block of an atsign: it answers what its source says again', tags: ['mirror'], params: AtsignParams, response: { 204: Type.Null(), ...problemResponses } },
  }, async (request, reply) => {
    mayBlock(request.principal);
    const key = atsignKey(request.params.atsign);
    await lift('atsign', key, request.principal.id, `@${key} is not blocked`);
    return reply.status(204).send(null);
  });

  app.put('/v1/blocks/sources/:keyId', {
    schema: {
      summary: 'Block a whole source here: its atsigns answer from the next source that has them, or null (mirrors)',
      tags: ['mirror'],
      params: SourceParams,
      body: BlockBody,
      response: { 200: BlockRecord, 201: BlockRecord, ...problemResponses },
    },
    preValidation: refuseUnlessMayBlock,
  }, async (request, reply) => {
    const reason = reasonOf(request.body);
    const { keyId } = request.params;
    if (!mirror!.status().some((source) => source.keyId === keyId)) throw new ProblemError('unknown-source', `no --mirror source signs with key id ${keyId}`);
    const { block, created } = await blocks.set('source', keyId, reason, request.principal.id);
    if (created) void reply.status(201).header('Location', `/v1/blocks/sources/${encodeURIComponent(keyId)}`);
    return block;
  });

  app.delete('/v1/blocks/sources/:keyId', {
    schema: { summary: 'Lift the block of a source', tags: ['mirror'], params: SourceParams, response: { 204: Type.Null(), ...problemResponses } },
  }, async (request, reply) => {
    mayBlock(request.principal);
    // A source no longer configured may still be unblocked: that only removes the block.
    await lift('source', request.params.keyId, request.principal.id, `source ${request.params.keyId} is not blocked`);
    return reply.status(204).send(null);
  });

  function mayBlock(principal: ApiKey): void {
    requireScope(principal, 'admin');
    if (!mirror) throw new ProblemError('not-a-mirror');
  }

  /** Before the body is validated, so that scope and role are answered first, and no body at all is a missing reason. */
  async function refuseUnlessMayBlock(request: FastifyRequest): Promise<void> {
    mayBlock(request.principal);
    if (request.body === undefined || request.body === null) throw new ProblemError('block-reason-required');
  }

  async function lift(kind: BlockKind, target: string, actor: string, absent: string): Promise<void> {
    if (!(await blocks.remove(kind, target, actor))) throw new ProblemError('not-found', absent);
  }
}

/** A missing reason and a blank one are the same mistake. */
function reasonOf(body: BlockBody): string {
  const reason = body.reason?.trim();
  if (!reason) throw new ProblemError('block-reason-required');
  return reason;
}

function atsignKey(raw: string): string {
  const normalised = normaliseAtsign(raw);
  if (isFailure(normalised)) throw new ProblemError(normalised.problem, normalised.detail);
  return normalised.key;
}
