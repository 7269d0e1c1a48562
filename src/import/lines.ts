import { isUtf8 } from 'node:buffer';
import type { LineFailure } from './format.js';

/** A line of an import, numbered from 1 as an editor numbers it. */
export type NumberedLine = { number: number; text: string } | { number: number; failure: LineFailure };

export interface LineReaderOptions {
  /** Longer lines are reported, not buffered: a file without newlines cannot exhaust memory. */
  maxLineBytes: number;
  /** The whole input may not exceed this; reading stops with ImportTooLarge. */
  maxBytes: number;
  /** Told how many bytes each chunk had, for progress. */
  onBytes?: (bytes: number) => void;
}

export class ImportTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the import is larger than ${limit} bytes`);
  }
}

const NEWLINE = 0x0a;
const BOM = '\uFEFF';

/**
 * Splits a byte stream into lines without holding more than one line at a time. Lines end at `\n`
 * (a `\r` before it is dropped); the last line needs no newline. Lines are split on bytes, not
 * characters, which is safe because `\n` never occurs inside a multi-byte UTF-8 sequence.
 */
export async function* readLines(source: AsyncIterable<Buffer | string> | Iterable<Buffer | string>, options: LineReaderOptions): AsyncGenerator<NumberedLine> {
  const { maxLineBytes, maxBytes } = options;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let overlong = false;
  let total = 0;
  let number = 0;

  const finish = (piece: Buffer): NumberedLine => {
    number++;
    if (overlong || pendingBytes + piece.length > maxLineBytes) {
      overlong = false;
      pending = [];
      pendingBytes = 0;
      return { number, failure: { problem: 'invalid-line', detail: `the line is longer than ${maxLineBytes} bytes` } };
    }
    const bytes = pending.length === 0 ? piece : Buffer.concat([...pending, piece]);
    pending = [];
    pendingBytes = 0;
    return decode(number, bytes);
  };

  for await (const data of source) {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data;
    total += chunk.length;
    if (total > maxBytes) throw new ImportTooLarge(maxBytes);
    options.onBytes?.(chunk.length);
    let start = 0;
    for (let end = chunk.indexOf(NEWLINE); end >= 0; end = chunk.indexOf(NEWLINE, start)) {
      yield finish(chunk.subarray(start, end));
      start = end + 1;
    }
    const rest = chunk.subarray(start);
    if (overlong || pendingBytes + rest.length > maxLineBytes) {
      overlong = true;
      pending = [];
      pendingBytes = 0;
    } else if (rest.length > 0) {
      pending.push(rest);
      pendingBytes += rest.length;
    }
  }
  if (pendingBytes > 0 || overlong) yield finish(Buffer.alloc(0));
}

function decode(number: number, bytes: Buffer): NumberedLine {
  const end = bytes.length > 0 && bytes[bytes.length - 1] === 0x0d ? bytes.length - 1 : bytes.length;
  const line = bytes.subarray(0, end);
  if (!isUtf8(line)) return { number, failure: { problem: 'invalid-line', detail: 'the line is not valid UTF-8' } };
  const text = line.toString('utf8');
  return { number, text: number === 1 && text.startsWith(BOM) ? text.slice(1) : text };
}
