import type { RawClient } from './raw-client.js';

/**
 * Only a notification can make another process follow a write this fast: without one it would wait
 * for the cache's TTL (30 s for a cached null, 10 min for an answer). The design's 100 ms p99 is a
 * benchmark figure, not a test deadline: a loaded 2-core CI machine once took 153 ms.
 */
export const NOTIFIED_WITHIN_MS = 1000;

/** Milliseconds from `since` until the client answers `expected` for `atsign`, asking back to back (Infinity after 5 s). */
export async function timeUntil(client: RawClient, atsign: string, expected: string, since: number): Promise<number> {
  while (performance.now() - since < 5000) {
    if ((await client.ask(atsign)) === expected) return performance.now() - since;
  }
  return Infinity;
}
