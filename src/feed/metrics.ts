import { Counter, Gauge } from 'prom-client';
import { registry } from '../ops/registry.js';

export const feedSettledVersion = new Gauge({
  name: 'atdirectory_feed_settled_version',
  help: 'The settled horizon: the highest version below which every transaction has finished; the feed publishes up to it.',
  registers: [registry],
});

export const feedIssuedVersion = new Gauge({
  name: 'atdirectory_feed_issued_version',
  help: 'The highest version drawn, as the last horizon probe read it; a gap to the settled version that persists is a long-running write transaction holding the feed back.',
  registers: [registry],
});

export const feedSubscribers = new Gauge({
  name: 'atdirectory_feed_subscribers',
  help: 'Open change streams (GET /v1/changes as Server-Sent Events).',
  registers: [registry],
});

export const feedSubscribersDropped = new Counter({
  name: 'atdirectory_feed_subscribers_dropped_total',
  help: 'Change streams closed because the subscriber stopped reading and its unsent events passed the buffer limit.',
  registers: [registry],
});

export const feedChangesSent = new Counter({
  name: 'atdirectory_feed_changes_sent_total',
  help: 'Signed changes sent, by how: page (GET /v1/changes as JSON) or stream (one per change per subscriber).',
  labelNames: ['via'] as const,
  registers: [registry],
});

export const feedSnapshots = new Counter({
  name: 'atdirectory_feed_snapshots_total',
  help: 'GET /v1/snapshot streams, by result: completed (end line sent), aborted (client gone or database error), refused (all snapshot connections busy).',
  labelNames: ['result'] as const,
  registers: [registry],
});
