import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { FeedStore, LoggedChange } from '../store/feed.js';
import { changeMessage, type SignedChangeFields, type SigningKey } from './signing.js';

/** A change as the feed publishes it (docs/federation.md). */
export interface SignedChange extends SignedChangeFields {
  /** Ed25519 over changeMessage(fields), base64. */
  signature: string;
}

export interface ChangeRange {
  changes: SignedChange[];
  /** Where the next range starts: the last version returned when the range is full, else the end of the range. */
  next: number;
}

/** The reader's position cannot be continued from here; it must start again from a snapshot. */
export class ResyncRequired extends Error {}

/**
 * Signing takes ~35 µs of CPU: a 10 000-change page would hold the event loop for a third of a
 * second, delaying every other request and stream. Yielding this often keeps each slice short.
 */
const SIGNATURES_PER_SLICE = 500;

/** Reads settled changes from the log and signs them. */
export class ChangeReader {
  constructor(
    private readonly store: FeedStore,
    private readonly key: SigningKey,
  ) {}

  /**
   * Changes with `after < version <= through` (`through` settled), in version order, at most `limit`.
   * Throws ResyncRequired when the log no longer reaches back to `after`, or when `after` is beyond
   * every version this database has issued (it was restored from an older backup).
   */
  async read(after: number, through: number, limit: number): Promise<ChangeRange> {
    const range = await this.store.changes(after, through, limit);
    if (after < range.trimmedThrough) {
      throw new ResyncRequired(`the change log no longer reaches back to version ${after} (trimmed through ${range.trimmedThrough})`);
    }
    if (after > range.issued) throw new ResyncRequired(`version ${after} is beyond every version this directory has issued (${range.issued})`);
    const changes: SignedChange[] = [];
    // Each entry names the change before it in the log, whatever the reader's `after`: the same
    // entry is signed the same for every reader, and one kept from a reader shows at the next.
    let previous = range.before;
    for (const logged of range.changes) {
      if (changes.length % SIGNATURES_PER_SLICE === SIGNATURES_PER_SLICE - 1) await yieldToEventLoop();
      changes.push(this.sign(logged, previous));
      previous = logged.version;
    }
    const full = changes.length === limit;
    return { changes, next: full ? changes.at(-1)!.version : Math.max(after, through) };
  }

  private sign(logged: LoggedChange, previous: number): SignedChange {
    const fields: SignedChangeFields = {
      version: logged.version,
      previous,
      atsign: logged.atsign,
      host: logged.host,
      port: logged.port,
      status: logged.status,
      changedAt: logged.changedAt.toISOString(),
    };
    return { ...fields, signature: this.key.sign(changeMessage(fields)) };
  }
}
