import type pg from 'pg';
import { upsertBatch, type ImportBatch } from '../store/import.js';
import { inTransaction } from '../store/transaction.js';
import { isCsvHeader, isLineFailure, parseLine, sniffFormat, type ImportFormat, type LineFailure } from './format.js';
import { readLines } from './lines.js';

export interface ImportOptions {
  /** Taken from the first non-blank line when not given. */
  format?: ImportFormat;
  /** All or nothing: one transaction, rolled back if any line fails. */
  atomic: boolean;
  /** Owner of the atsigns the import creates; null leaves them to admin keys. */
  registrar: string | null;
  /** Only atsigns this registrar owns (or new ones) may be replaced; undefined allows any. */
  owner?: string;
  /** Recorded in atsign_history: an API key id, or "cli". */
  actor: string;
  /** Largest input in bytes. */
  maxBytes: number;
  /** Records per statement (default 1000). */
  batchSize?: number;
  /** Line errors kept for the report (default 1000); `failed` counts them all. */
  maxReportedErrors?: number;
  /** Called after every batch, and for every chunk read. */
  onProgress?: (progress: ImportProgress) => void;
}

export interface ImportProgress {
  bytes: number;
  lines: number;
  applied: number;
  failed: number;
}

export interface LineError {
  line: number;
  /** A problem slug of the admin API (`/problems/<slug>`). */
  problem: LineFailure['problem'];
  detail: string;
  /** The normalised atsign, when the line had a valid one. */
  atsign?: string;
}

export interface ImportReport {
  format: ImportFormat;
  atomic: boolean;
  /** Lines read, blank lines and a CSV header included. */
  lines: number;
  created: number;
  replaced: number;
  failed: number;
  errors: LineError[];
  /** True when more lines failed than `errors` holds. */
  errorsTruncated: boolean;
}

/** Stops an import part-way (database lost, input too large, client gone), with what was done. */
export class ImportInterrupted extends Error {
  constructor(
    readonly report: ImportReport,
    cause: unknown,
  ) {
    super(`import stopped after line ${report.lines}: ${(cause as Error).message}`, { cause });
  }
}

/** Thrown inside the atomic transaction so that it rolls back. */
class AtomicRefused extends Error {}

const LINE_LIMIT = 4096;

/**
 * Streams an import into the directory: lines are parsed and validated one at a time, valid records
 * are written in batches (one multi-row statement each), and every refused line is reported with
 * its number. Without `atomic`, each batch commits on its own and bad lines do not stop the rest.
 * With it, everything is one transaction and any bad line rolls all of it back. History rows say
 * `import`; lookups learn of every change through the usual notification.
 */
export async function importRecords(pool: pg.Pool, source: AsyncIterable<Buffer | string>, options: ImportOptions): Promise<ImportReport> {
  const batchSize = options.batchSize ?? 1000;
  const maxErrors = options.maxReportedErrors ?? 1000;
  const report: ImportReport = { format: options.format ?? 'csv', atomic: options.atomic, lines: 0, created: 0, replaced: 0, failed: 0, errors: [], errorsTruncated: false };
  const progress: ImportProgress = { bytes: 0, lines: 0, applied: 0, failed: 0 };
  const context = { actor: options.actor, action: 'import' };

  const fail = (line: number, failure: LineFailure, atsign?: string) => {
    report.failed++;
    if (report.errors.length < maxErrors) report.errors.push({ line, problem: failure.problem, detail: failure.detail, ...(atsign ? { atsign } : {}) });
    else report.errorsTruncated = true;
  };

  let batch: ImportBatch & { lines: number[] } = { atsigns: [], hosts: [], ports: [], lines: [] };
  let inBatch = new Set<string>();
  const flush = async (client?: pg.PoolClient) => {
    if (batch.atsigns.length === 0) return;
    const pending = batch;
    batch = { atsigns: [], hosts: [], ports: [], lines: [] };
    inBatch = new Set();
    const write = (c: pg.PoolClient) => upsertBatch(c, pending, options.registrar, options.owner);
    const written = client ? await write(client) : await inTransaction(pool, context, write);
    pending.atsigns.forEach((atsign, index) => {
      const created = written.get(atsign);
      if (created === undefined) fail(pending.lines[index]!, { problem: 'forbidden', detail: 'this atsign belongs to another registrar' }, atsign);
      else if (created) report.created++;
      else report.replaced++;
    });
    progress.applied = report.created + report.replaced;
    progress.failed = report.failed;
    options.onProgress?.(progress);
  };

  const run = async (client?: pg.PoolClient) => {
    let first = true;
    const lines = readLines(source, {
      maxLineBytes: LINE_LIMIT,
      maxBytes: options.maxBytes,
      onBytes: (bytes) => {
        progress.bytes += bytes;
        options.onProgress?.(progress);
      },
    });
    for await (const line of lines) {
      report.lines = progress.lines = line.number;
      if ('failure' in line) {
        fail(line.number, line.failure);
        continue;
      }
      if (line.text.trim() === '') continue;
      if (first) {
        first = false;
        report.format = options.format ?? sniffFormat(line.text);
        if (report.format === 'csv' && isCsvHeader(line.text)) continue;
      }
      const parsed = parseLine(report.format, line.text);
      if (isLineFailure(parsed)) {
        fail(line.number, parsed);
        continue;
      }
      // Atomic imports stop writing at the first failure but read on, to report every bad line.
      if (options.atomic && report.failed > 0) continue;
      if (inBatch.has(parsed.atsign)) await flush(client);
      inBatch.add(parsed.atsign);
      batch.atsigns.push(parsed.atsign);
      batch.hosts.push(parsed.host);
      batch.ports.push(parsed.port);
      batch.lines.push(line.number);
      if (batch.atsigns.length >= batchSize) await flush(client);
    }
    if (!(options.atomic && report.failed > 0)) await flush(client);
  };

  try {
    if (!options.atomic) {
      await run();
      return report;
    }
    await inTransaction(pool, context, async (client) => {
      await run(client);
      if (report.failed > 0) throw new AtomicRefused();
    });
    return report;
  } catch (error) {
    if (error instanceof AtomicRefused) return { ...report, created: 0, replaced: 0 };
    if (options.atomic) throw new ImportInterrupted({ ...report, created: 0, replaced: 0 }, error);
    throw new ImportInterrupted(report, error);
  }
}
