import { describe, expect, it } from 'vitest';
import { isLocalAddress, isOwnLookupAddress, loopAnswer, loopProbeKey, newInstanceId } from '../../src/upstream/loop.js';
import { BACKOFF_MAX_MS, nextBackoff } from '../../src/upstream/pool.js';

describe('loop probe', () => {
  it('uses a lower-case id, which survives the lower-casing of lookup keys', () => {
    const id = newInstanceId();
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    expect(newInstanceId()).not.toBe(id);
    expect(loopProbeKey(id)).toBe(`atdirectory-loop-probe-${id}`);
    expect(loopProbeKey(id).toLowerCase()).toBe(loopProbeKey(id));
  });

  it('answers with a name under .invalid, as a servable host:port', () => {
    expect(loopAnswer('0123456789abcdef').toString()).toBe('0123456789abcdef.loop.invalid:64\r\n@');
  });
});

describe('own lookup address', () => {
  it.each(['127.0.0.1', '127.0.0.53', '::1', '::ffff:127.0.0.1', '0.0.0.0', '::'])('%s is local', (address) => {
    expect(isLocalAddress(address)).toBe(true);
  });

  it.each(['192.0.2.1', '2001:db8::1', '8.8.8.8'])('%s is not local', (address) => {
    expect(isLocalAddress(address)).toBe(false);
  });

  it('matches our port on any local address when bound to a wildcard', async () => {
    const listening = { host: '::', port: 6464 };
    expect(await isOwnLookupAddress({ host: '127.0.0.1', port: 6464 }, listening)).toBe(true);
    expect(await isOwnLookupAddress({ host: 'localhost', port: 6464 }, listening)).toBe(true);
    expect(await isOwnLookupAddress({ host: '127.0.0.1', port: 64 }, listening)).toBe(false);
    expect(await isOwnLookupAddress({ host: '192.0.2.1', port: 6464 }, listening)).toBe(false);
  });

  it('matches only the bound address when bound to one', async () => {
    const listening = { host: '127.0.0.1', port: 6464 };
    expect(await isOwnLookupAddress({ host: '127.0.0.1', port: 6464 }, listening)).toBe(true);
    expect(await isOwnLookupAddress({ host: '127.0.0.2', port: 6464 }, listening)).toBe(false);
  });

  it('cannot know a port picked at random (0), and leaves that case to the probe', async () => {
    expect(await isOwnLookupAddress({ host: '127.0.0.1', port: 6464 }, { host: '::', port: 0 })).toBe(false);
  });

  it('does not refuse a name that does not resolve', async () => {
    expect(await isOwnLookupAddress({ host: 'no-such-host.invalid', port: 6464 }, { host: '::', port: 6464 })).toBe(false);
  });
});

describe('backoff', () => {
  it('starts at 1 s and doubles up to 30 s', () => {
    const steps: number[] = [];
    let backoff = 0;
    for (let i = 0; i < 7; i++) steps.push((backoff = nextBackoff(backoff)));
    expect(steps).toEqual([1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
    expect(BACKOFF_MAX_MS).toBe(30_000);
  });
});
