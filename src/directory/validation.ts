import { isIPv4, isIPv6 } from 'node:net';
import { lookupKey } from './atsign.js';

/** Why a value was refused: each cause is a stable problem type of the admin API. */
export type ValidationFailure =
  | { problem: 'invalid-atsign'; detail: string }
  | { problem: 'invalid-host'; detail: string }
  | { problem: 'ipv6-host'; detail: string }
  | { problem: 'invalid-port'; detail: string };

export const MAX_ATSIGN_LENGTH = 55;
const MAX_HOST_LENGTH = 253;
// Whitespace, control characters, ':' and '@' (a leading '@' is removed before this check).
const FORBIDDEN_IN_ATSIGN = /[\s\p{Cc}\p{Cf}:@]/u;
const DNS_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/**
 * The stored key for an atsign given by a registrar: one leading `@` removed, then normalised
 * exactly as the lookup server derives a key from a request, so what is stored is what is asked.
 */
export function normaliseAtsign(raw: string): { key: string } | ValidationFailure {
  const key = lookupKey(raw.startsWith('@') ? raw.slice(1) : raw);
  const fail = (detail: string) => ({ problem: 'invalid-atsign', detail }) as const;
  if (key.length === 0) return fail('the atsign is empty');
  if ([...key].length > MAX_ATSIGN_LENGTH) return fail(`the atsign is longer than ${MAX_ATSIGN_LENGTH} characters`);
  const forbidden = FORBIDDEN_IN_ATSIGN.exec(key);
  if (forbidden) {
    const shown = forbidden[0] === '@' ? 'a second "@"' : forbidden[0] === ':' ? '":"' : `U+${forbidden[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}`;
    return fail(`the atsign contains ${shown}; whitespace, control characters, ":" and a second "@" are not allowed`);
  }
  return { key };
}

/**
 * A host every SDK can use: a DNS name or an IPv4 address, lower-cased. Every client splits the
 * answer on ":", so an IPv6 literal could never be dialled.
 */
export function normaliseHost(raw: string): { host: string } | ValidationFailure {
  const host = raw.toLowerCase();
  if (isIPv6(host.replace(/^\[|\]$/g, ''))) {
    return {
      problem: 'ipv6-host',
      detail: 'IPv6 addresses cannot be served: every SDK splits the answer host:port on ":". Use a DNS name with an AAAA record instead.',
    };
  }
  if (isIPv4(host)) return { host };
  const fail = (detail: string) => ({ problem: 'invalid-host', detail }) as const;
  if (host.length === 0) return fail('the host is empty');
  if (host.length > MAX_HOST_LENGTH) return fail(`the host is longer than ${MAX_HOST_LENGTH} characters`);
  const labels = host.split('.');
  const bad = labels.find((label) => !DNS_LABEL.test(label));
  if (bad !== undefined) {
    return fail(
      bad === ''
        ? `"${raw}" has an empty label (two dots in a row, or a leading or trailing dot)`
        : `"${bad}" is not a DNS label (letters, digits and inner hyphens, at most 63 characters)`,
    );
  }
  if (/^\d+$/.test(labels.at(-1)!)) return fail(`"${raw}" is neither an IPv4 address nor a DNS name (a top-level label cannot be numeric)`);
  return { host };
}

export function checkPort(port: unknown): ValidationFailure | undefined {
  if (typeof port === 'number' && Number.isInteger(port) && port >= 1 && port <= 65535) return undefined;
  return { problem: 'invalid-port', detail: 'the port must be an integer from 1 to 65535' };
}

export function isFailure(value: object): value is ValidationFailure {
  return 'problem' in value;
}
