import { readFile } from 'node:fs/promises';
import type pg from 'pg';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { SignatureVerifier } from '../feed/signing.js';
import type { Readiness } from '../ops/server.js';
import { createPool } from '../store/pool.js';
import { SourceFollower, type SourceStatus } from './follower.js';
import { MirrorStore, type StoredSource } from './store.js';

/** What the admin API sees of a running mirror. */
export interface MirrorState {
  status(): SourceStatus[];
}

export type MirrorSettings = Pick<Config, 'mirror' | 'mirrorKey' | 'mirrorToken' | 'mirrorCa' | 'mirrorRetry' | 'dbConnectTimeout'>;

/**
 * A snapshot's replacement derives every atsign in one statement; on millions of records that
 * takes minutes, far beyond the lookup statement timeout.
 */
const STATEMENT_TIMEOUT_MS = 15 * 60_000;

/** Every source of --mirror, followed from the primary process into the database. */
export class Mirror implements MirrorState {
  private constructor(
    private readonly pool: pg.Pool,
    private readonly followers: SourceFollower[],
  ) {}

  /**
   * Brings the stored sources in line with the configuration and starts following each. Resolves
   * at once: snapshots and streams run in the background, and lookups answer what is stored.
   */
  static async start(settings: MirrorSettings, databaseUrl: string, logger: Logger): Promise<Mirror> {
    const sources = settings.mirror.map((url, position) => ({
      url,
      position,
      token: settings.mirrorToken[position]!,
      verifier: new SignatureVerifier(settings.mirrorKey[position]!),
    }));
    const ca = await readCertificateAuthorities(settings.mirrorCa);
    const pool = createPool({
      connectionString: databaseUrl,
      // Each source holds at most one connection at a time (a snapshot or a batch).
      max: sources.length + 1,
      connectTimeoutMs: settings.dbConnectTimeout,
      statementTimeoutMs: STATEMENT_TIMEOUT_MS,
      applicationName: 'atdirectory-mirror',
      logger,
    });
    const store = new MirrorStore(pool);
    let stored: StoredSource[];
    try {
      stored = await store.syncSources(sources.map((source) => ({ url: source.url, publicKey: source.verifier.publicKey, keyId: source.verifier.keyId })));
    } catch (error) {
      await pool.end();
      throw new Error(`cannot prepare the mirror's sources: ${(error as Error).message}`, { cause: error });
    }
    const mirrorLogger = logger.child({ component: 'mirror' });
    const followers = sources.map(
      (source, position) => new SourceFollower({ ...source, stored: stored[position]! }, store, { retryMaxMs: settings.mirrorRetry, logger: mirrorLogger, ca }),
    );
    for (const follower of followers) follower.start();
    mirrorLogger.info(
      { sources: sources.map((source, position) => ({ url: source.url, keyId: source.verifier.keyId, versionApplied: stored[position]!.versionApplied })) },
      `mirroring ${sources.length} source${sources.length === 1 ? '' : 's'}; registrar writes are refused`,
    );
    return new Mirror(pool, followers);
  }

  status(): SourceStatus[] {
    return this.followers.map((follower) => follower.status());
  }

  /**
   * "ok" once a snapshot of every source has been applied, by this run or an earlier one; before
   * that the mirror would answer null for atsigns its sources have. Nothing later makes it unready
   * (a source unreachable, refused data, a changed key awaiting its snapshot): it answers what it
   * holds, and GET /v1/mirror and the metrics say how stale that may be.
   */
  readiness(): string {
    const waiting = this.followers.filter((follower) => !follower.hasData).map((follower) => follower.status().url);
    return waiting.length === 0 ? 'ok' : `waiting for the first snapshot of ${waiting.join(', ')}`;
  }

  /** Stops following (an apply in progress finishes first); call before the database stops. */
  async stop(): Promise<void> {
    await Promise.all(this.followers.map((follower) => follower.stop()));
    await this.pool.end();
  }
}

/** The PEM file of --mirror-ca, read once at start; undefined (the public roots) when not set. */
async function readCertificateAuthorities(path: string): Promise<string | undefined> {
  if (!path) return undefined;
  const pem = await readFile(path, 'utf8').catch((error: Error) => {
    throw new Error(`cannot read --mirror-ca ${path}: ${error.message}`);
  });
  // Node would take a file without one as no CA at all, and every source would then look untrusted.
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new Error(`--mirror-ca ${path} holds no PEM certificate`);
  return pem;
}

/** Adds the mirror's check to the process's readiness. */
export function withMirrorReadiness(check: () => Promise<Readiness>, mirror: Mirror): () => Promise<Readiness> {
  return async () => {
    const readiness = await check();
    const state = mirror.readiness();
    return { ready: readiness.ready && state === 'ok', checks: { ...readiness.checks, mirror: state } };
  };
}
