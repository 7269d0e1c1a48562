import { describe, expect, it } from 'vitest';
import { SettledHorizon } from '../../src/feed/horizon.js';

// A probe: the sequence's last value, then (read later) the oldest running transaction id and a new one.
const probe = (lastVersion: number, oldestRunningXid: number, nextXid: number) => ({ lastVersion, oldestRunningXid: BigInt(oldestRunningXid), nextXid: BigInt(nextXid) });

describe('settled horizon bookkeeping', () => {
  it('has settled nothing before a first probe', () => {
    expect(new SettledHorizon().settled).toBeUndefined();
  });

  it('settles a version in the probe that read it when no other transaction is running (oldest running = the new id)', () => {
    const horizon = new SettledHorizon();
    expect(horizon.observe(probe(0, 100, 100))).toBe(0);
    expect(horizon.observe(probe(7, 105, 105))).toBe(7);
  });

  it('holds a version back until a snapshot shows every transaction with a lower id than its probe ended', () => {
    const horizon = new SettledHorizon();
    expect(horizon.observe(probe(5, 100, 100))).toBe(5);
    // Transaction 100 is still running (it may hold version 6); 8 was read while it ran.
    expect(horizon.observe(probe(8, 100, 103))).toBe(5);
    expect(horizon.observe(probe(9, 100, 104))).toBe(5);
    // 100 ended, 103 (started after the first probe) still runs: 8 settles, 9 waits for 103.
    expect(horizon.observe(probe(9, 103, 106))).toBe(8);
    expect(horizon.observe(probe(9, 106, 106))).toBe(9);
  });

  it('never moves backwards, nor queues a version already settled or pending', () => {
    const horizon = new SettledHorizon();
    horizon.observe(probe(10, 50, 50));
    expect(horizon.observe(probe(4, 50, 50))).toBe(10);
    expect(horizon.observe(probe(12, 50, 60))).toBe(10);
    // The same version again with a later id must not delay it.
    expect(horizon.observe(probe(12, 50, 70))).toBe(10);
    expect(horizon.observe(probe(12, 60, 75))).toBe(12);
  });

  it('settles everything a long transaction held back once it ends, past the queue bound', () => {
    const horizon = new SettledHorizon();
    horizon.observe(probe(0, 1, 1));
    for (let version = 1; version <= 5000; version++) horizon.observe(probe(version, 1, version + 1));
    expect(horizon.settled).toBe(0);
    expect(horizon.observe(probe(5000, 5001, 5001))).toBe(5000);
  });
});
