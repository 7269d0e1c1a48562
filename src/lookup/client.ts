import tls from 'node:tls';
import { isIP } from 'node:net';

export interface LookupClientOptions {
  host: string;
  port: number;
  /** PEM trust anchors instead of the public roots. */
  ca?: string | Buffer;
  /** Skip certificate verification (testing only). */
  insecure?: boolean;
  timeoutMs: number;
}

/**
 * Looks an atsign up exactly as the SDKs do: connect, wait for the `@` prompt, send the atsign
 * without its `@`, read one answer, send `@exit`. Resolves `host:port`, or null for `null`.
 */
export function lookupAtsign(atsign: string, options: LookupClientOptions): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: options.host,
      port: options.port,
      ...(isIP(options.host) ? {} : { servername: options.host }),
      ...(options.ca ? { ca: options.ca } : {}),
      rejectUnauthorized: !options.insecure,
    });
    let received = '';
    let prompted = false;
    let settled = false;
    const finish = (error: Error | undefined, answer?: string | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) {
        socket.destroy();
        reject(error);
      } else {
        socket.end('@exit\n');
        resolve(answer ?? null);
      }
    };
    const timer = setTimeout(
      () => finish(new Error(`no answer from ${options.host}:${options.port} within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    socket.setEncoding('utf8');
    socket.on('data', (data: string) => {
      received += data;
      if (!prompted) {
        if (!received.startsWith('@')) return finish(new Error(`expected the "@" prompt, got ${JSON.stringify(received)}`));
        prompted = true;
        received = received.slice(1);
        socket.write(`${atsign.replace(/^@/, '')}\n`);
      }
      const newline = received.indexOf('\n');
      if (newline === -1) return;
      const answer = received.slice(0, newline).trim();
      finish(undefined, answer === 'null' ? null : answer);
    });
    socket.on('error', (error) => finish(error));
    socket.on('close', () => finish(new Error('the connection closed without an answer')));
  });
}
