import { createHash } from 'node:crypto';
import { snapshotMessage, type SignatureVerifier } from '../feed/signing.js';
import { recordOf, type MirroredRecord } from './change.js';

/** The snapshot fails verification; whatever was staged from it must be discarded. */
export class SnapshotRefused extends Error {}

export interface VerifiedSnapshot {
  /** Every change up to this version is reflected: follow the feed from here. */
  version: number;
  /** The last change at or below `version`: what the next change must name as its `previous`. */
  lastChange: number;
  count: number;
}

const NEWLINE = 0x0a;
/** Far above any real line (a record is a few hundred bytes); bounds memory against a broken source. */
const MAX_LINE_BYTES = 64 * 1024;

/**
 * Reads a `GET /v1/snapshot` body (NDJSON: a `snapshot` line, `record` lines, an `end` line) as it
 * arrives, handing records to `stage` in batches so that a snapshot of any size costs bounded
 * memory. Resolves only once the `end` line has been checked: the count, the SHA-256 of the record
 * lines exactly as received, the version, the last change, and the signature. Throws SnapshotRefused otherwise;
 * the caller must then discard everything staged.
 */
export async function readSnapshot(
  body: AsyncIterable<Uint8Array>,
  verifier: SignatureVerifier,
  stage: (records: MirroredRecord[]) => Promise<void>,
  batchSize = 5000,
): Promise<VerifiedSnapshot> {
  const digest = createHash('sha256');
  let header: { version: number } | undefined;
  let verified: VerifiedSnapshot | undefined;
  let count = 0;
  let batch: MirroredRecord[] = [];

  const takeLine = async (line: Buffer): Promise<void> => {
    if (verified) throw new SnapshotRefused('the snapshot continues after its end line');
    const entry = parseLine(line);
    if (!header) {
      header = headerOf(entry, verifier);
      return;
    }
    if (entry.type === 'end') {
      verified = verifyEnd(entry, header.version, count, digest.digest('hex'), verifier);
      return;
    }
    if (entry.type !== 'record') throw new SnapshotRefused(`expected a record or end line, got type ${JSON.stringify(entry.type)}`);
    const record = recordOf(entry);
    if (typeof record === 'string') throw new SnapshotRefused(record);
    digest.update(line);
    digest.update('\n');
    count++;
    batch.push(record);
    if (batch.length >= batchSize) {
      await stage(batch);
      batch = [];
    }
  };

  let carry = Buffer.alloc(0);
  for await (const chunk of body) {
    let data = carry.length === 0 ? Buffer.from(chunk) : Buffer.concat([carry, chunk]);
    let newline: number;
    while ((newline = data.indexOf(NEWLINE)) !== -1) {
      await takeLine(data.subarray(0, newline));
      data = data.subarray(newline + 1);
    }
    if (data.length > MAX_LINE_BYTES) throw new SnapshotRefused(`a snapshot line is longer than ${MAX_LINE_BYTES} bytes`);
    carry = data;
  }
  // The end line is the last; it may come without its newline.
  if (carry.length > 0) await takeLine(carry);
  if (!verified) throw new SnapshotRefused(header ? `the snapshot ended after ${count} records without its end line` : 'the snapshot is empty');
  if (batch.length > 0) await stage(batch);
  return verified;
}

function parseLine(line: Buffer): Record<string, unknown> {
  let entry: unknown;
  try {
    entry = JSON.parse(line.toString('utf8'));
  } catch {
    throw new SnapshotRefused('a snapshot line is not JSON');
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new SnapshotRefused('a snapshot line is not a JSON object');
  return entry as Record<string, unknown>;
}

function headerOf(entry: Record<string, unknown>, verifier: SignatureVerifier): { version: number } {
  if (entry.type !== 'snapshot') throw new SnapshotRefused('the first line is not the snapshot header');
  if (!Number.isSafeInteger(entry.version) || (entry.version as number) < 0) throw new SnapshotRefused('the snapshot version is not an integer');
  if (entry.publicKey !== verifier.publicKey) {
    throw new SnapshotRefused(`the source signs with public key ${JSON.stringify(entry.publicKey)}, not the --mirror-key given (key id ${verifier.keyId})`);
  }
  return { version: entry.version as number };
}

function verifyEnd(entry: Record<string, unknown>, version: number, count: number, sha256: string, verifier: SignatureVerifier): VerifiedSnapshot {
  if (entry.version !== version) throw new SnapshotRefused(`the end line is for version ${String(entry.version)}, the header for ${version}`);
  const lastChange = entry.lastChange;
  if (!Number.isSafeInteger(lastChange) || (lastChange as number) < 0 || (lastChange as number) > version) {
    throw new SnapshotRefused(`the end line's lastChange is not an integer from 0 to the version ${version}`);
  }
  if (entry.count !== count) throw new SnapshotRefused(`the end line counts ${String(entry.count)} records, ${count} were received`);
  if (entry.sha256 !== sha256) throw new SnapshotRefused('the SHA-256 of the record lines does not match the end line');
  if (!verifier.verify(snapshotMessage({ version, lastChange: lastChange as number, count, sha256 }), entry.signature)) {
    throw new SnapshotRefused(`the end line does not carry a valid signature of key ${verifier.keyId}`);
  }
  return { version, lastChange: lastChange as number, count };
}
