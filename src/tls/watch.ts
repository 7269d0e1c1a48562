import { unwatchFile, watchFile, type Stats } from 'node:fs';
import type { Logger } from 'pino';
import { loadCertificate, type CertificatePair } from './certificate.js';
import { tlsReloads } from './metrics.js';
import { readTicketKeys } from './ticket-keys.js';

export interface TlsWatchOptions {
  certPath: string;
  keyPath: string;
  ticketKeysPath?: string;
  /** How often the files are checked. */
  intervalMs: number;
  logger: Logger;
  onCertificate: (pair: CertificatePair) => void;
  onTicketKeys: (keys: Buffer) => void;
}

/** Certificate and key are often written one after the other; wait for both before reading. */
const SETTLE_MS = 200;

/**
 * Reloads the certificate pair and the ticket keys when their files change, without dropping a
 * connection: new handshakes get the new files. A new pair is checked first (readable, PEM, key
 * matches certificate); one that fails is refused, logged, and the previous pair kept serving.
 *
 * Files are polled (stat) rather than watched with inotify: Kubernetes updates a mounted secret by
 * swapping a symlink, and editors replace files, both of which inotify watches on the file miss.
 */
export function watchTlsFiles(options: TlsWatchOptions): { stop(): void } {
  const { logger } = options;
  let pending: NodeJS.Timeout | undefined;

  const reloadCertificate = async () => {
    try {
      const pair = await loadCertificate(options.certPath, options.keyPath);
      options.onCertificate(pair);
      tlsReloads.inc({ file: 'certificate', result: 'loaded' });
      logger.info({ certificate: options.certPath, names: pair.names, expires: pair.expiresAt.toISOString() }, 'TLS certificate reloaded');
    } catch (error) {
      tlsReloads.inc({ file: 'certificate', result: 'refused' });
      logger.error({ err: error, certificate: options.certPath }, 'new TLS certificate refused; still serving the previous one');
    }
  };
  const reloadTicketKeys = async (path: string) => {
    try {
      options.onTicketKeys(await readTicketKeys(path));
      tlsReloads.inc({ file: 'ticket_keys', result: 'loaded' });
      logger.info({ ticketKeys: path }, 'TLS ticket keys reloaded');
    } catch (error) {
      tlsReloads.inc({ file: 'ticket_keys', result: 'refused' });
      logger.error({ err: error }, 'new TLS ticket keys refused; still using the previous ones');
    }
  };

  const changed = (current: Stats, previous: Stats) => current.mtimeMs !== previous.mtimeMs || current.ino !== previous.ino || current.size !== previous.size;
  const watch = { interval: options.intervalMs, persistent: false };
  const onPairChange = (current: Stats, previous: Stats) => {
    if (!changed(current, previous)) return;
    clearTimeout(pending);
    pending = setTimeout(() => void reloadCertificate(), SETTLE_MS).unref();
  };
  watchFile(options.certPath, watch, onPairChange);
  watchFile(options.keyPath, watch, onPairChange);
  const ticketKeysPath = options.ticketKeysPath;
  if (ticketKeysPath) {
    watchFile(ticketKeysPath, watch, (current, previous) => {
      if (changed(current, previous)) void reloadTicketKeys(ticketKeysPath);
    });
  }

  return {
    stop() {
      clearTimeout(pending);
      unwatchFile(options.certPath, onPairChange);
      unwatchFile(options.keyPath, onPairChange);
      if (ticketKeysPath) unwatchFile(ticketKeysPath);
    },
  };
}
