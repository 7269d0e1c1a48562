import type { Socket } from 'node:net';
import { Admission, type AdmissionOptions } from './admission.js';
import { connectionsTotal, rejectedBy } from './metrics.js';

/**
 * The accept side of a public port (port 64, HTTPS lookups): the admission limits, applied before
 * any TLS work, and the sockets admitted, so a drain can cut what is left at its deadline.
 */
export class SocketGate {
  private readonly admission: Admission;
  private readonly sockets = new Set<Socket>();

  constructor(options: AdmissionOptions) {
    this.admission = new Admission(options);
  }

  /** True while new connections are being shed because the event loop is too slow. */
  get overloaded(): boolean {
    return this.admission.overloaded;
  }

  /** Admits the socket, tracked until it closes, or resets it; false when refused. */
  admit(socket: Socket): boolean {
    connectionsTotal.inc();
    const client = this.admission.clientOf(socket.remoteAddress);
    const refusal = this.admission.admit(client);
    if (refusal !== undefined) {
      rejectedBy[refusal].inc();
      // A reset, not a goodbye: no TLS, no TIME_WAIT on our side, nothing for a flood to hold.
      socket.resetAndDestroy();
      return false;
    }
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.admission.release(client);
    });
    return true;
  }

  /**
   * Waits for the server to close; past the deadline, destroys the sockets still open (each counted
   * as `drain_deadline`, after `onDeadline` is told how many) and waits again. Then stops admission.
   */
  async drain(closed: Promise<void>, drainTimeoutMs: number, onDeadline: (open: number) => void): Promise<void> {
    const deadline = new Promise<'timeout'>((resolve) => setTimeout(resolve, drainTimeoutMs, 'timeout').unref());
    if ((await Promise.race([closed, deadline])) === 'timeout') {
      onDeadline(this.sockets.size);
      for (const socket of this.sockets) {
        rejectedBy.drain_deadline.inc();
        socket.destroy();
      }
      await closed;
    }
    this.admission.stop();
  }
}
