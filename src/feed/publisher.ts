import type { Logger } from 'pino';
import { ResyncRequired, type ChangeReader } from './changes.js';
import { EventStream, changeEvent } from './event-stream.js';
import { feedSubscribers } from './metrics.js';

/** Changes read per query, by the shared reader and by a subscriber catching up. */
const BATCH = 1000;
/** After a failed read, the shared reader tries again this much later even if the horizon stays put. */
const RETRY_MS = 1000;

export interface ChangePublisherOptions {
  reader: ChangeReader;
  logger: Logger;
  /** Interval of the `: keepalive` comment on every stream. */
  keepaliveMs: number;
  /** Unsent bytes beyond which a subscriber that stopped reading is dropped. */
  maxBufferedBytes: number;
}

/**
 * Fans settled changes out to every stream subscriber. One shared reader fetches each newly settled
 * range once, whatever the number of subscribers, and only while there are some. A new subscriber
 * first catches up from the log on its own, at its own pace, then joins the live fan-out at the
 * position the shared reader has reached.
 */
export class ChangePublisher {
  /** Every change up to here has been handed to the live subscribers. */
  private position: number | undefined;
  /** The settled horizon to reach. */
  private target = 0;
  private reading = false;
  private failing = false;
  private stopped = false;
  private retry: NodeJS.Timeout | undefined;
  private keepalive: NodeJS.Timeout | undefined;
  /** Every open stream, catching up or live. */
  private readonly streams = new Set<EventStream>();
  /** Streams that have caught up and receive from the shared reader. */
  private readonly live = new Set<EventStream>();

  constructor(private readonly options: ChangePublisherOptions) {}

  start(): void {
    this.keepalive = setInterval(() => {
      for (const stream of this.streams) stream.sendKeepalive();
    }, this.options.keepaliveMs);
    this.keepalive.unref();
  }

  /** Closes every stream: their clients reconnect (elsewhere, or here once we are back). */
  stop(): void {
    this.stopped = true;
    clearInterval(this.keepalive);
    clearTimeout(this.retry);
    for (const stream of this.streams) stream.destroy();
  }

  /** The horizon settled further. */
  advance(settled: number): void {
    if (this.stopped) return;
    if (this.position === undefined) this.position = settled;
    this.target = Math.max(this.target, settled);
    if (!this.reading) void this.publish();
  }

  /**
   * Opens a stream for a client that has seen everything up to `after`. Its first changes are read
   * before it is returned, so a position the log cannot continue from throws ResyncRequired while
   * the client can still be told so with a status code.
   */
  async subscribe(after: number): Promise<EventStream> {
    if (this.position === undefined) throw new Error('subscribe before the horizon settled');
    const first = await this.options.reader.read(after, this.position, BATCH);
    const stream = new EventStream(after, this.options.maxBufferedBytes);
    this.streams.add(stream);
    feedSubscribers.set(this.streams.size);
    stream.once('close', () => {
      this.streams.delete(stream);
      this.live.delete(stream);
      feedSubscribers.set(this.streams.size);
    });
    for (const change of first.changes) stream.sendChange(changeEvent(change));
    void this.catchUp(stream, first.next);
    return stream;
  }

  private async catchUp(stream: EventStream, from: number): Promise<void> {
    let cursor = from;
    try {
      for (;;) {
        await stream.readerReady();
        if (stream.destroyed) return;
        // From this check to joining `live` nothing awaits, so the shared reader cannot move in between.
        if (cursor >= this.position!) break;
        const range = await this.options.reader.read(cursor, this.position!, BATCH);
        for (const change of range.changes) stream.sendChange(changeEvent(change));
        cursor = range.next;
      }
      stream.sendSettled(cursor);
      this.live.add(stream);
    } catch (error) {
      // The client reconnects with its Last-Event-ID and learns what went wrong (410, 503) then.
      if (!(error instanceof ResyncRequired)) this.options.logger.warn({ err: error }, 'change stream could not catch up; closed');
      stream.destroy();
    }
  }

  /** The shared reader: brings the live subscribers up to the target. */
  private async publish(): Promise<void> {
    this.reading = true;
    clearTimeout(this.retry);
    try {
      while (this.position! < this.target) {
        const through = this.target;
        if (this.live.size === 0) {
          this.position = through;
          continue;
        }
        const range = await this.options.reader.read(this.position!, through, BATCH);
        const events = range.changes.map(changeEvent);
        for (const stream of this.live) for (const event of events) stream.sendChange(event);
        this.position = range.next;
      }
      for (const stream of this.live) stream.sendSettled(this.position!);
      if (this.failing) this.options.logger.info('change feed publisher recovered');
      this.failing = false;
    } catch (error) {
      if (error instanceof ResyncRequired) {
        // The log was trimmed past the live edge: every live subscriber has missed changes.
        this.options.logger.warn({ err: error }, 'change log trimmed past the live subscribers; closing their streams');
        for (const stream of this.live) stream.destroy();
        this.position = this.target;
      } else {
        if (!this.failing) this.options.logger.warn({ err: error }, 'change feed publisher cannot read the log; retrying');
        this.failing = true;
        this.retry = setTimeout(() => this.advance(this.target), RETRY_MS);
        this.retry.unref();
      }
    } finally {
      this.reading = false;
    }
  }
}
