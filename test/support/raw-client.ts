import net from 'node:net';
import tls from 'node:tls';

/**
 * A protocol client that keeps every byte the server sends, so tests can assert the exact wire
 * format, the number of TLS records, and whether and when the server closed.
 */
export class RawClient {
  /** Every chunk received, one per read: answers must each arrive whole. */
  readonly reads: Buffer[] = [];
  readonly closed: Promise<void>;
  /** The latest TLS session ticket the server sent, to offer on a later connection. */
  session: Buffer | undefined;
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: tls.TLSSocket) {
    socket.on('session', (session: Buffer) => (this.session = session));
    socket.on('data', (chunk: Buffer) => {
      this.reads.push(chunk);
      for (const wake of this.waiters.splice(0)) wake();
    });
    socket.on('error', () => undefined);
    this.closed = new Promise((resolve) => socket.once('close', () => {
      resolve();
      for (const wake of this.waiters.splice(0)) wake();
    }));
  }

  /** `localAddress` (another 127.x address) makes the connection come from a different client. */
  static connect(port: number, host = '127.0.0.1', localAddress?: string, session?: Buffer): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const tcp = net.connect({ host, port, localAddress });
      let client: RawClient | undefined;
      const socket = tls.connect({ socket: tcp, session, rejectUnauthorized: false }, () => resolve(client!));
      // Made before the handshake, so that a session ticket sent with it is not missed.
      client = new RawClient(socket);
      socket.once('error', reject);
    });
  }

  /** Connects and waits for the `@` prompt. */
  static async prompted(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawClient> {
    const client = await RawClient.connect(port, host, localAddress);
    await client.waitForReads(1);
    return client;
  }

  get text(): string {
    return Buffer.concat(this.reads).toString('utf8');
  }

  get bytes(): Buffer {
    return Buffer.concat(this.reads);
  }

  get isClosed(): boolean {
    return this.socket.destroyed || this.socket.readableEnded;
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Waits until `done` holds, the connection closes, or time runs out; the test asserts after. */
  async waitUntil(done: () => boolean, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done() && !this.isClosed && Date.now() < deadline) await this.nextEvent(deadline - Date.now());
  }

  /** Waits until at least `count` reads have arrived. */
  async waitForReads(count: number, timeoutMs = 5000): Promise<void> {
    await this.waitUntil(() => this.reads.length >= count, timeoutMs);
  }

  /** Waits for at least as many bytes as `expected` has, and returns all received text. */
  async waitForText(expected: string, timeoutMs = 5000): Promise<string> {
    const length = Buffer.byteLength(expected);
    await this.waitUntil(() => this.bytes.length >= length, timeoutMs);
    return this.text;
  }

  /** Sends one lookup and returns its answer without the trailing `\r\n@`. */
  async ask(atsign: string): Promise<string> {
    const before = this.bytes.length;
    this.send(`${atsign}\n`);
    await this.waitUntil(() => this.bytes.length > before && this.text.endsWith('\r\n@'));
    return this.bytes.subarray(before).toString().replace(/\r\n@$/, '');
  }

  close(): void {
    this.socket.destroy();
  }

  private nextEvent(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, timeoutMs));
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

/** A plain TCP connection that never starts TLS, like a load-balancer probe. */
export function connectTcp(port: number, host = '127.0.0.1', localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, localAddress }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** One lookup on a new connection, ending with `@exit` as the Dart SDK does; returns every byte received. */
export async function lookupOnce(port: number, atsign: string): Promise<string> {
  const client = await RawClient.connect(port);
  client.send(`${atsign}\n@exit\n`);
  await client.closed;
  return client.text;
}
