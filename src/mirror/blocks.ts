import type pg from 'pg';
import { inTransaction } from '../store/transaction.js';

export type BlockKind = 'atsign' | 'source';

/** A local block: an atsign (its normalised key) or a source (its key id) that answers null here. */
export interface Block {
  kind: BlockKind;
  target: string;
  reason: string;
  /** The API key id that set it. */
  actor: string;
  createdAt: string;
}

interface BlockRow {
  kind: BlockKind;
  target: string;
  reason: string;
  actor: string;
  created_at: Date;
}

/**
 * Blocks and their effect, in one transaction each: the SQL functions of migrations/4 derive the
 * affected `atsigns` rows again, so a block takes effect on every cache through the usual
 * notification, and the history names the key that set or lifted it.
 */
export class BlockStore {
  constructor(private readonly pool: pg.Pool) {}

  async list(): Promise<Block[]> {
    const { rows } = await this.pool.query<BlockRow>('SELECT kind, target, reason, actor, created_at FROM mirror_blocks ORDER BY kind, target COLLATE "C"');
    return rows.map(fromRow);
  }

  /** Sets a block, or re-words an existing one (`created` false). */
  async set(kind: BlockKind, target: string, reason: string, actor: string): Promise<{ block: Block; created: boolean }> {
    return inTransaction(this.pool, { actor, reason }, async (client) => {
      const { rows } = await client.query<{ created: boolean }>('SELECT mirror_set_block($1, $2, $3, $4) AS created', [kind, target, reason, actor]);
      const { rows: blocks } = await client.query<BlockRow>('SELECT kind, target, reason, actor, created_at FROM mirror_blocks WHERE kind = $1 AND target = $2', [kind, target]);
      return { block: fromRow(blocks[0]!), created: rows[0]!.created };
    });
  }

  /** Lifts a block; false when there was none. */
  async remove(kind: BlockKind, target: string, actor: string): Promise<boolean> {
    return inTransaction(this.pool, { actor, reason: 'local block lifted' }, async (client) => {
      const { rows } = await client.query<{ removed: boolean }>('SELECT mirror_remove_block($1, $2) AS removed', [kind, target]);
      return rows[0]!.removed;
    });
  }
}

function fromRow(row: BlockRow): Block {
  return { kind: row.kind, target: row.target, reason: row.reason, actor: row.actor, createdAt: row.created_at.toISOString() };
}
