import type { Logger } from 'pino';
import type { HorizonReading } from '../store/feed.js';
import { feedIssuedVersion, feedSettledVersion } from './metrics.js';

/**
 * A probe's version waiting to settle, with the transaction id below which every transaction that
 * could have drawn it lies. Probes come in order, so both only grow along the queue.
 */
interface PendingVersion {
  version: number;
  nextXid: bigint;
}

/**
 * Beyond this many unsettled probes (one transaction open for minutes while writes go on), the
 * newest replaces the last: the versions in between then settle with it, a little later, instead
 * of the queue growing without bound.
 */
const MAX_PENDING = 1000;

/**
 * The settled horizon's bookkeeping: the highest version below which every transaction has ended.
 *
 * Transactions draw versions from one sequence but commit in any order, so a change's version says
 * nothing about whether lower ones are visible yet. A probe reads the sequence's last value L, then
 * (a later statement) takes a new transaction id N: every transaction that drew a version <= L
 * took its id before drawing it (migration 3), so its id is below N. Once the oldest transaction
 * still running in the database (read after L) is at or above N, none of them is still
 * running, and every change with version <= L that will ever commit has committed: L is settled.
 * The probe that read L may settle it, which is what happens on an idle database.
 */
export class SettledHorizon {
  private readonly pending: PendingVersion[] = [];
  private value: number | undefined;

  /** Undefined until a first probe has settled. */
  get settled(): number | undefined {
    return this.value;
  }

  /** Takes one probe into account; returns the settled version after it. */
  observe(reading: HorizonReading): number | undefined {
    const newest = this.pending.at(-1)?.version ?? this.value ?? -1;
    if (reading.lastVersion > newest) {
      if (this.pending.length === MAX_PENDING) this.pending.pop();
      this.pending.push({ version: reading.lastVersion, nextXid: reading.nextXid });
    }
    while (this.pending.length > 0 && this.pending[0]!.nextXid <= reading.oldestRunningXid) this.value = this.pending.shift()!.version;
    return this.value;
  }
}

export interface HorizonProbeOptions {
  read: () => Promise<HorizonReading>;
  intervalMs: number;
  logger: Logger;
  /** Called with each new settled version, in increasing order. */
  onAdvance: (settled: number) => void;
}

/** Probes the horizon every `intervalMs` (one probe at a time) and reports each advance. */
export class HorizonProbe {
  private readonly horizon = new SettledHorizon();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private failing = false;

  constructor(private readonly options: HorizonProbeOptions) {}

  get settled(): number | undefined {
    return this.horizon.settled;
  }

  /** Probes once (a failure is logged, not thrown), then keeps probing until `stop`. */
  async start(): Promise<void> {
    await this.probe();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private async probe(): Promise<void> {
    try {
      const reading = await this.options.read();
      this.recovered();
      feedIssuedVersion.set(reading.lastVersion);
      const before = this.horizon.settled;
      const settled = this.horizon.observe(reading);
      if (settled !== undefined && settled !== before) {
        feedSettledVersion.set(settled);
        this.options.onAdvance(settled);
      }
    } catch (error) {
      // A probe still running at shutdown may fail as the pool closes: not worth a warning.
      if (!this.failing && !this.stopped) this.options.logger.warn({ err: error }, 'change feed horizon probe failed; the feed stays where it is until the database answers');
      this.failing = true;
    }
    if (!this.stopped) {
      this.timer = setTimeout(() => void this.probe(), this.options.intervalMs);
      this.timer.unref();
    }
  }

  private recovered(): void {
    if (!this.failing) return;
    this.failing = false;
    this.options.logger.info('change feed horizon probe recovered');
  }
}
