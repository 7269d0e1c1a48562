import { isIP } from 'node:net';
import tls from 'node:tls';
import { ProblemError } from './problems.js';

export interface VerifyOptions {
  /** Extra trusted CAs (PEM); the public roots otherwise. */
  ca?: string | Buffer;
  timeoutMs: number;
}

/**
 * Checks that something answers TLS at host:port with a certificate valid for host, as atServers
 * and SDKs will check it. A typo must not take an atsign offline for the hour clients cache answers.
 */
export function verifyAtServer(host: string, port: number, options: VerifyOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      ...(isIP(host) ? {} : { servername: host }),
      ...(options.ca ? { ca: options.ca } : {}),
      rejectUnauthorized: true,
    });
    const fail = (why: string) => {
      socket.destroy();
      reject(new ProblemError('verify-failed', `${host}:${port} ${why}; nothing was saved`));
    };
    const timer = setTimeout(() => fail(`did not complete a TLS handshake within ${options.timeoutMs} ms`), options.timeoutMs);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve();
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      fail(`failed verification: ${error.code ? `${error.code}: ` : ''}${error.message}`);
    });
  });
}
