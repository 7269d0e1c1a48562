import { Readable } from 'node:stream';
import type { SignedChange } from './changes.js';
import { feedChangesSent, feedSubscribersDropped } from './metrics.js';

const streamedChanges = feedChangesSent.labels('stream');

/** The Server-Sent Events frame of a change; made once and sent to every subscriber. */
export interface ChangeEvent {
  version: number;
  frame: string;
}

export function changeEvent(change: SignedChange): ChangeEvent {
  return { version: change.version, frame: `id: ${change.version}\nevent: change\ndata: ${JSON.stringify(change)}\n\n` };
}

const KEEPALIVE = ': keepalive\n\n';

/**
 * One subscriber's Server-Sent Events, as the readable side the HTTP response is piped from. It
 * remembers the last id sent, so no change is sent twice and a `settled` event only ever moves the
 * client's resume point forward. A subscriber that stops reading is dropped once its unsent events
 * pass `maxBufferedBytes`: it reconnects with Last-Event-ID and catches up from the log, which
 * costs less than holding an unbounded backlog for it.
 */
export class EventStream extends Readable {
  private waitingForReader: (() => void) | undefined;

  constructor(
    /** The resume point the client holds: `after`, then each id sent. */
    private lastId: number,
    private readonly maxBufferedBytes: number,
  ) {
    super({ encoding: 'utf8' });
    // Sent at once, so the client has the response headers before the first event.
    this.push(KEEPALIVE);
  }

  get position(): number {
    return this.lastId;
  }

  sendChange(event: ChangeEvent): void {
    if (event.version <= this.lastId) return;
    this.lastId = event.version;
    streamedChanges.inc();
    this.enqueue(event.frame);
  }

  /** Moves the client's resume point past versions that carried no change. */
  sendSettled(settled: number): void {
    if (settled <= this.lastId) return;
    this.lastId = settled;
    this.enqueue(`id: ${settled}\nevent: settled\ndata: {"settled":${settled}}\n\n`);
  }

  sendKeepalive(): void {
    this.enqueue(KEEPALIVE);
  }

  /** Resolves once the client has taken what is buffered (or the stream is closed): for catching up at its pace. */
  readerReady(): Promise<void> {
    if (this.destroyed || this.readableLength < this.readableHighWaterMark) return Promise.resolve();
    return new Promise((resolve) => {
      const ready = () => {
        this.waitingForReader = undefined;
        this.off('close', ready);
        resolve();
      };
      this.waitingForReader = ready;
      this.once('close', ready);
    });
  }

  override _read(): void {
    this.waitingForReader?.();
  }

  private enqueue(text: string): void {
    if (this.destroyed) return;
    this.push(text);
    if (this.readableLength > this.maxBufferedBytes) {
      feedSubscribersDropped.inc();
      this.destroy();
    }
  }
}
