import { encodeAnswer } from '../directory/answer.js';
import { checkPort, isFailure, normaliseHost } from '../directory/validation.js';

/** What an upstream said to one key. */
export type UpstreamReply =
  /** `answer` is ready to send to our own clients: `host:port\r\n@`. */
  | { readonly kind: 'found'; readonly answer: Buffer }
  | { readonly kind: 'not_found' }
  /** Neither `null` nor a servable `host:port`: a failure of the upstream, never forwarded. */
  | { readonly kind: 'bad'; readonly line: string };

/** Why an upstream gave no reply. */
export type UpstreamFailureKind = 'timeout' | 'error';

/** The one error an upstream query rejects with; `kind` is the metric label. */
export class UpstreamFailure extends Error {
  override name = 'UpstreamFailure';

  constructor(
    readonly kind: UpstreamFailureKind,
    message: string,
  ) {
    super(message);
  }
}

export const NOT_FOUND_REPLY: UpstreamReply = { kind: 'not_found' };

/** Longest answer line accepted: a 253-character host, `:`, five digits and `\r`, with room to spare. */
export const MAX_REPLY_LENGTH = 512;

const PORT_DIGITS = /^\d{1,5}$/;

/**
 * Reads one answer line (without its `\n`) the way the SDKs will read what we forward: surrounding
 * whitespace (the `\r`) trimmed, then `null` or `host:port` as protocol.md ("Values") defines it,
 * checked with the same rules the admin API applies to records (DNS name or IPv4, port 1–65535).
 * Anything else, an IPv6 literal or `error:…` included, would break a client that split it on ":".
 */
export function parseReply(line: string): UpstreamReply {
  const value = line.trim();
  if (value === 'null') return NOT_FOUND_REPLY;
  const colon = value.indexOf(':');
  if (colon <= 0 || colon !== value.lastIndexOf(':') || value.includes('@')) return { kind: 'bad', line };
  const host = normaliseHost(value.slice(0, colon));
  const portText = value.slice(colon + 1);
  const port = PORT_DIGITS.test(portText) ? Number(portText) : NaN;
  if (isFailure(host) || checkPort(port)) return { kind: 'bad', line };
  return { kind: 'found', answer: encodeAnswer(host.host, port) };
}
