import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname } from 'node:path';
import { ConfigError, type Config } from '../config.js';
import type { ImportFormat } from '../import/format.js';
import { ImportInterrupted, importRecords, type ImportProgress, type ImportReport } from '../import/importer.js';
import { withDatabase } from './with-database.js';

const FORMAT_BY_EXTENSION: Record<string, ImportFormat> = { '.csv': 'csv', '.ndjson': 'ndjson', '.jsonl': 'ndjson' };

/**
 * `atdirectory import <file>`: the admin API's bulk import, straight into the database (history
 * actor "cli"). `-` reads standard input. A progress bar is drawn on stderr when it is a terminal;
 * refused lines and the summary go to stdout. Exits 0 when every line was applied, 1 otherwise.
 */
export async function importCommand(config: Config, positionals: string[]): Promise<number> {
  if (positionals.length !== 1) throw new ConfigError('import takes exactly one file (or - for standard input), e.g. `atdirectory import atsigns.csv`');
  const file = positionals[0]!;
  const size = file === '-' ? undefined : await stat(file).then(
    (info) => info.size,
    (error: Error) => {
      throw new Error(`cannot read ${file}: ${error.message}`);
    },
  );
  const source = file === '-' ? process.stdin : createReadStream(file);
  const bar = process.stderr.isTTY ? new ProgressBar(size) : undefined;

  return withDatabase(config, 'atdirectory-import', async (pool) => {
    let report: ImportReport;
    try {
      report = await importRecords(pool, source, {
        format: FORMAT_BY_EXTENSION[extname(file).toLowerCase()],
        atomic: config.atomic,
        registrar: config.registrar || null,
        actor: 'cli',
        maxBytes: Number.POSITIVE_INFINITY,
        onProgress: bar && ((progress) => bar.draw(progress)),
      });
    } catch (error) {
      bar?.clear();
      if (!(error instanceof ImportInterrupted)) throw error;
      printErrors(error.report);
      const applied = error.report.created + error.report.replaced;
      throw new Error(`${(error.cause as Error).message}; the import stopped at line ${error.report.lines} with ${applied} records applied`);
    }
    bar?.clear();
    printErrors(report);
    const outcome = report.atomic && report.failed > 0 ? 'nothing applied (--atomic)' : `${report.created} created, ${report.replaced} replaced`;
    process.stdout.write(`${file}: ${report.lines} lines (${report.format}), ${outcome}, ${report.failed} refused\n`);
    return report.failed > 0 ? 1 : 0;
  });
}

function printErrors(report: ImportReport): void {
  const lines = report.errors.map((error) => `line ${error.line}: ${error.detail} (${error.problem})\n`);
  if (report.errorsTruncated) lines.push(`… and ${report.failed - report.errors.length} more refused lines\n`);
  process.stdout.write(lines.join(''));
}

/** One line on a terminal, redrawn at most ten times a second. */
class ProgressBar {
  private lastDraw = 0;
  private readonly width = 30;

  constructor(private readonly totalBytes: number | undefined) {}

  draw(progress: ImportProgress): void {
    const now = Date.now();
    if (now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const counts = `${progress.lines} lines, ${progress.applied} applied, ${progress.failed} refused`;
    if (!this.totalBytes) {
      process.stderr.write(`\r\x1b[K${megabytes(progress.bytes)} read, ${counts}`);
      return;
    }
    const fraction = Math.min(1, progress.bytes / this.totalBytes);
    const filled = Math.round(fraction * this.width);
    const bar = '#'.repeat(filled) + '-'.repeat(this.width - filled);
    process.stderr.write(`\r\x1b[K[${bar}] ${Math.floor(fraction * 100)}% ${megabytes(progress.bytes)}/${megabytes(this.totalBytes)}, ${counts}`);
  }

  clear(): void {
    process.stderr.write('\r\x1b[K');
  }
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}
