import { Type } from 'typebox';
import { requireScope } from '../auth.js';
import type { AdminApp, AdminDependencies } from '../app.js';
import { ProblemError } from '../problems.js';
import { ApiKeyInfo, CreatedKey, KeyBody, KeyParams, Problem } from '../schemas.js';

const problemResponses = { default: Problem };

/** API keys; admin scope only. The first admin key comes from the CLI (`atdirectory keys create`). */
const KEY_ID = /^[a-z2-7]{16}$/;

export function keyRoutes(app: AdminApp, { keys }: AdminDependencies): void {
  app.post('/v1/keys', {
    schema: { summary: 'Create a key (its secret is returned once)', tags: ['keys'], body: KeyBody, response: { 201: CreatedKey, ...problemResponses } },
  }, async (request, reply) => {
    requireScope(request.principal, 'admin');
    const { key, token } = await keys.create(request.body.registrar, request.body.scope);
    return reply.status(201).send({ ...key, key: token });
  });

  app.get('/v1/keys', {
    schema: { summary: 'List keys (never their secrets)', tags: ['keys'], response: { 200: Type.Object({ items: Type.Array(ApiKeyInfo) }), ...problemResponses } },
  }, async (request) => {
    requireScope(request.principal, 'admin');
    return { items: await keys.list() };
  });

  app.delete('/v1/keys/:id', {
    schema: { summary: 'Revoke a key', tags: ['keys'], params: KeyParams, response: { 204: Type.Null(), ...problemResponses } },
  }, async (request, reply) => {
    requireScope(request.principal, 'admin');
    // Ids are 16 base32 characters; anything else names no key (and never reaches the database).
    if (!KEY_ID.test(request.params.id) || !(await keys.revoke(request.params.id))) throw new ProblemError('not-found', `no key ${request.params.id}`);
    return reply.status(204).send(null);
  });
}
