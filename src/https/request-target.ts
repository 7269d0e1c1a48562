import { lookupKey } from '../directory/atsign.js';

/** What a request's path asks for. */
export type RequestTarget =
  /** `redirect` is the path after the atSign with its query (`/rest/of/path?x=1`), or empty for the answer itself. */
  | { readonly kind: 'lookup'; readonly key: string; readonly redirect: string }
  /** No atSign at all (`/`, `/@`, whitespace): answered like port 64's empty line, not a lookup. */
  | { readonly kind: 'empty' }
  /** A segment no record can match: malformed percent-encoding or UTF-8, or longer than a port-64 line may be. */
  | { readonly kind: 'unmatchable' };

const EMPTY: RequestTarget = { kind: 'empty' };
const UNMATCHABLE: RequestTarget = { kind: 'unmatchable' };

const SLASH = 0x2f;
const AT = 0x40;

/**
 * The lookup a request target (`req.url`) asks for. The key is the first path segment,
 * percent-decoded, without one leading `@`, then derived exactly as a port-64 request line is
 * (`lookupKey`), so both ports answer a name alike. The segment is decoded on its own: an encoded
 * `/` (`%2F`) stays part of the key rather than splitting the path. `maxKeyLength` is the port-64
 * line limit, in the same UTF-16 units.
 */
export function parseRequestTarget(url: string, maxKeyLength: number): RequestTarget {
  // Only origin-form (`/…`) names an atSign; `*` and absolute-form targets do not.
  if (url.charCodeAt(0) !== SLASH) return EMPTY;
  const queryAt = url.indexOf('?');
  const pathEnd = queryAt === -1 ? url.length : queryAt;
  let segmentEnd = url.indexOf('/', 1);
  if (segmentEnd === -1 || segmentEnd > pathEnd) segmentEnd = pathEnd;
  let segment = url.slice(1, segmentEnd);
  if (segment.includes('%')) {
    try {
      segment = decodeURIComponent(segment);
    } catch {
      return UNMATCHABLE;
    }
  }
  if (segment.charCodeAt(0) === AT) segment = segment.slice(1);
  if (segment.length > maxKeyLength) return UNMATCHABLE;
  const key = lookupKey(segment);
  if (key === '') return EMPTY;
  return { kind: 'lookup', key, redirect: redirectOf(url, segmentEnd, pathEnd, queryAt) };
}

/**
 * The rest of the target, kept as the client encoded it. `/alice` and `/alice/` ask for the answer
 * itself; an empty query (`/alice/x?`) is dropped, as the reference root drops it.
 */
function redirectOf(url: string, segmentEnd: number, pathEnd: number, queryAt: number): string {
  if (segmentEnd + 1 >= pathEnd) return '';
  return url.slice(segmentEnd, queryAt === url.length - 1 ? queryAt : url.length);
}
