import pg from 'pg';
import type { Logger } from 'pino';
import type { DirectoryChange } from '../directory/record.js';
import { changePropagation, changesApplied, dbErrors, listenerConnected, listenerReconnects } from './metrics.js';

export const CHANGES_CHANNEL = 'atdirectory_changes';
const CATCH_UP_PAGE = 5000;

export interface ChangeListenerOptions {
  /** Must reach the primary directly: NOTIFY is not delivered on hot standbys or through transaction pooling. */
  connectionString: string;
  connectTimeoutMs: number;
  /** Interval of the liveness query that also advances the catch-up watermark. */
  heartbeatMs: number;
  logger: Logger;
  /** Applies one change; called for notifications and for catch-up entries alike, in any order. */
  onChange: (change: DirectoryChange) => void;
  /** Called when missed changes cannot be recovered from the log: the cache must be emptied. */
  onCacheUntrusted: () => void;
  onConnectedChange?: (connected: boolean) => void;
}

interface ChangeRow {
  version: string;
  atsign: string;
  host: string | null;
  port: number | null;
  status: 'active' | 'suspended' | null;
  changed_at: Date;
}

interface NotificationPayload {
  v: number;
  a: string;
  h: string | null;
  p: number | null;
  s: 'active' | 'suspended' | null;
  t: number;
}

/**
 * Follows every committed change to the directory through LISTEN, and makes sure none is missed
 * across a lost connection.
 *
 * Versions are drawn when a statement runs, but transactions commit in any order, so "everything
 * after the last version applied" could skip a slow transaction that drew a lower version. The
 * watermark is a transaction id instead: the xmin of a snapshot taken while listening, below which
 * every transaction had finished. Every transaction at or above it either was announced while we
 * listened or is found by the catch-up query after reconnecting (which re-reads from the
 * watermark; re-applying a change is harmless because the cache ignores versions it already has).
 * A heartbeat's xmin becomes the watermark only one heartbeat later, because PostgreSQL delivers a
 * notification after the reply to the query that raced it, not before.
 */
export class ChangeListener {
  private client: pg.Client | undefined;
  private watermark: bigint | undefined;
  private pendingWatermark: bigint | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private reconnect: NodeJS.Timeout | undefined;
  private attempt = 0;
  private stopped = false;
  private isConnected = false;
  private everConnected = false;
  private firstConnection: { resolve: () => void; reject: (error: Error) => void } | undefined;

  constructor(private readonly options: ChangeListenerOptions) {}

  get connected(): boolean {
    return this.isConnected;
  }

  /** Connects, retrying with backoff; resolves once the first connection listens. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.firstConnection = { resolve, reject };
      void this.connect();
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnect);
    clearInterval(this.heartbeat);
    this.firstConnection?.reject(new Error('change listener stopped before it connected'));
    this.firstConnection = undefined;
    const client = this.client;
    this.client = undefined;
    this.setConnected(false);
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    const { logger } = this.options;
    const client = new pg.Client({
      connectionString: this.options.connectionString,
      connectionTimeoutMillis: this.options.connectTimeoutMs,
      query_timeout: Math.max(this.options.heartbeatMs, this.options.connectTimeoutMs),
      keepAlive: true,
      application_name: 'atdirectory-listener',
    });
    let lost = false;
    const onLost = (error?: Error) => {
      if (lost) return;
      lost = true;
      void client.end().catch(() => undefined);
      if (this.client === client) this.client = undefined;
      clearInterval(this.heartbeat);
      if (this.stopped) return;
      const wasConnected = this.isConnected;
      this.setConnected(false);
      if (wasConnected) logger.warn({ err: error }, 'change listener disconnected; serving from cache while reconnecting');
      this.scheduleReconnect();
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', (message) => {
      if (message.channel === CHANGES_CHANNEL && message.payload) this.applyNotification(message.payload);
    });

    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGES_CHANNEL}`);
      if (this.stopped) {
        await client.end();
        return;
      }
      this.client = client;
      await this.catchUp(client);
    } catch (error) {
      dbErrors.inc();
      if (this.attempt === 0 || this.attempt % 10 === 0) {
        logger.warn({ err: error, attempt: this.attempt + 1 }, 'change listener cannot connect; retrying');
      }
      onLost(error as Error);
      return;
    }
    if (lost) return;
    if (this.everConnected) listenerReconnects.inc();
    this.everConnected = true;
    this.attempt = 0;
    this.setConnected(true);
    this.heartbeat = setInterval(() => void this.beat(client, onLost), this.options.heartbeatMs);
    this.heartbeat.unref();
    this.firstConnection?.resolve();
    this.firstConnection = undefined;
  }

  /**
   * Brings the cache up to date with everything committed since the watermark, then sets a new
   * watermark. On the first connection there is nothing to catch up on: the cache is empty.
   */
  private async catchUp(client: pg.Client): Promise<void> {
    const { rows } = await client.query<{ xmin: string; trimmed: string | null }>(
      `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin,
              (SELECT trimmed_through_xid::text FROM atsign_change_log_state) AS trimmed`,
    );
    const xmin = BigInt(rows[0]!.xmin);
    const trimmed = rows[0]!.trimmed === null ? undefined : BigInt(rows[0]!.trimmed);
    const since = this.watermark;
    if (since !== undefined) {
      if (trimmed !== undefined && trimmed >= since) {
        this.options.logger.warn('change log no longer reaches back to the last change applied; clearing the cache');
        this.options.onCacheUntrusted();
      } else {
        const applied = await this.replay(client, since);
        this.options.logger.info({ applied }, 'change listener caught up');
      }
    }
    this.watermark = xmin;
    this.pendingWatermark = undefined;
  }

  private async replay(client: pg.Client, sinceXid: bigint): Promise<number> {
    let applied = 0;
    let afterVersion = '0';
    for (;;) {
      const { rows } = await client.query<ChangeRow>(
        `SELECT version, atsign, host, port, status, changed_at FROM atsign_changes
          WHERE xid >= $1 AND version > $2 ORDER BY version LIMIT ${CATCH_UP_PAGE}`,
        [sinceXid.toString(), afterVersion],
      );
      for (const row of rows) this.options.onChange(changeFromRow(row));
      changesApplied.inc(rows.length);
      applied += rows.length;
      if (rows.length < CATCH_UP_PAGE) return applied;
      afterVersion = rows[rows.length - 1]!.version;
    }
  }

  private async beat(client: pg.Client, onLost: (error?: Error) => void): Promise<void> {
    try {
      const { rows } = await client.query<{ xmin: string }>('SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin');
      if (this.pendingWatermark !== undefined) this.watermark = this.pendingWatermark;
      this.pendingWatermark = BigInt(rows[0]!.xmin);
    } catch (error) {
      dbErrors.inc();
      onLost(error as Error);
    }
  }

  private applyNotification(payload: string): void {
    let parsed: NotificationPayload;
    try {
      parsed = JSON.parse(payload) as NotificationPayload;
    } catch (error) {
      this.options.logger.error({ err: error, payload }, 'unreadable change notification ignored');
      return;
    }
    const record =
      parsed.h === null || parsed.p === null || parsed.s === null
        ? null
        : { atsign: parsed.a, host: parsed.h, port: parsed.p, status: parsed.s, version: parsed.v };
    this.options.onChange({ atsign: parsed.a, version: parsed.v, record, changedAt: parsed.t });
    changesApplied.inc();
    changePropagation.observe(Math.max(0, Date.now() - parsed.t) / 1000);
  }

  private scheduleReconnect(): void {
    // 100 ms doubling to 2 s, with jitter, so a fleet does not reconnect in lockstep and recovery
    // stays well inside 5 s of the database returning.
    const delay = Math.min(2000, 100 * 2 ** Math.min(this.attempt, 5)) * (0.5 + Math.random() / 2);
    this.attempt++;
    this.reconnect = setTimeout(() => void this.connect(), delay);
  }

  private setConnected(connected: boolean): void {
    if (this.isConnected === connected) return;
    this.isConnected = connected;
    listenerConnected.set(connected ? 1 : 0);
    this.options.onConnectedChange?.(connected);
  }
}

function changeFromRow(row: ChangeRow): DirectoryChange {
  const version = Number(row.version);
  const record =
    row.host === null || row.port === null || row.status === null
      ? null
      : { atsign: row.atsign, host: row.host, port: row.port, status: row.status, version };
  return { atsign: row.atsign, version, record, changedAt: row.changed_at.getTime() };
}
