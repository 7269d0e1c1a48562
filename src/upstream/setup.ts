import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { parseAddress, type Config } from '../config.js';
import { UpstreamCache } from './cache.js';
import { UpstreamForwarder } from './forwarder.js';
import { Upstreams } from './upstreams.js';

/** Forwarding to upstream roots for one lookup process. */
export interface UpstreamForwarding {
  /** The resolver's fallback. */
  readonly forwarder: UpstreamForwarder;
  /** Refuses an upstream that is our own lookup address and opens connections to the others. */
  start(): Promise<void>;
  stop(): void;
}

/** Builds forwarding from the --upstream settings, or returns undefined when there is no upstream. */
export async function setupUpstreams(config: Config, instanceId: string, logger: Logger): Promise<UpstreamForwarding | undefined> {
  if (config.upstream.length === 0) return undefined;
  const ca = config.upstreamCa
    ? await readFile(config.upstreamCa, 'utf8').catch((error: Error) => {
        throw new Error(`cannot read --upstream-ca ${config.upstreamCa}: ${error.message}`);
      })
    : undefined;
  if (config.upstreamInsecure) {
    logger.warn({ upstreams: config.upstream }, '--upstream-insecure: upstream certificates are not verified; anyone on the path can answer for them');
  }
  const upstreams = new Upstreams({
    // config.ts has validated every entry as host:port.
    targets: config.upstream.map((address) => parseAddress(address)!),
    connections: config.upstreamConnections,
    timeoutMs: config.upstreamTimeout,
    ca,
    insecure: config.upstreamInsecure,
    instanceId,
    listening: { host: config.lookupHost, port: config.lookupPort },
    logger,
  });
  const cache = new UpstreamCache({
    maxEntries: config.upstreamCacheMaxEntries,
    ttl: config.upstreamCacheTtl,
    negativeTtl: config.upstreamCacheNegativeTtl,
    maxStale: config.cacheMaxStale,
  });
  const forwarder = new UpstreamForwarder({ upstreams, cache, maxInflight: config.upstreamMaxInflight, instanceId });
  return {
    forwarder,
    async start() {
      await upstreams.start();
      logger.info({ upstreams: config.upstream, connections: config.upstreamConnections }, 'atsigns without a local record are forwarded upstream');
    },
    stop() {
      upstreams.stop();
      cache.release();
    },
  };
}
