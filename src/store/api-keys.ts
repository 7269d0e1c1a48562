import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type pg from 'pg';

export type Scope = 'admin' | 'registrar' | 'read';
export const SCOPES: readonly Scope[] = ['admin', 'registrar', 'read'];

export interface ApiKey {
  id: string;
  scope: Scope;
  registrar: string;
  createdAt: string;
  revokedAt: string | null;
  lastUsedAt: string | null;
}

interface KeyRow {
  id: string;
  secret_hash: Buffer;
  scope: Scope;
  registrar: string;
  created_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
}

const TOKEN = /^atd_([a-z2-7]{16})_([A-Za-z0-9_-]{43})$/;
const BASE32 = 'abcdefghijklmnopqrstuvwxyz234567';
// Compared against when the key id is unknown, so the answer takes as long as for a known one.
const DECOY_HASH = createHash('sha256').update('decoy').digest();
const LAST_USED_RESOLUTION_MS = 60_000;

function hash(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

function fromRow(row: KeyRow): ApiKey {
  return {
    id: row.id,
    scope: row.scope,
    registrar: row.registrar,
    createdAt: row.created_at.toISOString(),
    revokedAt: row.revoked_at?.toISOString() ?? null,
    lastUsedAt: row.last_used_at?.toISOString() ?? null,
  };
}

/**
 * API keys `atd_<id>_<secret>`: the id is public (it names the actor in the history), the secret
 * is 32 random bytes of which only a SHA-256 is stored.
 */
export class ApiKeyStore {
  private readonly lastUsedWritten = new Map<string, number>();

  constructor(private readonly pool: pg.Pool) {}

  /** Creates a key and returns it with its token, which is shown this once and never again. */
  async create(registrar: string, scope: Scope): Promise<{ key: ApiKey; token: string }> {
    const id = Array.from(randomBytes(16), (byte) => BASE32[byte % 32]).join('');
    const secret = randomBytes(32).toString('base64url');
    const { rows } = await this.pool.query<KeyRow>(
      'INSERT INTO api_keys (id, secret_hash, scope, registrar) VALUES ($1, $2, $3, $4) RETURNING *',
      [id, hash(secret), scope, registrar],
    );
    return { key: fromRow(rows[0]!), token: `atd_${id}_${secret}` };
  }

  async list(): Promise<ApiKey[]> {
    const { rows } = await this.pool.query<KeyRow>('SELECT * FROM api_keys ORDER BY created_at, id');
    return rows.map(fromRow);
  }

  /** Revokes a key; returns false when there is no such key. Revoking twice is harmless. */
  async revoke(id: string): Promise<boolean> {
    const { rowCount } = await this.pool.query('UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1', [id]);
    return rowCount === 1;
  }

  /**
   * The key a bearer token proves, or undefined for a malformed, unknown, wrong or revoked token
   * (deliberately indistinguishable to the caller).
   */
  async authenticate(token: string): Promise<ApiKey | undefined> {
    const match = TOKEN.exec(token);
    if (!match) return undefined;
    const [, id, secret] = match as unknown as [string, string, string];
    const { rows } = await this.pool.query<KeyRow>('SELECT * FROM api_keys WHERE id = $1', [id]);
    const row = rows[0];
    const matches = timingSafeEqual(hash(secret), row?.secret_hash ?? DECOY_HASH);
    if (!row || !matches || row.revoked_at) return undefined;
    this.recordUse(id);
    return fromRow(row);
  }

  /** Last use, to the minute: a write per request would cost more than the answer is worth. */
  private recordUse(id: string): void {
    const now = Date.now();
    if (now - (this.lastUsedWritten.get(id) ?? 0) < LAST_USED_RESOLUTION_MS) return;
    this.lastUsedWritten.set(id, now);
    this.pool.query('UPDATE api_keys SET last_used_at = now() WHERE id = $1', [id]).catch(() => this.lastUsedWritten.delete(id));
  }
}
