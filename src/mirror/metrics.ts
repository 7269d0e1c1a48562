import { Counter, Gauge } from 'prom-client';
import { registry } from '../ops/registry.js';

// Every metric is labelled by `source`: the key id of the source's signing key, short and free of
// credentials, and the name its blocks use (PUT /v1/blocks/sources/{keyId}).

export const mirrorConnected = new Gauge({
  name: 'atdirectory_mirror_connected',
  help: '1 while the change stream of the source is open; 0 while reconnecting, refused or snapshotting.',
  labelNames: ['source'] as const,
  registers: [registry],
});

export const mirrorVersion = new Gauge({
  name: 'atdirectory_mirror_version',
  help: 'The source\'s feed version applied here (committed with the changes it covers).',
  labelNames: ['source'] as const,
  registers: [registry],
});

export const mirrorChangesApplied = new Counter({
  name: 'atdirectory_mirror_changes_applied_total',
  help: 'Verified feed changes of the source committed here.',
  labelNames: ['source'] as const,
  registers: [registry],
});

export const mirrorChangesRefused = new Counter({
  name: 'atdirectory_mirror_changes_refused_total',
  help: 'Feed changes refused and never applied: signature (not signed by --mirror-key), malformed (not a storable change) or gap (its previous is not the last change applied: one before it never arrived).',
  labelNames: ['source', 'reason'] as const,
  registers: [registry],
});

export const mirrorSnapshots = new Counter({
  name: 'atdirectory_mirror_snapshots_total',
  help: 'Snapshots read from the source: applied, refused (failed verification; discarded whole) or failed (the source or the database failed first).',
  labelNames: ['source', 'result'] as const,
  registers: [registry],
});

/** Sources report their lag when scraped: it grows while nothing arrives. */
const lagReaders = new Map<string, () => number | null>();

export function reportLag(source: string, read: () => number | null): () => void {
  lagReaders.set(source, read);
  return () => lagReaders.delete(source);
}

new Gauge({
  name: 'atdirectory_mirror_lag_seconds',
  help: 'While the stream is open: how old the newest change was when applied. While not: the time since the stream was last open, plus that. Absent until the first snapshot.',
  labelNames: ['source'] as const,
  registers: [registry],
  collect() {
    this.reset();
    for (const [source, read] of lagReaders) {
      const lag = read();
      if (lag !== null) this.set({ source }, lag);
    }
  },
});
