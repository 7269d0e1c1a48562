import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { encodeAnswer } from '../directory/answer.js';

/**
 * Loop prevention. Each process group has a random instance id; each upstream is asked for the key
 * `atdirectory-loop-probe-<id>`, and a directory that receives its own probe answers
 * `<id>.loop.invalid:64` (a name that can never resolve, RFC 6761). When our own probe comes back,
 * directly or through a chain of forwarding directories, the upstream leads back to us.
 */

/** Lower-case hex, so it survives the lower-casing every lookup key goes through. */
export function newInstanceId(): string {
  return randomBytes(8).toString('hex');
}

export function loopProbeKey(instanceId: string): string {
  return `atdirectory-loop-probe-${instanceId}`;
}

/** The answer to our own probe, as the bytes sent for it. */
export function loopAnswer(instanceId: string): Buffer {
  return encodeAnswer(`${instanceId}.loop.invalid`, 64);
}

const WILDCARDS = new Set(['', '::', '0.0.0.0']);

/**
 * Whether `host:port` is our own lookup port: the port matches and the host resolves to an address
 * we listen on (any address of this machine, loopback included, when bound to a wildcard). A name
 * that does not resolve is not ours; connecting to it will fail on its own.
 */
export async function isOwnLookupAddress(target: { host: string; port: number }, listening: { host: string; port: number }): Promise<boolean> {
  if (listening.port === 0 || target.port !== listening.port) return false;
  const targets = await addressesOf(target.host);
  const ours = WILDCARDS.has(listening.host) ? undefined : new Set(await addressesOf(listening.host));
  return targets.some((address) => (ours ? ours.has(address) || WILDCARDS.has(address) : isLocalAddress(address)));
}

/** An address of one of this machine's interfaces, any loopback address, or a wildcard. */
export function isLocalAddress(address: string): boolean {
  const plain = address.replace(/^::ffff:(?=\d+\.)/i, '').toLowerCase();
  if (WILDCARDS.has(plain) || plain === '::1' || (isIP(plain) === 4 && plain.startsWith('127.'))) return true;
  return Object.values(networkInterfaces()).some((entries) => entries?.some((entry) => entry.address.toLowerCase() === plain));
}

async function addressesOf(host: string): Promise<string[]> {
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare)) return [bare.toLowerCase()];
  try {
    return (await lookup(bare, { all: true })).map((entry) => entry.address.toLowerCase());
  } catch {
    return [];
  }
}
