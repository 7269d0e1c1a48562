import { checkPort, isFailure, normaliseAtsign, normaliseHost } from '../directory/validation.js';

/**
 * The two import formats, one record per line: NDJSON (`{"atsign":"@alice","host":"h","port":1}`)
 * or CSV (`atsign,host,port`, RFC 4180 quoting, an optional header line).
 */
export type ImportFormat = 'ndjson' | 'csv';

/** One valid line: the atsign already normalised to its stored key, the host lower-cased. */
export interface ImportRecord {
  atsign: string;
  host: string;
  port: number;
}

/** Why a line was refused, as an admin API problem slug (see src/admin/problems.ts) and a detail. */
export interface LineFailure {
  problem: 'invalid-atsign' | 'invalid-host' | 'ipv6-host' | 'invalid-port' | 'unknown-field' | 'malformed-json' | 'invalid-line' | 'forbidden';
  detail: string;
}

const FIELDS = ['atsign', 'host', 'port'] as const;
const CSV_HEADER = /^\s*"?atsign"?\s*,\s*"?host"?\s*,\s*"?port"?\s*$/i;

export function isLineFailure(value: ImportRecord | LineFailure): value is LineFailure {
  return 'problem' in value;
}

/** The format of a body or file from its first non-blank line. */
export function sniffFormat(firstLine: string): ImportFormat {
  return firstLine.trimStart().startsWith('{') ? 'ndjson' : 'csv';
}

/** Whether a CSV line is the optional `atsign,host,port` header. */
export function isCsvHeader(line: string): boolean {
  return CSV_HEADER.test(line);
}

/** Parses and validates one non-blank line exactly as PUT /v1/atsigns/{atsign} validates a body. */
export function parseLine(format: ImportFormat, line: string): ImportRecord | LineFailure {
  const fields = format === 'ndjson' ? ndjsonFields(line) : csvFields(line);
  if ('problem' in fields) return fields;
  const atsign = normaliseAtsign(fields.atsign);
  if (isFailure(atsign)) return atsign;
  const host = normaliseHost(fields.host);
  if (isFailure(host)) return host;
  const portFailure = checkPort(fields.port);
  if (portFailure) return portFailure;
  return { atsign: atsign.key, host: host.host, port: fields.port as number };
}

function ndjsonFields(line: string): { atsign: string; host: string; port: unknown } | LineFailure {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    return { problem: 'malformed-json', detail: (error as Error).message };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { problem: 'invalid-line', detail: 'each NDJSON line must be an object {"atsign","host","port"}' };
  }
  const unknown = Object.keys(value).find((field) => !(FIELDS as readonly string[]).includes(field));
  if (unknown !== undefined) return { problem: 'unknown-field', detail: `unknown field ${JSON.stringify(unknown)}` };
  const { atsign, host, port } = value as Record<string, unknown>;
  if (typeof atsign !== 'string') return { problem: 'invalid-atsign', detail: 'the atsign must be a string' };
  if (typeof host !== 'string') return { problem: 'invalid-host', detail: 'the host must be a string' };
  return { atsign, host, port };
}

function csvFields(line: string): { atsign: string; host: string; port: unknown } | LineFailure {
  const fields = splitCsv(line);
  if (typeof fields === 'string') return { problem: 'invalid-line', detail: fields };
  if (fields.length !== 3) return { problem: 'invalid-line', detail: `expected 3 fields (atsign,host,port), got ${fields.length}` };
  const [atsign, host, port] = fields as [string, string, string];
  // A CSV port is text: only plain decimal digits count as an integer.
  return { atsign, host, port: /^\d{1,5}$/.test(port) ? Number(port) : port };
}

/**
 * Splits one CSV record (RFC 4180: fields may be double-quoted, `""` is a quote inside one).
 * Unquoted fields are trimmed, as spreadsheets pad them; quoted ones are kept as written.
 * A string is the reason the line is not CSV.
 */
function splitCsv(line: string): string[] | string {
  const fields: string[] = [];
  let i = 0;
  for (;;) {
    while (line[i] === ' ' || line[i] === '\t') i++;
    if (line[i] === '"') {
      let value = '';
      i++;
      for (;;) {
        const quote = line.indexOf('"', i);
        if (quote < 0) return 'a quoted field is not closed';
        value += line.slice(i, quote);
        if (line[quote + 1] === '"') {
          value += '"';
          i = quote + 2;
          continue;
        }
        i = quote + 1;
        break;
      }
      while (line[i] === ' ' || line[i] === '\t') i++;
      fields.push(value);
      if (i >= line.length) return fields;
      if (line[i] !== ',') return 'text after a closing quote; a quote inside a quoted field is written ""';
      i++;
    } else {
      const comma = line.indexOf(',', i);
      const end = comma < 0 ? line.length : comma;
      fields.push(line.slice(i, end).trim());
      if (comma < 0) return fields;
      i = comma + 1;
    }
  }
}
