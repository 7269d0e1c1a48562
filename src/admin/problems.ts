/**
 * Every error the admin API can answer, declared once (RFC 9457). `type` is a stable URI reference
 * relative to the API (`/problems/<slug>`), which the API itself serves, so a client can look a
 * type up where it met it. Routes throw `ProblemError`s naming an entry; nothing builds an error
 * body by hand.
 */
export const PROBLEMS = {
  'invalid-atsign': { status: 400, title: 'Invalid atsign', description: 'An atsign is 1–55 characters (emoji allowed) with no whitespace, control characters, ":" or second "@".' },
  'invalid-host': { status: 400, title: 'Invalid host', description: 'A host is a DNS name (labels of letters, digits and inner hyphens; at most 253 characters) or an IPv4 address.' },
  'ipv6-host': { status: 400, title: 'IPv6 address not servable', description: 'Every SDK splits the answer host:port on ":", so an IPv6 literal can never be used; publish a DNS name with an AAAA record.' },
  'invalid-port': { status: 400, title: 'Invalid port', description: 'A port is an integer from 1 to 65535.' },
  'invalid-body': { status: 400, title: 'Invalid request body', description: 'The body does not match the schema of this operation (see /openapi.json).' },
  'unknown-field': { status: 400, title: 'Unknown field', description: 'The body has a field this operation does not accept; nothing was changed.' },
  'malformed-json': { status: 400, title: 'Malformed JSON', description: 'The body is not valid JSON.' },
  'invalid-query': { status: 400, title: 'Invalid query parameter', description: 'A query parameter is missing, unknown or out of range.' },
  'invalid-cursor': { status: 400, title: 'Invalid cursor', description: 'The cursor was not produced by this API; start again without one.' },
  'reason-required': { status: 400, title: 'Suspension reason required', description: 'Suspending an atsign requires a reason, which is kept in its history.' },
  'block-reason-required': { status: 400, title: 'Block reason required', description: 'Blocking an atsign or a source requires a non-empty "reason", which is kept with the block and in the history.' },
  'invalid-precondition': { status: 400, title: 'Invalid If-Match', description: 'If-Match must be "*" or the ETag (version) of the record, in double quotes.' },
  'invalid-last-event-id': { status: 400, title: 'Invalid Last-Event-ID', description: 'Last-Event-ID must be a version of the change feed: an integer from 0, as an id the stream sent.' },
  'invalid-line': { status: 400, title: 'Invalid import line', description: 'An import line is not a record: not a JSON object, not three CSV fields, an unclosed quote, or longer than 4096 bytes.' },
  'invalid-import-line': { status: 422, title: 'Invalid import lines', description: 'The atomic import was refused because of the lines listed; nothing was applied.' },
  'invalid-url': { status: 400, title: 'Invalid URL', description: 'The URL is not valid percent-encoded UTF-8.' },
  'malformed-request': { status: 400, title: 'Malformed request', description: 'The HTTP request could not be parsed.' },
  unauthenticated: { status: 401, title: 'Authentication required', description: 'Send Authorization: Bearer atd_<id>_<secret> with a valid, unrevoked key.' },
  forbidden: { status: 403, title: 'Forbidden', description: 'The key\'s scope does not allow this operation, or the atsign belongs to another registrar.' },
  'not-found': { status: 404, title: 'Not found', description: 'There is no such resource.' },
  'unknown-source': { status: 404, title: 'Unknown mirror source', description: 'No --mirror source of this directory signs with this key id; GET /v1/mirror lists them.' },
  'method-not-allowed': { status: 405, title: 'Method not allowed', description: 'The resource exists but does not support this method.' },
  'mirror-read-only': { status: 409, title: 'Mirror is read-only', description: 'This directory mirrors others (--mirror) and takes no registrar writes; write to the source directory. Reads, keys and blocks work.' },
  'not-a-mirror': { status: 409, title: 'Not a mirror', description: 'Blocks apply to mirrored records, and this directory mirrors no source (--mirror).' },
  'precondition-failed': { status: 412, title: 'Precondition failed', description: 'The record changed since the version given in If-Match (or does not exist); read it again.' },
  'resync-required': { status: 410, title: 'Resync required', description: 'The change feed cannot continue from this version: the change log no longer reaches back to it, or this directory never issued it (restored from an older backup). Read the snapshot named in "snapshot", then follow the feed from its version.' },
  'body-too-large': { status: 413, title: 'Body too large', description: 'The body exceeds the size limit of this operation.' },
  'unsupported-media-type': { status: 415, title: 'Unsupported media type', description: 'Send application/json (imports: application/x-ndjson or text/csv).' },
  'verify-failed': { status: 422, title: 'atServer verification failed', description: 'With ?verify=true the host:port must answer TLS with a certificate valid for the host; nothing was saved.' },
  'uri-too-long': { status: 414, title: 'URI too long', description: 'A path segment is longer than 1000 characters.' },
  'request-timeout': { status: 408, title: 'Request timeout', description: 'The request was not received in time.' },
  'headers-too-large': { status: 431, title: 'Request headers too large', description: 'The request line and headers exceed 16 KiB.' },
  'rate-limited': { status: 429, title: 'Too many requests', description: 'This key made too many requests; retry after the number of seconds in Retry-After.' },
  'internal-error': { status: 500, title: 'Internal error', description: 'An unexpected error; it has been logged with the request id.' },
  'database-unavailable': { status: 503, title: 'Database unavailable', description: 'The database cannot be reached; nothing was changed. Retry later.' },
  'snapshot-busy': { status: 503, title: 'Snapshots busy', description: 'Every snapshot connection is streaming to another client; retry after the number of seconds in Retry-After.' },
} as const satisfies Record<string, { status: number; title: string; description: string }>;

export type ProblemType = keyof typeof PROBLEMS;

export class ProblemError extends Error {
  readonly statusCode: number;

  constructor(
    readonly problem: ProblemType,
    readonly detail?: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(detail ?? PROBLEMS[problem].title);
    this.statusCode = PROBLEMS[problem].status;
  }

  /** `instance` is the request URL; absent when the request could not be parsed. */
  body(instance?: string): Record<string, unknown> {
    const { status, title } = PROBLEMS[this.problem];
    return { type: problemTypeUri(this.problem), title, status, ...(this.detail ? { detail: this.detail } : {}), ...(instance === undefined ? {} : { instance }), ...this.extensions };
  }
}

export function problemTypeUri(problem: ProblemType): string {
  return `/problems/${problem}`;
}
