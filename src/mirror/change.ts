import { changeMessage, type SignatureVerifier, type SignedChangeFields } from '../feed/signing.js';

/** A record as a source publishes it (a snapshot line, or a feed change that is not a deletion). */
export interface MirroredRecord {
  atsign: string;
  host: string;
  port: number;
  status: 'active' | 'suspended';
  version: number;
}

/** A verified feed change; `host`, `port` and `status` are null for a deletion. */
export type FeedChange = SignedChangeFields;

/** Why an entry was not applied: the `reason` label of atdirectory_mirror_changes_refused_total. */
export type RefusalReason = 'signature' | 'malformed' | 'gap';

export type ChangeVerdict = { change: FeedChange } | { refused: RefusalReason; detail: string };

// The constraints of the atsigns table (migrations/1): a record that breaks them could never be
// stored, and trying would stop the whole batch it came in.
const HOST = /^[^:@\s\p{Cc}]+$/u;
const MAX_KEY_LENGTH = 1000;

/**
 * Checks one `change` event's data: well-formed, signed by the source's key, and storable. The
 * signature is checked on the fields exactly as received, before anything is interpreted.
 */
export function verifyChange(data: string, verifier: SignatureVerifier): ChangeVerdict {
  let entry: unknown;
  try {
    entry = JSON.parse(data);
  } catch {
    return { refused: 'malformed', detail: 'the change is not JSON' };
  }
  if (typeof entry !== 'object' || entry === null) return { refused: 'malformed', detail: 'the change is not a JSON object' };
  const { version, previous, atsign, host, port, status, changedAt, signature } = entry as Record<string, unknown>;
  if (!Number.isSafeInteger(version) || (version as number) < 1) return { refused: 'malformed', detail: 'version is not a positive integer' };
  if (!Number.isSafeInteger(previous) || (previous as number) < 0 || (previous as number) >= (version as number)) {
    return { refused: 'malformed', detail: `change ${version}: previous is not an integer from 0 below the version` };
  }
  if (typeof atsign !== 'string' || typeof changedAt !== 'string') return { refused: 'malformed', detail: `change ${version}: atsign and changedAt must be strings` };
  const deletion = host === null && port === null && status === null;
  if (!deletion && (typeof host !== 'string' || typeof port !== 'number' || (status !== 'active' && status !== 'suspended'))) {
    return { refused: 'malformed', detail: `change ${version}: host, port and status must all be set, or all be null for a deletion` };
  }
  const change = { version, previous, atsign, host, port, status, changedAt } as FeedChange;
  if (!verifier.verify(changeMessage(change), signature)) {
    return { refused: 'signature', detail: `change ${version} (@${atsign}) does not carry a valid signature of key ${verifier.keyId}` };
  }
  const invalid = invalidKey(atsign) ?? (deletion ? undefined : invalidValue(host as string, port as number));
  if (invalid) return { refused: 'malformed', detail: `change ${version} (@${atsign}): ${invalid}` };
  return { change };
}

/**
 * Where a verified change stands against the last change applied from its source: `next` when it
 * names that change as its predecessor; `applied` when it is that change or an earlier one (a
 * replay: nothing to do); `gap` otherwise, when a change between them never arrived. Versions have
 * holes (rolled-back transactions), so only the source's own signed `previous` can tell.
 */
export function chainLink(change: FeedChange, lastApplied: number): 'next' | 'applied' | 'gap' {
  if (change.version <= lastApplied) return 'applied';
  return change.previous === lastApplied ? 'next' : 'gap';
}

/** A snapshot's parsed record line as a record, or why it is not a storable one. */
export function recordOf(entry: Record<string, unknown>): MirroredRecord | string {
  const { atsign, host, port, status, version } = entry;
  if (typeof atsign !== 'string' || typeof host !== 'string' || typeof port !== 'number' || (status !== 'active' && status !== 'suspended')) {
    return 'a record needs a string atsign and host, a numeric port and a status of active or suspended';
  }
  if (!Number.isSafeInteger(version) || (version as number) < 1) return `@${atsign}: version is not a positive integer`;
  const invalid = invalidKey(atsign) ?? invalidValue(host, port);
  if (invalid) return `@${atsign}: ${invalid}`;
  return { atsign, host, port, status, version: version as number };
}

function invalidKey(atsign: string): string | undefined {
  if (atsign === '' || atsign.length > MAX_KEY_LENGTH || atsign.includes('\0')) return 'the atsign is empty, too long or contains NUL';
  return undefined;
}

function invalidValue(host: string, port: number): string | undefined {
  if (!HOST.test(host)) return 'the host is empty or contains ":", "@", whitespace or control characters';
  if (!Number.isInteger(port) || port < 1 || port > 65535) return 'the port is not an integer from 1 to 65535';
  return undefined;
}
