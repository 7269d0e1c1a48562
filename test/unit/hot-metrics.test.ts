import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotHistogram, hotCounter, hotCounterFamily } from '../../src/ops/hot-metrics.js';

const buckets = [0.001, 0.01, 0.1, 1];
const samples = [0, 0.001, 0.0011, 0.05, 0.1, 0.5, 3, 7];

describe('HotHistogram', () => {
  it('exposes exactly what a prom-client Histogram exposes for the same observations', async () => {
    const hot = new Registry();
    const reference = new Registry();
    const fast = new HotHistogram({ name: 'h', help: 'help text', buckets, registers: [hot] });
    const slow = new Histogram({ name: 'h', help: 'help text', buckets, registers: [reference] });
    for (const value of samples) {
      fast.observe(value);
      slow.observe(value);
    }
    expect(await hot.metrics()).toBe(await reference.metrics());
  });

  it('aggregates across workers like a prom-client Histogram', async () => {
    const worker = async (make: (registry: Registry) => { observe(value: number): void }) => {
      const registry = new Registry();
      const histogram = make(registry);
      for (const value of samples) histogram.observe(value);
      return registry.getMetricsAsJSON();
    };
    const hotWorkers = await Promise.all([1, 2].map(() => worker((r) => new HotHistogram({ name: 'h', help: 'x', buckets, registers: [r] }))));
    const slowWorkers = await Promise.all([1, 2].map(() => worker((r) => new Histogram({ name: 'h', help: 'x', buckets, registers: [r] }))));
    const aggregated = await AggregatorRegistry.aggregate(hotWorkers).metrics();
    expect(aggregated).toBe(await AggregatorRegistry.aggregate(slowWorkers).metrics());
    expect(aggregated).toContain('h_count 16');
  });

  it('starts again from zero when the registry is reset', async () => {
    const registry = new Registry();
    const histogram = new HotHistogram({ name: 'h', help: 'x', buckets, registers: [registry] });
    histogram.observe(0.5);
    registry.resetMetrics();
    expect(await registry.metrics()).toContain('h_count 0');
  });

  it('refuses buckets that do not ascend', () => {
    expect(() => new HotHistogram({ name: 'h', help: 'x', buckets: [1, 1], registers: [] })).toThrow('h: buckets must ascend');
  });
});

describe('hot counters', () => {
  it('expose the same text as prom-client counters', async () => {
    const hot = new Registry();
    const reference = new Registry();
    const byResult = hotCounterFamily({ name: 'c_total', help: 'by result', labelName: 'result', labelValues: ['found', 'not_found'], registers: [hot] });
    const plain = hotCounter({ name: 'p_total', help: 'plain', registers: [hot] });
    const slowByResult = new Counter({ name: 'c_total', help: 'by result', labelNames: ['result'], registers: [reference] });
    const slowPlain = new Counter({ name: 'p_total', help: 'plain', registers: [reference] });
    slowByResult.inc({ result: 'found' }, 0);
    for (let i = 0; i < 3; i++) {
      byResult.not_found.inc();
      slowByResult.inc({ result: 'not_found' });
      plain.inc();
      slowPlain.inc();
    }
    expect(await hot.metrics()).toBe(await reference.metrics());
    // A second scrape reports the same totals, not doubled ones.
    expect(await hot.metrics()).toBe(await reference.metrics());
  });
});
