/**
 * The lookup key for a request line, exactly as the reference root server derives it: surrounding
 * Unicode whitespace trimmed (including `\r` and tabs) and the whole line lower-cased with full
 * Unicode case folding. Nothing else: a leading `@` is kept (so `@alice` is a key that is never
 * stored), dots stay, and no Unicode normalisation happens, or SDKs would see different answers from
 * different roots.
 */
export function lookupKey(line: string): string {
  return line.trim().toLowerCase();
}

/** The one request that is a command rather than a lookup. */
export const EXIT_COMMAND = '@exit';

/**
 * Whether a lookup key could name a stored record. Stored atsigns never begin with `@` (the
 * database trigger strips it), so such keys are answered `null` without a query.
 */
export function isStorableKey(key: string): boolean {
  return key.length > 0 && key.charCodeAt(0) !== 0x40;
}
