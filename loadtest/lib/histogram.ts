/**
 * Latencies in fixed logarithmic buckets (2 % wide, 1 µs to about 100 s): constant memory however
 * long a run is, and mergeable across load processes by adding counts.
 */
const MIN_MS = 0.001;
const GROWTH = 1.02;
const BUCKETS = Math.ceil(Math.log(100_000 / MIN_MS) / Math.log(GROWTH)) + 1;

export class LatencyHistogram {
  readonly counts: Float64Array;
  count = 0;
  max = 0;

  constructor(counts?: ArrayLike<number>) {
    this.counts = new Float64Array(BUCKETS);
    if (counts) {
      this.counts.set(counts);
      for (const n of this.counts) this.count += n;
    }
  }

  record(ms: number): void {
    const index = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / Math.log(GROWTH)));
    this.counts[index]!++;
    this.count++;
    if (ms > this.max) this.max = ms;
  }

  merge(other: LatencyHistogram): void {
    for (let i = 0; i < BUCKETS; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.max = Math.max(this.max, other.max);
  }

  /** The upper bound of the bucket holding the p-th percentile, in ms (within 2 %). */
  percentile(p: number): number {
    if (this.count === 0) return NaN;
    const rank = Math.ceil((p / 100) * this.count);
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min(this.max, MIN_MS * GROWTH ** i);
    }
    return this.max;
  }

  toJSON(): { counts: number[]; max: number } {
    return { counts: Array.from(this.counts), max: this.max };
  }

  static fromJSON(json: { counts: number[]; max: number }): LatencyHistogram {
    const histogram = new LatencyHistogram(json.counts);
    histogram.max = json.max;
    return histogram;
  }
}
