import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';

/** What Node's TLS server takes: 16 bytes of key name, 16 of HMAC secret, 16 of AES key. */
export const TICKET_KEYS_LENGTH = 48;

/**
 * Reads the session-ticket keys every process serving one name must share, so that a client
 * resumes its TLS session on whichever process or pod it reaches next. The file holds 48 bytes:
 * raw (`openssl rand 48 > keys`), or as base64 or hex text (`openssl rand -base64 48`), which is
 * how Kubernetes secrets are usually written.
 */
export async function readTicketKeys(path: string): Promise<Buffer> {
  const content = await readFile(path).catch((error: Error) => {
    throw new Error(`cannot read --tls-ticket-keys ${path}: ${error.message}`);
  });
  if (content.length === TICKET_KEYS_LENGTH) return content;
  const text = content.toString('latin1').trim();
  const decoded = /^[0-9a-fA-F]+$/.test(text) ? Buffer.from(text, 'hex') : /^[A-Za-z0-9+/]+={0,2}$/.test(text) ? Buffer.from(text, 'base64') : undefined;
  if (decoded?.length === TICKET_KEYS_LENGTH) return decoded;
  throw new Error(`--tls-ticket-keys ${path} must hold exactly ${TICKET_KEYS_LENGTH} bytes (raw, base64 or hex); it holds ${decoded?.length ?? content.length}`);
}

/** Keys for one process group when no file is given: its workers resume each other's sessions. */
export function randomTicketKeys(): Buffer {
  return randomBytes(TICKET_KEYS_LENGTH);
}
