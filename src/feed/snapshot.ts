import { createHash } from 'node:crypto';
import type { SnapshotCursor } from '../store/feed.js';
import { snapshotMessage, type SigningKey } from './signing.js';

/** Records per FETCH, and per chunk written: about 100 KB. */
const BATCH = 1000;

/**
 * The NDJSON lines of a snapshot (docs/federation.md): a header, every record the cursor reads,
 * and an end line with the last change at or below `version` (where a reader's chain of changes
 * starts), the records' count, their SHA-256 (over the record lines exactly as sent) and a
 * signature over all three. `version` must have settled before the cursor's transaction took its
 * snapshot, so every change up to it is reflected. Closes the cursor when it ends; one that ends
 * early (the client left) never sends its end line, so no reader can mistake it for whole.
 */
export async function* snapshotLines(cursor: SnapshotCursor, version: number, key: SigningKey): AsyncGenerator<string> {
  try {
    yield `${JSON.stringify({ type: 'snapshot', version, publicKey: key.publicKey, createdAt: new Date().toISOString() })}\n`;
    const digest = createHash('sha256');
    let count = 0;
    for (;;) {
      const records = await cursor.next(BATCH);
      if (records.length === 0) break;
      let chunk = '';
      for (const { atsign, host, port, status, version: recordVersion } of records) {
        chunk += `${JSON.stringify({ type: 'record', atsign, host, port, status, version: recordVersion })}\n`;
      }
      digest.update(chunk);
      count += records.length;
      yield chunk;
    }
    const sha256 = digest.digest('hex');
    const lastChange = await cursor.lastChangeThrough(version);
    yield `${JSON.stringify({ type: 'end', version, lastChange, count, sha256, signature: key.sign(snapshotMessage({ version, lastChange, count, sha256 })) })}\n`;
  } finally {
    await cursor.close();
  }
}
