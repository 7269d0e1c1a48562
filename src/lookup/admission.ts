import { isIPv6 } from 'node:net';

export interface AdmissionOptions {
  /** Open connections this process accepts in all; 0 = no limit. */
  maxConnections: number;
  /** Open connections per client (an IPv4 address, or an IPv6 prefix); 0 = no limit. */
  maxConnectionsPerClient: number;
  /** New connections per second per client, refilled continuously; 0 = no limit. */
  clientRate: number;
  /** How many new connections a client may open at once before the rate applies. */
  clientBurst: number;
  /** IPv6 clients are grouped by this prefix (a host usually owns a whole /64). */
  ipv6PrefixLength: number;
  /** Event-loop delay above which new connections are shed; 0 = never. */
  overloadDelayMs: number;
}

export type AdmissionRefusal = 'max_connections' | 'max_connections_per_client' | 'connection_rate' | 'overloaded';

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/** How often the event loop's delay is sampled: a tick that comes late by more than the threshold means saturation. */
const OVERLOAD_SAMPLE_MS = 50;
/** Clients whose buckets are full and who hold no connection are forgotten this often. */
const SWEEP_MS = 10_000;

/**
 * Decides, at accept and before any TLS work, whether a new connection may stay: the cheapest
 * place to refuse, as dnsdist refuses before it parses. Established connections are never shed.
 */
export class Admission {
  private open = 0;
  private readonly openByClient = new Map<string, number>();
  private readonly buckets = new Map<string, Bucket>();
  private lastSample = 0;
  private lateTicks = 0;
  private readonly timers: NodeJS.Timeout[] = [];
  /** True while the last sample showed the event loop too slow to take new work. */
  overloaded = false;

  constructor(
    private readonly options: AdmissionOptions,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    if (options.overloadDelayMs > 0) {
      this.lastSample = this.now();
      this.timers.push(setInterval(() => this.sampleDelay(), OVERLOAD_SAMPLE_MS).unref());
    }
    if (options.clientRate > 0) this.timers.push(setInterval(() => this.sweep(), SWEEP_MS).unref());
  }

  /** The client a remote address counts against. */
  clientOf(address: string | undefined): string {
    if (address === undefined) return '';
    if (address.startsWith('::ffff:') && address.includes('.')) return address.slice(7);
    if (!isIPv6(address)) return address;
    return ipv6Prefix(address, this.options.ipv6PrefixLength);
  }

  /** Counts the connection in, or says why it may not come in (and counts nothing). */
  admit(client: string): AdmissionRefusal | undefined {
    const { maxConnections, maxConnectionsPerClient } = this.options;
    if (this.overloaded) return 'overloaded';
    if (maxConnections > 0 && this.open >= maxConnections) return 'max_connections';
    const held = this.openByClient.get(client) ?? 0;
    if (maxConnectionsPerClient > 0 && held >= maxConnectionsPerClient) return 'max_connections_per_client';
    if (!this.takeToken(client)) return 'connection_rate';
    this.open++;
    this.openByClient.set(client, held + 1);
    return undefined;
  }

  /** An admitted connection has closed. */
  release(client: string): void {
    this.open--;
    const held = this.openByClient.get(client)! - 1;
    if (held === 0) this.openByClient.delete(client);
    else this.openByClient.set(client, held);
  }

  get openConnections(): number {
    return this.open;
  }

  stop(): void {
    for (const timer of this.timers) clearInterval(timer);
  }

  private takeToken(client: string): boolean {
    const { clientRate, clientBurst } = this.options;
    if (clientRate <= 0) return true;
    const now = this.now();
    const bucket = this.buckets.get(client);
    if (bucket === undefined) {
      this.buckets.set(client, { tokens: clientBurst - 1, updatedAt: now });
      return true;
    }
    bucket.tokens = Math.min(clientBurst, bucket.tokens + ((now - bucket.updatedAt) / 1000) * clientRate);
    bucket.updatedAt = now;
    if (bucket.tokens < 1) return false;
    bucket.tokens--;
    return true;
  }

  /**
   * Saturation is two late ticks in a row: one stall (a garbage collection, a large cache clear) is
   * not overload, but a loop that keeps falling behind is. Timers run before the poll phase accepts
   * connections, so connections that queued up meanwhile meet the verdict of the tick that measured
   * the delay. Shedding ends once a tick is on time again (within half the threshold, so it does
   * not flap).
   */
  private sampleDelay(): void {
    const now = this.now();
    const delay = now - this.lastSample - OVERLOAD_SAMPLE_MS;
    this.lastSample = now;
    if (delay > this.options.overloadDelayMs) {
      this.lateTicks++;
      if (this.lateTicks >= 2) this.overloaded = true;
    } else {
      this.lateTicks = 0;
      if (delay < this.options.overloadDelayMs / 2) this.overloaded = false;
    }
  }

  /** Keeps the bucket map as small as the set of recently active clients. */
  private sweep(): void {
    const now = this.now();
    const { clientRate, clientBurst } = this.options;
    for (const [client, bucket] of this.buckets) {
      if (bucket.tokens + ((now - bucket.updatedAt) / 1000) * clientRate >= clientBurst) this.buckets.delete(client);
    }
  }
}

/** The first `length` bits of an IPv6 address, as a canonical string (`2001:db8:0:1::/64`). */
export function ipv6Prefix(address: string, length: number): string {
  const [head, tail] = address.split('::') as [string, string | undefined];
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail (::ffff:1.2.3.4 forms) occupies two groups.
  const expand = (groups: string[]) =>
    groups.flatMap((group) => {
      if (!group.includes('.')) return [parseInt(group, 16)];
      const [a, b, c, d] = group.split('.').map(Number) as [number, number, number, number];
      return [(a << 8) | b, (c << 8) | d];
    });
  const headValues = expand(headGroups);
  const tailValues = expand(tailGroups);
  const groups = tail === undefined ? headValues : [...headValues, ...new Array<number>(8 - headValues.length - tailValues.length).fill(0), ...tailValues];
  const kept: string[] = [];
  for (let i = 0; i < 8; i++) {
    const bits = Math.max(0, Math.min(16, length - i * 16));
    const mask = bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff;
    kept.push((groups[i]! & mask).toString(16));
  }
  return `${kept.join(':')}/${length}`;
}
