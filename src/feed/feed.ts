import { Readable } from 'node:stream';
import type pg from 'pg';
import type { Logger } from 'pino';
import { FeedStore, SnapshotCursor } from '../store/feed.js';
import { ChangeReader, type SignedChange } from './changes.js';
import type { EventStream } from './event-stream.js';
import { HorizonProbe } from './horizon.js';
import { feedChangesSent, feedSnapshots } from './metrics.js';
import { ChangePublisher } from './publisher.js';
import { snapshotLines } from './snapshot.js';
import type { SigningKey } from './signing.js';

/** Snapshots streamed at once; each holds a connection of the snapshot pool for as long as its client reads. */
export const MAX_SNAPSHOT_STREAMS = 4;

export interface ChangeFeedOptions {
  /** For the horizon probe and change reads: short queries. */
  pool: pg.Pool;
  /** For snapshots: at least MAX_SNAPSHOT_STREAMS connections, held while a client reads. */
  snapshotPool: pg.Pool;
  signingKey: SigningKey;
  logger: Logger;
  /** Default 100 ms. */
  probeIntervalMs?: number;
  /** Default 15 s. */
  keepaliveMs?: number;
  /** Unsent stream bytes beyond which a subscriber is dropped; default 1 MiB. */
  maxBufferedBytes?: number;
}

export interface ChangePage {
  changes: SignedChange[];
  next: number;
  settled: number;
}

/** No version has settled yet: the database has not answered a probe since start, or a transaction has been open since. */
export class FeedNotSettled extends Error {
  constructor() {
    super('no version has settled yet: the database has not answered since this process started, or a write transaction has been open since');
  }
}

/** Every snapshot connection is streaming. */
export class SnapshotsBusy extends Error {
  constructor() {
    super(`${MAX_SNAPSHOT_STREAMS} snapshots are already being streamed; retry shortly`);
  }
}

/** Every version after `after`, in version order, `after < version <= settled` (docs/federation.md, "Change feed"). */
export class ChangeFeed {
  readonly identity: { algorithm: 'Ed25519'; publicKey: string; keyId: string };
  private readonly store: FeedStore;
  private readonly reader: ChangeReader;
  private readonly horizon: HorizonProbe;
  private readonly publisher: ChangePublisher;
  private readonly snapshots = new Set<Readable>();
  private snapshotsOpening = 0;

  constructor(private readonly options: ChangeFeedOptions) {
    const { signingKey, logger } = options;
    this.identity = { algorithm: 'Ed25519', publicKey: signingKey.publicKey, keyId: signingKey.keyId };
    this.store = new FeedStore(options.pool);
    this.reader = new ChangeReader(this.store, signingKey);
    this.publisher = new ChangePublisher({
      reader: this.reader,
      logger,
      keepaliveMs: options.keepaliveMs ?? 15_000,
      maxBufferedBytes: options.maxBufferedBytes ?? 1024 * 1024,
    });
    this.horizon = new HorizonProbe({
      read: () => this.store.readHorizon(),
      intervalMs: options.probeIntervalMs ?? 100,
      logger,
      onAdvance: (settled) => this.publisher.advance(settled),
    });
  }

  /** Starts following the horizon; resolves after the first probe, which usually settles a version. */
  async start(): Promise<void> {
    this.publisher.start();
    await this.horizon.start();
  }

  /** Stops the probe and closes every stream and snapshot. */
  stop(): void {
    this.horizon.stop();
    this.publisher.stop();
    for (const snapshot of this.snapshots) snapshot.destroy();
  }

  /** One page of changes after `after`. Throws ResyncRequired, FeedNotSettled. */
  async page(after: number, limit: number): Promise<ChangePage> {
    const settled = this.settled();
    const range = await this.reader.read(after, settled, limit);
    feedChangesSent.inc({ via: 'page' }, range.changes.length);
    return { changes: range.changes, next: range.next, settled };
  }

  /** A stream of changes after `after`, live as they settle. Throws ResyncRequired, FeedNotSettled. */
  async subscribe(after: number): Promise<EventStream> {
    this.settled();
    return this.publisher.subscribe(after);
  }

  /**
   * A snapshot as NDJSON lines. The transaction starts only after the version it reports has
   * settled, so it reflects every change up to that version. Throws SnapshotsBusy, FeedNotSettled,
   * or the database's error, before the first line.
   */
  async snapshot(): Promise<Readable> {
    if (this.snapshots.size + this.snapshotsOpening >= MAX_SNAPSHOT_STREAMS) {
      feedSnapshots.inc({ result: 'refused' });
      throw new SnapshotsBusy();
    }
    const version = this.settled();
    // Counted from here, so that requests arriving together cannot all pass the check above.
    this.snapshotsOpening++;
    let cursor: SnapshotCursor;
    try {
      cursor = await SnapshotCursor.open(this.options.snapshotPool);
    } catch (error) {
      feedSnapshots.inc({ result: 'aborted' });
      throw error;
    } finally {
      this.snapshotsOpening--;
    }
    const stream = Readable.from(snapshotLines(cursor, version, this.options.signingKey), { objectMode: false });
    this.snapshots.add(stream);
    let completed = false;
    stream.once('end', () => (completed = true));
    stream.once('close', () => {
      this.snapshots.delete(stream);
      feedSnapshots.inc({ result: completed ? 'completed' : 'aborted' });
      // The generator closes its cursor itself, unless it was destroyed before it ever ran.
      void cursor.close();
    });
    return stream;
  }

  private settled(): number {
    const settled = this.horizon.settled;
    if (settled === undefined) throw new FeedNotSettled();
    return settled;
  }
}
