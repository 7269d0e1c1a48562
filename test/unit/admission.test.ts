import { describe, expect, it } from 'vitest';
import { Admission, ipv6Prefix } from '../../src/lookup/admission.js';

const unlimited = { maxConnections: 0, maxConnectionsPerClient: 0, clientRate: 0, clientBurst: 1, ipv6PrefixLength: 64, overloadDelayMs: 0 };

describe('clients', () => {
  const admission = new Admission(unlimited);

  it.each([
    ['192.0.2.7', '192.0.2.7'],
    ['::ffff:192.0.2.7', '192.0.2.7'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2:0:0:0:0/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2:0:0:0:0/64'],
    ['2001:DB8:1:2:ffff::', '2001:db8:1:2:0:0:0:0/64'],
    ['::1', '0:0:0:0:0:0:0:0/64'],
  ])('%s counts as %s', (address, client) => {
    expect(admission.clientOf(address)).toBe(client);
  });

  it('cuts IPv6 prefixes on any bit', () => {
    expect(ipv6Prefix('2001:db8:abcd:ef01::1', 56)).toBe('2001:db8:abcd:ef00:0:0:0:0/56');
    expect(ipv6Prefix('2001:db8::1', 128)).toBe('2001:db8:0:0:0:0:0:1/128');
    expect(ipv6Prefix('::ffff:10.1.2.3', 128)).toBe('0:0:0:0:0:ffff:a01:203/128');
  });
});

describe('admission', () => {
  it('counts per client and in total, and frees places on release', () => {
    const admission = new Admission({ ...unlimited, maxConnections: 3, maxConnectionsPerClient: 2 });
    expect([admission.admit('a'), admission.admit('a'), admission.admit('a')]).toEqual([undefined, undefined, 'max_connections_per_client']);
    expect([admission.admit('b'), admission.admit('c')]).toEqual([undefined, 'max_connections']);
    admission.release('a');
    expect(admission.admit('c')).toBeUndefined();
    expect(admission.openConnections).toBe(3);
  });

  it('refills each client\'s bucket at the configured rate, up to the burst', () => {
    let now = 0;
    const admission = new Admission({ ...unlimited, clientRate: 10, clientBurst: 2 }, () => now);
    expect([admission.admit('a'), admission.admit('a'), admission.admit('a')]).toEqual([undefined, undefined, 'connection_rate']);
    expect(admission.admit('b')).toBeUndefined();
    now += 100;
    expect([admission.admit('a'), admission.admit('a')]).toEqual([undefined, 'connection_rate']);
    now += 10_000;
    expect([admission.admit('a'), admission.admit('a'), admission.admit('a')]).toEqual([undefined, undefined, 'connection_rate']);
    admission.stop();
  });
});
