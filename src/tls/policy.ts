/**
 * What both public TLS ports (lookups on 64, and HTTPS lookups) share: the protocol floor and how a
 * failed handshake is classified for `atdirectory_tls_handshake_failures_total`.
 */

/** TLS 1.0 and 1.1 are deprecated (RFC 8996); every SDK negotiates 1.2 or 1.3. */
export const MIN_TLS_VERSION = 'TLSv1.2';

export type HandshakeFailure = 'timeout' | 'closed' | 'protocol';

export function handshakeFailure(error: NodeJS.ErrnoException): HandshakeFailure {
  if (error.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  if (error.code === 'ECONNRESET' || /socket disconnected|hang up/i.test(error.message)) return 'closed';
  return 'protocol';
}
