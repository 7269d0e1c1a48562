import type { FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { checkPort, isFailure, normaliseAtsign, normaliseHost } from '../../directory/validation.js';
import { AtsignNotFound, NotOwner, VersionMismatch, type StoredAtsign, type WriteConditions } from '../../store/atsigns.js';
import { assertMayRead, requireScope, writableOwner } from '../auth.js';
import type { AdminApp, AdminDependencies } from '../app.js';
import { ProblemError } from '../problems.js';
import { AtsignPage, AtsignParams, AtsignRecord, History, ListQuery, PatchBody, Problem, PutBody, WriteQuery } from '../schemas.js';

const DEFAULT_PAGE = 100;
const MAX_PAGE = 1000;
const problemResponses = { default: Problem };

export function atsignRoutes(app: AdminApp, deps: AdminDependencies): void {
  const { atsigns } = deps;

  app.get('/v1/atsigns/:atsign', {
    schema: { summary: 'Read one atsign', tags: ['atsigns'], params: AtsignParams, response: { 200: AtsignRecord, ...problemResponses } },
  }, async (request, reply) => {
    const record = await existing(atsignKey(request.params.atsign));
    assertMayRead(request.principal, record.registrar);
    return withEtag(reply, record);
  });

  app.put('/v1/atsigns/:atsign', {
    schema: {
      summary: 'Create (201) or replace (200) where an atsign\'s atServer is',
      tags: ['atsigns'],
      params: AtsignParams,
      querystring: WriteQuery,
      body: PutBody,
      response: { 200: AtsignRecord, 201: AtsignRecord, ...problemResponses },
    },
  }, async (request, reply) => {
    const key = atsignKey(request.params.atsign);
    const principal = request.principal;
    const owner = writableOwner(principal);
    if (request.body.registrar !== undefined && principal.scope !== 'admin') {
      throw new ProblemError('forbidden', 'only admin keys may set the registrar');
    }
    const host = hostOf(request.body.host);
    checked(checkPort(request.body.port));
    if (request.query.verify === 'true') await deps.verify(host, request.body.port);
    const { record, created } = await write(() =>
      atsigns.put(key, { host, port: request.body.port, registrar: request.body.registrar ?? principal.registrar }, conditions(request.headers['if-match'], owner), {
        actor: principal.id,
      }),
    );
    if (created) void reply.status(201).header('Location', `/v1/atsigns/${encodeURIComponent(record.atsign)}`);
    return withEtag(reply, record);
  });

  app.patch('/v1/atsigns/:atsign', {
    schema: {
      summary: 'Move an atsign (host and/or port), or suspend or reactivate it',
      tags: ['atsigns'],
      params: AtsignParams,
      querystring: WriteQuery,
      body: PatchBody,
      response: { 200: AtsignRecord, ...problemResponses },
    },
  }, async (request, reply) => {
    const key = atsignKey(request.params.atsign);
    const owner = writableOwner(request.principal);
    const { host: rawHost, port, status, reason } = request.body;
    if (status === 'suspended' && !reason) throw new ProblemError('reason-required');
    const host = rawHost === undefined ? undefined : hostOf(rawHost);
    if (port !== undefined) checked(checkPort(port));
    if (request.query.verify === 'true' && (host !== undefined || port !== undefined)) {
      const current = await existing(key);
      await deps.verify(host ?? current.host, port ?? current.port);
    }
    const record = await write(() =>
      atsigns.patch(
        key,
        { host, port, status, ...(status === 'suspended' ? { suspensionReason: reason } : {}) },
        conditions(request.headers['if-match'], owner),
        { actor: request.principal.id, reason },
      ),
    );
    return withEtag(reply, record);
  });

  app.delete('/v1/atsigns/:atsign', {
    schema: { summary: 'Delete an atsign: lookups answer null from then on', tags: ['atsigns'], params: AtsignParams, response: { 204: Type.Null(), ...problemResponses } },
  }, async (request, reply) => {
    const key = atsignKey(request.params.atsign);
    await write(() => atsigns.delete(key, conditions(request.headers['if-match'], writableOwner(request.principal)), { actor: request.principal.id }));
    return reply.status(204).send(null);
  });

  app.get('/v1/atsigns', {
    schema: {
      summary: 'List atsigns in byte order, a page at a time (keyset pagination)',
      tags: ['atsigns'],
      querystring: ListQuery,
      response: { 200: AtsignPage, ...problemResponses },
    },
  }, async (request) => {
    const principal = request.principal;
    const { prefix, status, cursor } = request.query;
    let registrar = request.query.registrar;
    if (principal.scope === 'registrar') {
      if (registrar !== undefined && registrar !== principal.registrar) throw new ProblemError('forbidden', 'registrar keys list only their own atsigns');
      registrar = principal.registrar;
    }
    const limit = Math.min(Number(request.query.limit ?? DEFAULT_PAGE), MAX_PAGE);
    const items = await atsigns.list({ registrar, prefix: prefix === undefined ? undefined : prefixKey(prefix), status, after: decodeCursor(cursor), limit });
    const last = items.at(-1);
    return { items, nextCursor: items.length === limit && last ? encodeCursor(last.atsign) : null };
  });

  app.get('/v1/atsigns/:atsign/history', {
    schema: { summary: 'Every change to an atsign, oldest first, with its actor', tags: ['atsigns'], params: AtsignParams, response: { 200: History, ...problemResponses } },
  }, async (request) => {
    const key = atsignKey(request.params.atsign);
    requireScope(request.principal, 'admin', 'registrar', 'read');
    if (request.principal.scope === 'registrar') {
      const record = await atsigns.get(key);
      // A deleted atsign's history is the admin's to read: ownership went with the record.
      if (!record) throw new ProblemError('forbidden', 'this atsign has no owner any more');
      assertMayRead(request.principal, record.registrar);
    }
    const items = await atsigns.history(key);
    if (items.length === 0) throw new ProblemError('not-found', `@${key} has no history`);
    return { atsign: key, items };
  });

  async function existing(key: string): Promise<StoredAtsign> {
    const record = await atsigns.get(key);
    if (!record) throw new ProblemError('not-found', `@${key} is not in the directory`);
    return record;
  }
}

function atsignKey(raw: string): string {
  const normalised = normaliseAtsign(raw);
  if (isFailure(normalised)) throw new ProblemError(normalised.problem, normalised.detail);
  return normalised.key;
}

function hostOf(raw: string): string {
  const normalised = normaliseHost(raw);
  if (isFailure(normalised)) throw new ProblemError(normalised.problem, normalised.detail);
  return normalised.host;
}

function checked(failure: ReturnType<typeof checkPort>): void {
  if (failure) throw new ProblemError(failure.problem, failure.detail);
}

/** Prefixes are matched against stored keys, so they are folded the same way (but may be partial). */
function prefixKey(prefix: string): string {
  return (prefix.startsWith('@') ? prefix.slice(1) : prefix).toLowerCase();
}

function conditions(ifMatch: string | undefined, owner: string | undefined): WriteConditions {
  if (ifMatch === undefined) return { owner };
  const value = ifMatch.trim();
  if (value === '*') return { owner, expectedVersion: '*' };
  const strong = /^"(0|[1-9]\d{0,15})"$/.exec(value);
  if (strong) return { owner, expectedVersion: Number(strong[1]) };
  // Strong comparison is of the exact text, so "02" is not the tag "2"; and a weak tag never
  // matches under the strong comparison If-Match requires.
  if (/^W\/"\d+"$/.test(value) || /^"\d+"$/.test(value)) return { owner, expectedVersion: -1 };
  throw new ProblemError('invalid-precondition');
}

function withEtag(reply: FastifyReply, record: StoredAtsign): StoredAtsign {
  void reply.header('ETag', `"${record.version}"`);
  return record;
}

/** Maps the store's refusals to problems. */
async function write<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await operation();
  } catch (error) {
    if (error instanceof AtsignNotFound) throw new ProblemError('not-found', 'the atsign is not in the directory');
    if (error instanceof VersionMismatch) throw new ProblemError('precondition-failed');
    if (error instanceof NotOwner) throw new ProblemError('forbidden', 'this atsign belongs to another registrar');
    throw error;
  }
}

function encodeCursor(atsign: string): string {
  return Buffer.from(`a:${atsign}`).toString('base64url');
}

function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const decoded = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!decoded.startsWith('a:') || decoded.includes('\0') || Buffer.from(decoded).toString('base64url') !== cursor) throw new ProblemError('invalid-cursor');
  return decoded.slice(2);
}
