import { Counter, type Metric, type Registry } from 'prom-client';

/**
 * Metrics for the lookup hot path. prom-client's Counter and Histogram hash their labels and build
 * a closure on every call, which cost about a fifth of a lookup's server CPU when measured
 * (loadtest/lookup.ts). These record with one add on a number and hand prom-client their totals
 * only when scraped, so recording a lookup allocates nothing.
 */

/** Counts in a plain number; read by the owning family at scrape time. */
export class HotCounter {
  count = 0;

  inc(): void {
    this.count++;
  }
}

export interface HotCounterOptions<Label extends string> {
  name: string;
  help: string;
  /** The one label that tells the children apart, e.g. `result`. */
  labelName: string;
  /** Every value the label takes; each gets its counter up front so none is made on the hot path. */
  labelValues: readonly Label[];
  registers: Registry[];
}

/** A counter family with one label whose values are all known in advance. */
export function hotCounterFamily<Label extends string>(options: HotCounterOptions<Label>): Record<Label, HotCounter> {
  const children = {} as Record<Label, HotCounter>;
  for (const value of options.labelValues) children[value] = new HotCounter();
  new Counter({
    name: options.name,
    help: options.help,
    labelNames: [options.labelName],
    registers: options.registers,
    collect() {
      this.reset();
      for (const value of options.labelValues) this.inc({ [options.labelName]: value }, children[value].count);
    },
  });
  return children;
}

/** An unlabelled counter. */
export function hotCounter(options: { name: string; help: string; registers: Registry[] }): HotCounter {
  const counter = new HotCounter();
  new Counter({
    name: options.name,
    help: options.help,
    registers: options.registers,
    collect() {
      this.reset();
      this.inc(counter.count);
    },
  });
  return counter;
}

interface Sample {
  metricName: string;
  labels: Record<string, string | number>;
  value: number;
}

export interface HotHistogramOptions {
  name: string;
  help: string;
  /** Upper bounds, ascending; `+Inf` is implied. */
  buckets: readonly number[];
  registers: Registry[];
}

/**
 * An unlabelled histogram kept as a fixed array of per-bucket counts. It implements the part of
 * prom-client's metric interface the registry and the cluster aggregator use (`get`, `reset`), and
 * reports the same exposition a prom-client Histogram would.
 */
export class HotHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly bounds: Float64Array;
  /** counts[i] observations fell in (bounds[i-1], bounds[i]]; the last slot is above every bound. */
  private readonly counts: Float64Array;
  private sum = 0;
  private count = 0;

  constructor(options: HotHistogramOptions) {
    for (let i = 1; i < options.buckets.length; i++) {
      if (!(options.buckets[i]! > options.buckets[i - 1]!)) throw new Error(`${options.name}: buckets must ascend`);
    }
    this.name = options.name;
    this.help = options.help;
    this.bounds = Float64Array.from(options.buckets);
    this.counts = new Float64Array(options.buckets.length + 1);
    for (const registry of options.registers) registry.registerMetric(this as unknown as Metric);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }

  reset(): void {
    this.counts.fill(0);
    this.sum = 0;
    this.count = 0;
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const bucketName = `${this.name}_bucket`;
    const values: Sample[] = [];
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i]!;
      values.push({ metricName: bucketName, labels: { le: this.bounds[i]! }, value: cumulative });
    }
    values.push({ metricName: bucketName, labels: { le: '+Inf' }, value: this.count });
    values.push({ metricName: `${this.name}_sum`, labels: {}, value: this.sum });
    values.push({ metricName: `${this.name}_count`, labels: {}, value: this.count });
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
