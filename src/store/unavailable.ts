// PostgreSQL's connection-class SQLSTATEs (and 25006, a standby refusing a write), the socket
// errors pg passes through, our own pool refusing to queue more, and 53300: the server is at
// max_connections, which passes as soon as another client lets go.
const UNAVAILABLE_CODES = new Set(['ATDIR_POOL_QUEUE_FULL', 'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', '25006', '53300']);

/**
 * Whether an error means the database cannot be reached or cannot take the request now, as opposed
 * to refusing it (bad credentials, a constraint, a bug): the first is worth a retry or a 503, the
 * second never is.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const { code, message } = error as { code?: string; message?: string };
  return (code !== undefined && UNAVAILABLE_CODES.has(code)) || /timeout exceeded when trying to connect|Connection terminated|Query read timeout/.test(message ?? '');
}
