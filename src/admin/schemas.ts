import { Type, type Static } from 'typebox';
import { MAX_ATSIGN_LENGTH } from '../directory/validation.js';

/** Registrar names are labels: printable text, no control characters (PostgreSQL cannot store NUL). */
const REGISTRAR = { minLength: 1, maxLength: 200, pattern: '^[^\\p{Cc}]+$' };

export const AtsignParams = Type.Object({
  atsign: Type.String({ description: `The atsign, with or without its "@" (URL-encoded; emoji allowed, at most ${MAX_ATSIGN_LENGTH} characters).` }),
});

export const AtsignRecord = Type.Object(
  {
    atsign: Type.String({ description: 'The normalised atsign, without "@".' }),
    host: Type.String(),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    status: Type.Union([Type.Literal('active'), Type.Literal('suspended')]),
    suspensionReason: Type.Union([Type.String(), Type.Null()]),
    registrar: Type.Union([Type.String(), Type.Null()], { description: 'The owning registrar; null for rows written outside the API.' }),
    version: Type.Integer({ description: 'Changes on every write; also the ETag.' }),
    createdAt: Type.String({ format: 'date-time' }),
    updatedAt: Type.String({ format: 'date-time' }),
  },
  { description: 'A directory record' },
);

export const PutBody = Type.Object(
  {
    host: Type.String({ description: 'DNS name or IPv4 address of the atServer, as named in its certificate.' }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    registrar: Type.Optional(Type.String({ ...REGISTRAR, description: 'Owner of a new atsign (admin keys only; otherwise the key\'s registrar).' })),
  },
  { additionalProperties: false },
);
export type PutBody = Static<typeof PutBody>;

export const PatchBody = Type.Object(
  {
    host: Type.Optional(Type.String()),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('suspended')])),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 1000, pattern: '^[^\\u0000]+$', description: 'Required when suspending; kept in the history. Any text but NUL.' })),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type PatchBody = Static<typeof PatchBody>;

export const WriteQuery = Type.Object(
  {
    verify: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'Check that host:port answers TLS with a certificate valid for host before saving.' })),
  },
  { additionalProperties: false },
);

export const ListQuery = Type.Object(
  {
    registrar: Type.Optional(Type.String(REGISTRAR)),
    prefix: Type.Optional(Type.String({ minLength: 1, maxLength: 256, pattern: '^[^\\p{Cc}]+$' })),
    status: Type.Optional(Type.Union([Type.Literal('active'), Type.Literal('suspended')])),
    limit: Type.Optional(Type.String({ pattern: '^[1-9][0-9]{0,6}$', description: 'Page size, 1–1000 (larger values are capped); default 100.' })),
    cursor: Type.Optional(Type.String({ description: 'nextCursor from the previous page.' })),
  },
  { additionalProperties: false },
);
export type ListQuery = Static<typeof ListQuery>;

export const AtsignPage = Type.Object({
  items: Type.Array(AtsignRecord),
  nextCursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as ?cursor= for the next page; null on the last page.' }),
});

export const HistoryEntry = Type.Object({
  version: Type.Integer(),
  action: Type.String({ description: 'create, update, suspend, reactivate, delete or import' }),
  oldValue: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
  newValue: Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()]),
  actor: Type.String({ description: 'The API key id, "cli", or "sql" for writes made outside atdirectory.' }),
  reason: Type.Union([Type.String(), Type.Null()]),
  changedAt: Type.String({ format: 'date-time' }),
});

export const History = Type.Object({ atsign: Type.String(), items: Type.Array(HistoryEntry) });

export const KeyBody = Type.Object(
  {
    registrar: Type.String(REGISTRAR),
    scope: Type.Union([Type.Literal('admin'), Type.Literal('registrar'), Type.Literal('read')]),
  },
  { additionalProperties: false },
);
export type KeyBody = Static<typeof KeyBody>;

export const ApiKeyInfo = Type.Object({
  id: Type.String(),
  scope: Type.String(),
  registrar: Type.String(),
  createdAt: Type.String({ format: 'date-time' }),
  revokedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  lastUsedAt: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
});

export const CreatedKey = Type.Object({ ...ApiKeyInfo.properties, key: Type.String({ description: 'atd_<id>_<secret>; shown once, never again.' }) });

export const KeyParams = Type.Object({ id: Type.String() });

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    instance: Type.String(),
  },
  { description: 'RFC 9457 problem details; type is one of /problems', additionalProperties: true },
);

export const ImportQuery = Type.Object(
  {
    atomic: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'All or nothing: any invalid line refuses the whole import (422).' })),
    registrar: Type.Optional(Type.String({ ...REGISTRAR, description: 'Admin keys: the owner of atsigns the import creates (default: the key\'s registrar).' })),
  },
  { additionalProperties: false },
);
export type ImportQuery = Static<typeof ImportQuery>;

export const ImportLineError = Type.Object({
  line: Type.Integer({ description: 'Line number, from 1 (blank lines and a CSV header count).' }),
  type: Type.String({ description: 'Problem type of the line, e.g. /problems/invalid-host.' }),
  detail: Type.String(),
  atsign: Type.Optional(Type.String()),
});

export const ImportReport = Type.Object({
  format: Type.Union([Type.Literal('ndjson'), Type.Literal('csv')]),
  atomic: Type.Boolean(),
  lines: Type.Integer(),
  created: Type.Integer(),
  replaced: Type.Integer(),
  failed: Type.Integer({ description: 'Lines refused; each is in errors unless errorsTruncated.' }),
  errors: Type.Array(ImportLineError, { description: 'At most 1000.' }),
  errorsTruncated: Type.Boolean(),
});

export const ChangesQuery = Type.Object(
  {
    after: Type.Optional(Type.String({ description: 'Changes with a higher version than this (an integer from 0; default 0). Last-Event-ID takes precedence on a stream.' })),
    limit: Type.Optional(Type.String({ description: 'Page size, 1–10000; default 1000. Not used by a stream.' })),
  },
  { additionalProperties: false },
);
export type ChangesQuery = Static<typeof ChangesQuery>;

export const FeedChange = Type.Object(
  {
    version: Type.Integer(),
    previous: Type.Integer({ description: 'The version of the change just before this one in the log (0 for the first), whatever the reader asked for: a reader holding another knows it missed one.' }),
    atsign: Type.String(),
    host: Type.Union([Type.String(), Type.Null()], { description: 'null for a deletion' }),
    port: Type.Union([Type.Integer(), Type.Null()], { description: 'null for a deletion' }),
    status: Type.Union([Type.Literal('active'), Type.Literal('suspended'), Type.Null()], { description: 'null for a deletion; a suspended atsign answers null' }),
    changedAt: Type.String({ format: 'date-time' }),
    signature: Type.String({ description: 'Ed25519, base64, over the UTF-8 JSON array ["atdirectory.change.v2", version, previous, atsign, host, port, status, changedAt].' }),
  },
  { description: 'A signed change' },
);

export const ChangePage = Type.Object({
  changes: Type.Array(FeedChange, { description: 'In version order, after < version <= settled.' }),
  next: Type.Integer({ description: 'Pass as ?after= for the next page: the last version returned when the page is full, otherwise settled.' }),
  settled: Type.Integer({ description: 'The settled horizon: every change up to it has committed.' }),
});

export const Identity = Type.Object({
  algorithm: Type.Literal('Ed25519'),
  publicKey: Type.String({ description: 'The raw 32-byte public key, base64: what --mirror-key takes.' }),
  keyId: Type.String({ description: 'First 16 hex digits of the SHA-256 of the raw key.' }),
});
