import { describe, expect, it } from 'vitest';
import { NOT_FOUND, encodeAnswer } from '../../src/directory/answer.js';
import type { Resolution } from '../../src/directory/cache.js';
import { registry } from '../../src/ops/registry.js';
import { UpstreamCache } from '../../src/upstream/cache.js';
import { UpstreamForwarder, type UpstreamQueries } from '../../src/upstream/forwarder.js';
import type { ServableReply } from '../../src/upstream/upstreams.js';
import { parseMetrics } from '../support/metrics.js';

/** Upstream roots whose replies the test gives by hand, to stage flights exactly. */
class ManualUpstreams implements UpstreamQueries {
  allDown = false;
  readonly pending: Array<{ key: string; reply: (reply: ServableReply | undefined) => void }> = [];
  query(key: string): Promise<ServableReply | undefined> {
    return new Promise((reply) => this.pending.push({ key, reply }));
  }
}

function setup({ maxInflight = 10 } = {}) {
  let now = 1_000_000;
  const cache = new UpstreamCache({ maxEntries: 100, ttl: 1000, negativeTtl: 100, maxStale: 5000, now: () => now });
  const upstreams = new ManualUpstreams();
  const forwarder = new UpstreamForwarder({ upstreams, cache, maxInflight, instanceId: '0123456789abcdef' });
  return { forwarder, upstreams, cache, advance: (ms: number) => (now += ms) };
}

const found = (host: string): ServableReply => ({ kind: 'found', answer: encodeAnswer(host, 64) });
const text = async (resolution: Resolution | Promise<Resolution>) => String((await resolution).answer);
const now = (resolution: Resolution | Promise<Resolution>): Resolution => {
  expect(resolution).not.toBeInstanceOf(Promise);
  return resolution as Resolution;
};
const settle = () => new Promise((resolve) => setImmediate(resolve));

async function counters(): Promise<Record<string, number>> {
  const samples = parseMetrics(await registry.metrics());
  const read = (name: string) => samples.get(name) ?? 0;
  return {
    hit: read('atdirectory_upstream_cache_results_total{result="hit"}'),
    stale: read('atdirectory_upstream_cache_results_total{result="stale"}'),
    miss: read('atdirectory_upstream_cache_results_total{result="miss"}'),
    inflight: read('atdirectory_upstream_rejected_total{reason="inflight"}'),
  };
}

async function growthOf(work: () => Promise<void>): Promise<Record<string, number>> {
  const before = await counters();
  await work();
  const after = await counters();
  return Object.fromEntries(Object.entries(after).map(([name, value]) => [name, value - before[name]!]));
}

describe('UpstreamForwarder', () => {
  it('asks once for concurrent lookups of a key, then answers from the cache synchronously', async () => {
    const { forwarder, upstreams } = setup();
    const growth = await growthOf(async () => {
      const answers = Array.from({ length: 50 }, () => forwarder.resolve('bob'));
      expect(upstreams.pending).toHaveLength(1);
      upstreams.pending[0]!.reply(found('b.example'));
      for (const answer of answers) expect(await text(answer)).toBe('b.example:64\r\n@');
      const hit = now(forwarder.resolve('bob'));
      expect(hit).toBe(now(forwarder.resolve('bob')));
      expect(hit).toMatchObject({ result: 'found' });
    });
    expect(growth).toEqual({ hit: 2, stale: 0, miss: 50, inflight: 0 });
  });

  it('caches an upstream null for the negative TTL, with the shared NOT_FOUND bytes', async () => {
    const { forwarder, upstreams, advance } = setup();
    const first = forwarder.resolve('nobody');
    upstreams.pending[0]!.reply({ kind: 'not_found' });
    expect(await first).toMatchObject({ answer: NOT_FOUND, result: 'not_found' });
    expect(now(forwarder.resolve('nobody')).answer).toBe(NOT_FOUND);
    advance(100);
    void forwarder.resolve('nobody');
    expect(upstreams.pending).toHaveLength(2);
  });

  it('answers its own loop probe without asking anyone', () => {
    const { forwarder, upstreams } = setup();
    expect(String(now(forwarder.resolve('atdirectory-loop-probe-0123456789abcdef')).answer)).toBe('0123456789abcdef.loop.invalid:64\r\n@');
    void forwarder.resolve('atdirectory-loop-probe-fedcba9876543210');
    expect(upstreams.pending.map((query) => query.key)).toEqual(['atdirectory-loop-probe-fedcba9876543210']);
  });

  it('never forwards a key longer than the reference root accepts, which would cost a connection', () => {
    const { forwarder, upstreams } = setup();
    expect(now(forwarder.resolve('a'.repeat(256)))).toEqual({ answer: NOT_FOUND, result: 'not_found' });
    void forwarder.resolve('a'.repeat(255));
    expect(upstreams.pending.map((query) => query.key.length)).toEqual([255]);
  });

  it('answers null at once beyond the in-flight bound, and counts it', async () => {
    const { forwarder, upstreams } = setup({ maxInflight: 2 });
    const growth = await growthOf(async () => {
      void forwarder.resolve('a');
      void forwarder.resolve('b');
      // Joining a query already in flight needs no new one.
      expect(forwarder.resolve('a')).toBeInstanceOf(Promise);
      expect(now(forwarder.resolve('c'))).toEqual({ answer: NOT_FOUND, result: 'error' });
      expect(upstreams.pending.map((query) => query.key)).toEqual(['a', 'b']);
      expect(forwarder.inflight).toBe(2);
      upstreams.pending[0]!.reply(found('a.example'));
      await settle();
      expect(forwarder.inflight).toBe(1);
      expect(forwarder.resolve('c')).toBeInstanceOf(Promise);
    });
    expect(growth).toMatchObject({ inflight: 1 });
  });

  it('answers null and caches nothing when every upstream fails', async () => {
    const { forwarder, upstreams, cache } = setup();
    const answer = forwarder.resolve('bob');
    upstreams.pending[0]!.reply(undefined);
    expect(await answer).toEqual({ answer: NOT_FOUND, result: 'error' });
    expect(cache.get('bob')).toBeUndefined();
    void forwarder.resolve('bob');
    expect(upstreams.pending).toHaveLength(2);
  });

  it('serves an expired answer when its refresh fails, within the stale bound only', async () => {
    const { forwarder, upstreams, advance } = setup();
    const first = forwarder.resolve('bob');
    upstreams.pending[0]!.reply(found('b.example'));
    await first;
    advance(1000);
    const growth = await growthOf(async () => {
      const refreshing = forwarder.resolve('bob');
      expect(refreshing).toBeInstanceOf(Promise);
      upstreams.pending[1]!.reply(undefined);
      expect(await text(refreshing)).toBe('b.example:64\r\n@');
    });
    expect(growth).toMatchObject({ stale: 1, miss: 0 });
    advance(5000);
    const late = forwarder.resolve('bob');
    upstreams.pending[2]!.reply(undefined);
    expect(await late).toEqual({ answer: NOT_FOUND, result: 'error' });
  });

  it('while every upstream is down, serves an expired answer at once and refreshes it in the background', async () => {
    const { forwarder, upstreams, advance } = setup();
    const first = forwarder.resolve('bob');
    upstreams.pending[0]!.reply(found('b.example'));
    await first;
    advance(1000);
    upstreams.allDown = true;
    const growth = await growthOf(async () => {
      expect(String(now(forwarder.resolve('bob')).answer)).toBe('b.example:64\r\n@');
      expect(String(now(forwarder.resolve('bob')).answer)).toBe('b.example:64\r\n@');
      expect(upstreams.pending).toHaveLength(2);
      upstreams.pending[1]!.reply(found('moved.example'));
      await settle();
    });
    expect(growth).toEqual({ hit: 0, stale: 2, miss: 0, inflight: 0 });
    expect(String(now(forwarder.resolve('bob')).answer)).toBe('moved.example:64\r\n@');
  });
});
