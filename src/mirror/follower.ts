import type { Logger } from 'pino';
import type { SignatureVerifier } from '../feed/signing.js';
import { chainLink, verifyChange, type FeedChange, type RefusalReason } from './change.js';
import { mirrorChangesApplied, mirrorChangesRefused, mirrorConnected, mirrorSnapshots, mirrorVersion, reportLag } from './metrics.js';
import { readSnapshot, SnapshotRefused } from './snapshot.js';
import { ResyncRequired, SourceClient, type SourceStream } from './source-client.js';
import { EventStreamParser, type ServerSentEvent } from './sse.js';
import type { MirrorStore, StoredSource } from './store.js';

/** What GET /v1/mirror reports of one source. */
export interface SourceStatus {
  url: string;
  keyId: string;
  /** Precedence: 0 for the first --mirror, which wins an atsign several sources have. */
  position: number;
  /** The source's feed version applied here; null until the first snapshot. */
  versionApplied: number | null;
  snapshotVersion: number | null;
  snapshotAt: string | null;
  /** snapshot: reading one; following: the change stream is open; retrying: waiting to try again. */
  state: 'snapshot' | 'following' | 'retrying';
  connected: boolean;
  lastError: string | null;
  lastErrorAt: string | null;
  /** See atdirectory_mirror_lag_seconds; null until the first snapshot. */
  lagSeconds: number | null;
}

export interface FollowedSource {
  url: string;
  position: number;
  /** API key (scope read) for the source. */
  token: string;
  verifier: SignatureVerifier;
  stored: StoredSource;
}

/** A change failed verification or broke the chain: nothing from it on is applied until the source is asked again. */
class ChangeRefused extends Error {}

const FIRST_RETRY_MS = 250;
/** Changes per transaction while catching up; live changes come a few at a time. */
const MAX_BATCH = 1000;
/**
 * A horizon that moved past versions without changes is written down at most this often: losing it
 * costs only a replay of the same empty range after a restart.
 */
const PERSIST_SETTLED_EVERY_MS = 10_000;

/**
 * Follows one source: a verified snapshot when there is no version to resume from, then the change
 * stream from the version applied, each batch verified, checked to continue the chain of changes
 * (each names its predecessor) and committed with the version it reaches. Every failure (source
 * unreachable, refused data, 410, database) leaves what is stored answering, and is retried with
 * backoff from the last version committed.
 */
export class SourceFollower {
  private version: number | null;
  /** The last change of the source applied here: the `previous` the next one must name. */
  private lastChange: number | null;
  private snapshotVersion: number | null;
  private snapshotAt: Date | null;
  private persistedAt = 0;
  private state: SourceStatus['state'] = 'retrying';
  private connected = false;
  /** The stream is open and everything received is applied. */
  private waiting = false;
  /** When the mirror last held everything the source had sent (ms). */
  private caughtUpAt: number | undefined;
  private lastError: { message: string; at: Date } | undefined;
  private stopping = false;
  private request: AbortController | undefined;
  private wake: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private readonly client: SourceClient;
  private readonly label: { source: string };
  private readonly stopReportingLag: () => void;

  constructor(
    private readonly source: FollowedSource,
    private readonly store: MirrorStore,
    private readonly options: { retryMaxMs: number; logger: Logger; ca: string | undefined },
  ) {
    this.client = new SourceClient(source.url, source.token, options.ca);
    this.label = { source: source.verifier.keyId };
    this.version = source.stored.versionApplied;
    this.lastChange = source.stored.lastChange;
    this.snapshotVersion = source.stored.snapshotVersion;
    this.snapshotAt = source.stored.snapshotAt;
    // What an earlier run applied was current when it was last written.
    this.caughtUpAt = this.snapshotVersion === null ? undefined : source.stored.updatedAt.getTime();
    if (this.version !== null) mirrorVersion.set(this.label, this.version);
    mirrorConnected.set(this.label, 0);
    this.stopReportingLag = reportLag(this.label.source, () => this.lagSeconds());
  }

  /** Whether a snapshot of this source has been applied, by this run or an earlier one. */
  get hasData(): boolean {
    return this.snapshotVersion !== null;
  }

  start(): void {
    this.running = this.run();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.request?.abort(new Error('the mirror is stopping'));
    this.wake?.();
    await this.running;
    this.setConnected(false);
    this.stopReportingLag();
  }

  status(): SourceStatus {
    return {
      url: this.source.url,
      keyId: this.source.verifier.keyId,
      position: this.source.position,
      versionApplied: this.version,
      snapshotVersion: this.snapshotVersion,
      snapshotAt: this.snapshotAt?.toISOString() ?? null,
      state: this.state,
      connected: this.connected,
      lastError: this.lastError?.message ?? null,
      lastErrorAt: this.lastError?.at.toISOString() ?? null,
      lagSeconds: this.lagSeconds(),
    };
  }

  private async run(): Promise<void> {
    let delay = FIRST_RETRY_MS;
    while (!this.stopping) {
      const request = (this.request = new AbortController());
      // The change stream opened in this attempt: whatever broke it is new, so the retry is quick.
      let flowed = false;
      let failure: unknown;
      try {
        if (this.version === null) await this.snapshot(request.signal);
        await this.follow(request.signal, () => (flowed = true));
        this.options.logger.info({ source: this.source.url }, 'the mirror source ended its change stream; reconnecting');
      } catch (error) {
        if (this.stopping) break;
        // Refused data is no network blip: it is asked for again only as the backoff allows.
        if (error instanceof ChangeRefused) flowed = false;
        failure = error;
      }
      if (flowed) delay = FIRST_RETRY_MS;
      if (failure !== undefined) this.recordFailure(failure, delay);
      await this.pause(delay);
      delay = Math.min(this.options.retryMaxMs, delay * 2);
    }
  }

  private async snapshot(signal: AbortSignal): Promise<void> {
    this.state = 'snapshot';
    let stream: SourceStream | undefined;
    try {
      stream = await this.client.openSnapshot(signal);
      const chunks = stream;
      const verified = await this.store.replaceFromSnapshot(this.storeKey(), (stage) => readSnapshot(chunks, this.source.verifier, stage));
      this.version = verified.version;
      this.lastChange = verified.lastChange;
      this.snapshotVersion = verified.version;
      this.snapshotAt = new Date();
      this.persistedAt = Date.now();
      this.caughtUpAt = Date.now();
      mirrorVersion.set(this.label, verified.version);
      mirrorSnapshots.inc({ ...this.label, result: 'applied' });
      this.options.logger.info({ source: this.source.url, keyId: this.label.source, version: verified.version, records: verified.count }, 'mirror snapshot applied');
    } catch (error) {
      if (!this.stopping) mirrorSnapshots.inc({ ...this.label, result: error instanceof SnapshotRefused ? 'refused' : 'failed' });
      throw error;
    } finally {
      stream?.close();
    }
  }

  /** Applies the change stream until the source ends it (resolves) or something fails (throws). */
  private async follow(signal: AbortSignal, onOpen: () => void): Promise<void> {
    const stream = await this.client.openChanges(this.version!, signal);
    onOpen();
    this.state = 'following';
    this.setConnected(true);
    this.waiting = true;
    const parser = new EventStreamParser();
    try {
      for await (const chunk of stream) {
        this.waiting = false;
        await this.take(parser.push(chunk));
        this.waiting = true;
      }
    } finally {
      stream.close();
      if (this.waiting) this.caughtUpAt = Date.now();
      this.waiting = false;
      this.setConnected(false);
    }
  }

  /** Verifies and applies the events of one read, as few transactions as the batch size allows. */
  private async take(events: ServerSentEvent[]): Promise<void> {
    let batch: FeedChange[] = [];
    let reached = this.version!;
    for (const event of events) {
      if (event.event === 'change') {
        const verdict = verifyChange(event.data, this.source.verifier);
        if ('refused' in verdict) return this.refuse(batch, verdict.refused, verdict.detail);
        const { change } = verdict;
        const lastApplied = batch.at(-1)?.version ?? this.lastChange!;
        const link = chainLink(change, lastApplied);
        // A replay of what is already applied (the stream resumed from an older version).
        if (link === 'applied') continue;
        if (link === 'gap') {
          return this.refuse(batch, 'gap', `change ${change.version} follows change ${change.previous}, but the last change applied here is ${lastApplied}: a change between them did not arrive`);
        }
        batch.push(change);
        // Not the change's version alone: a `settled` event may already have moved past it.
        reached = Math.max(reached, change.version);
        if (batch.length >= MAX_BATCH) {
          await this.commit(batch, reached);
          batch = [];
        }
      } else if (event.event === 'settled') {
        reached = Math.max(reached, settledOf(event));
      }
    }
    await this.commit(batch, reached);
  }

  /**
   * Counts a refused entry and ends the stream. What verified before it is kept. The resume point
   * goes back to the last change applied, durably: an unsigned `settled` event may have moved it
   * past a change that never arrived, and the source is asked again for everything after it.
   */
  private async refuse(batch: FeedChange[], reason: RefusalReason, detail: string): Promise<never> {
    await this.commit(batch, batch.at(-1)?.version ?? this.lastChange!);
    mirrorChangesRefused.inc({ ...this.label, reason });
    throw new ChangeRefused(detail);
  }

  private async commit(batch: FeedChange[], reached: number): Promise<void> {
    if (batch.length === 0) {
      if (reached === this.version) return;
      // Moving forward past versions without changes costs only a replay of an empty range if
      // lost; moving back after a refusal must not be lost.
      if (reached > this.version! && Date.now() - this.persistedAt < PERSIST_SETTLED_EVERY_MS) {
        this.advance(reached);
        return;
      }
    }
    const lastChange = batch.at(-1)?.version ?? this.lastChange!;
    await this.store.applyChanges(this.storeKey(), batch, reached, lastChange);
    this.persistedAt = Date.now();
    this.lastChange = lastChange;
    this.advance(reached);
    if (batch.length > 0) mirrorChangesApplied.inc(this.label, batch.length);
  }

  private advance(version: number): void {
    this.version = version;
    mirrorVersion.set(this.label, version);
  }

  private recordFailure(error: unknown, retryInMs: number): void {
    const message = (error as Error).message ?? String(error);
    this.lastError = { message, at: new Date() };
    this.state = 'retrying';
    const fields = { source: this.source.url, keyId: this.label.source, retryInMs };
    if (error instanceof ChangeRefused || error instanceof SnapshotRefused) {
      this.options.logger.error({ ...fields, reason: message }, 'refused data from a mirror source: nothing of it is applied; asking again later');
    } else if (error instanceof ResyncRequired) {
      this.version = null;
      this.options.logger.warn(fields, 'the mirror source no longer reaches back to the version applied here: reading a new snapshot');
    } else {
      this.options.logger.warn({ ...fields, reason: message }, 'mirror source unavailable; still answering what is stored, retrying');
    }
  }

  private lagSeconds(): number | null {
    if (this.caughtUpAt === undefined) return null;
    if (this.connected && this.waiting) return 0;
    return Math.max(0, Date.now() - this.caughtUpAt) / 1000;
  }

  private setConnected(connected: boolean): void {
    this.connected = connected;
    mirrorConnected.set(this.label, connected ? 1 : 0);
  }

  private storeKey(): { id: number; keyId: string } {
    return { id: this.source.stored.id, keyId: this.label.source };
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.stopping) return resolve();
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/**
 * The horizon a `settled` event moves to; unsigned, so only ever a resume point, never data. A
 * forged one that jumps past a change is caught by the next change, whose `previous` names it.
 */
function settledOf(event: ServerSentEvent): number {
  try {
    const settled = (JSON.parse(event.data) as { settled?: unknown }).settled;
    return Number.isSafeInteger(settled) ? (settled as number) : 0;
  } catch {
    return 0;
  }
}
