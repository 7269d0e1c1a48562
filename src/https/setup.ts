import type { Logger } from 'pino';
import { PORT_OFF, type Config } from '../config.js';
import type { AdmissionOptions } from '../lookup/admission.js';
import type { AnswerSource } from '../lookup/connection.js';
import type { CertificatePair } from '../tls/certificate.js';
import { HttpsLookupServer } from './server.js';

/**
 * The HTTPS lookup server `--https-port` asks for, or undefined when it is off. It takes every
 * limit, timeout and throttling setting of the lookup port (`admission` is the port's own); only the
 * address is its own.
 */
export function httpsLookupServer(
  config: Config,
  certificate: CertificatePair,
  ticketKeys: Buffer,
  logger: Logger,
  source: AnswerSource,
  admission: AdmissionOptions,
): HttpsLookupServer | undefined {
  if (config.httpsPort === PORT_OFF) return undefined;
  return new HttpsLookupServer(
    {
      host: config.httpsHost,
      port: config.httpsPort,
      cert: certificate.cert,
      key: certificate.key,
      ticketKeys,
      handshakeTimeoutMs: config.handshakeTimeout,
      idleTimeoutMs: config.idleTimeout,
      requestTimeoutMs: config.requestTimeout,
      admission,
      lookup: {
        maxKeyLength: config.maxLineLength,
        missDelayFrom: config.missDelayFrom,
        missDelayMs: config.missDelay,
        missCloseAt: config.missCloseAt,
        missWindowMs: config.missWindow,
      },
      logger,
    },
    source,
  );
}
