import http from 'node:http';
import https from 'node:https';

/** The source answered 410 resync-required: its log no longer reaches our version (or never did). */
export class ResyncRequired extends Error {}

/** The source could not be read: unreachable, refused the token, or answered something unusable. */
export class SourceUnavailable extends Error {}

/** A response body being read; `close` ends the request (and its connection) when it will not be read to the end. */
export interface SourceStream extends AsyncIterable<Buffer> {
  close(): void;
}

/**
 * The source's change stream sends a comment every 15 s; three missed in a row means the connection
 * is gone even if no error said so (a silent network drop leaves a socket open forever).
 */
const IDLE_TIMEOUT_MS = 45_000;
/** OpenSSL's verification failures of a certificate chain, as Node reports them in `code`. */
const UNTRUSTED_CERTIFICATE = /^(DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|UNABLE_TO_VERIFY_LEAF_SIGNATURE|CERT_UNTRUSTED)$/;
/** Enough of an error body for a log line. */
const ERROR_BODY_BYTES = 4096;

/**
 * Requests to one source's admin API, each body a stream that fails when the source goes quiet.
 *
 * node:http rather than fetch: these are long-lived streams that the mirror abandons on purpose
 * (refused data, stopping), and Node's fetch (undici) leaves a connection open to the source after
 * an aborted streaming response (nodejs/undici#5845), one more on every reconnection. Each request
 * here has a connection of its own, and closing the request closes it.
 */
export class SourceClient {
  private readonly base: string;

  constructor(
    url: string,
    private readonly token: string,
    /** PEM certificate authorities trusted for an https:// source instead of the public roots (--mirror-ca). */
    private readonly ca: string | undefined,
    private readonly idleTimeoutMs = IDLE_TIMEOUT_MS,
  ) {
    this.base = url.endsWith('/') ? url : `${url}/`;
  }

  /** GET /v1/changes?after=VERSION as Server-Sent Events. */
  openChanges(after: number, signal: AbortSignal): Promise<SourceStream> {
    return this.open(`v1/changes?after=${after}`, 'text/event-stream', signal);
  }

  /** GET /v1/snapshot as NDJSON. */
  openSnapshot(signal: AbortSignal): Promise<SourceStream> {
    return this.open('v1/snapshot', 'application/x-ndjson', signal);
  }

  private open(path: string, mediaType: string, signal: AbortSignal): Promise<SourceStream> {
    const url = new URL(path, this.base);
    const where = `${url.origin}${url.pathname}`;
    const secure = url.protocol === 'https:';
    return new Promise((resolve, reject) => {
      let failure: Error | undefined;
      let settled = false;
      const fail = (error: Error) => {
        failure ??= error;
        if (!settled) {
          settled = true;
          reject(failure);
        }
      };
      const options = { headers: { authorization: `Bearer ${this.token}`, accept: mediaType }, agent: false, signal };
      const request = secure ? https.get(url, { ...options, ca: this.ca }) : http.get(url, options);
      // Inactivity of the socket: before the answer, and between chunks of the body.
      request.setTimeout(this.idleTimeoutMs, () => request.destroy(new SourceUnavailable(`${where} sent nothing for ${this.idleTimeoutMs} ms`)));
      request.on('error', (error) => {
        if (signal.aborted || error instanceof SourceUnavailable) return fail(error);
        const code = (error as NodeJS.ErrnoException).code;
        const hint = secure && code !== undefined && UNTRUSTED_CERTIFICATE.test(code) ? ' (its certificate is not trusted: see --mirror-ca)' : '';
        fail(new SourceUnavailable(`cannot reach ${url.origin}: ${code ?? error.message}${hint}`, { cause: error }));
      });
      request.on('response', (response) => {
        refuseUnusable(response, where, mediaType).then(
          () => {
            settled = true;
            resolve(Object.assign(body(response, request, where, () => failure), { close: () => request.destroy() }));
          },
          (error: Error) => {
            request.destroy();
            fail(error);
          },
        );
      });
    });
  }
}

async function* body(response: http.IncomingMessage, request: http.ClientRequest, where: string, failure: () => Error | undefined): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of response) yield chunk as Buffer;
  } catch (error) {
    throw failure() ?? new SourceUnavailable(`lost ${where}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, { cause: error });
  } finally {
    request.destroy();
  }
}

async function refuseUnusable(response: http.IncomingMessage, where: string, mediaType: string): Promise<void> {
  if (response.statusCode !== 200) {
    const text = await readSome(response);
    if (response.statusCode === 410 && problemType(text) === '/problems/resync-required') throw new ResyncRequired(`${where} requires a new snapshot (410 resync-required)`);
    const hint = response.statusCode === 401 || response.statusCode === 403 ? ' (check --mirror-token: it needs a key of scope read)' : '';
    throw new SourceUnavailable(`${where} answered ${response.statusCode}${hint}: ${text.slice(0, 200)}`);
  }
  const type = response.headers['content-type']?.split(';')[0]!.trim();
  if (type !== mediaType) throw new SourceUnavailable(`${where} answered ${type ?? 'no content type'}, expected ${mediaType}`);
}

async function readSome(response: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of response) {
    chunks.push(chunk as Buffer);
    length += (chunk as Buffer).length;
    if (length >= ERROR_BODY_BYTES) break;
  }
  return Buffer.concat(chunks).toString('utf8');
}

function problemType(text: string): unknown {
  try {
    return (JSON.parse(text) as { type?: unknown }).type;
  } catch {
    return undefined;
  }
}
