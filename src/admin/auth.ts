import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ApiKey, ApiKeyStore, Scope } from '../store/api-keys.js';
import { ProblemError } from './problems.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The key that authenticated this request; set for every /v1 route. */
    principal: ApiKey;
  }
}

const BEARER = /^Bearer ([^\s]+)$/i;

/**
 * Authenticates /v1 requests from `Authorization: Bearer atd_<id>_<secret>`. A missing, malformed,
 * unknown, wrong or revoked key all get the same 401, with no hint which.
 */
export function authenticate(keys: ApiKeyStore, onFailure: (reason: 'missing' | 'invalid') => void) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const header = request.headers.authorization;
    const token = header ? BEARER.exec(header)?.[1] : undefined;
    const key = token ? await keys.authenticate(token) : undefined;
    if (!key) {
      onFailure(header ? 'invalid' : 'missing');
      void reply.header('WWW-Authenticate', 'Bearer realm="atdirectory"');
      throw new ProblemError('unauthenticated');
    }
    request.principal = key;
  };
}

/** Refuses the request unless the key has one of the scopes. */
export function requireScope(principal: ApiKey, ...allowed: Scope[]): void {
  if (!allowed.includes(principal.scope)) {
    throw new ProblemError('forbidden', `a ${principal.scope} key cannot do this; it needs ${allowed.join(' or ')} scope`);
  }
}

/** For writes: the registrar whose atsigns the key may touch, or undefined for any (admin). */
export function writableOwner(principal: ApiKey): string | undefined {
  requireScope(principal, 'admin', 'registrar');
  return principal.scope === 'admin' ? undefined : principal.registrar;
}

/** For reads of one record: registrar keys see only their own atsigns. */
export function assertMayRead(principal: ApiKey, owner: string | null): void {
  if (principal.scope === 'registrar' && owner !== principal.registrar) {
    throw new ProblemError('forbidden', 'this atsign belongs to another registrar');
  }
}
