import { pino, type Logger } from 'pino';

/**
 * Structured JSON logs on stdout. Lookups are never logged above debug; connection strings pass
 * through describeDatabase, and keys and passwords are redacted wherever they appear.
 */
export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { pid: process.pid, ...base },
    redact: { paths: ['password', '*.password', 'key', '*.key', 'authorization', '*.authorization'], censor: '***' },
  });
}
