import { Counter, Gauge } from 'prom-client';
import { HotHistogram, hotCounterFamily } from '../ops/hot-metrics.js';
import type { AdmissionRefusal } from './admission.js';
import { registry } from '../ops/registry.js';

export type LookupResult = 'found' | 'not_found' | 'suspended' | 'throttled' | 'error';
export type RejectionReason =
  | 'line_too_long'
  | 'invalid_utf8'
  | 'throttled'
  | 'idle_timeout'
  | 'request_timeout'
  | 'slow_reader'
  | 'drain_deadline'
  | AdmissionRefusal;
export type HandshakeFailure = 'timeout' | 'closed' | 'protocol';

export const lookupsByResult = hotCounterFamily<LookupResult>({
  name: 'atdirectory_lookups_total',
  help: 'Lookups answered (or refused, for throttled), by result.',
  labelName: 'result',
  labelValues: ['found', 'not_found', 'suspended', 'throttled', 'error'],
  registers: [registry],
});

export const lookupDuration = new HotHistogram({
  name: 'atdirectory_lookup_duration_seconds',
  help: 'Time from a request line being complete to its answer being written (throttling delays excluded).',
  buckets: [0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5],
  registers: [registry],
});

export const connectionsOpen = new Gauge({
  name: 'atdirectory_connections_open',
  help: 'Lookup connections open now (TLS established).',
  registers: [registry],
});

export const connectionsTotal = new Counter({
  name: 'atdirectory_connections_total',
  help: 'Lookup connections accepted (TCP), whether or not TLS completed.',
  registers: [registry],
});

const rejected = new Counter({
  name: 'atdirectory_connections_rejected_total',
  help: 'Lookup connections closed by a limit or rule, by reason.',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const rejectedBy: Record<RejectionReason, { inc(): void }> = {
  line_too_long: rejected.labels('line_too_long'),
  invalid_utf8: rejected.labels('invalid_utf8'),
  throttled: rejected.labels('throttled'),
  idle_timeout: rejected.labels('idle_timeout'),
  request_timeout: rejected.labels('request_timeout'),
  slow_reader: rejected.labels('slow_reader'),
  drain_deadline: rejected.labels('drain_deadline'),
  max_connections: rejected.labels('max_connections'),
  max_connections_per_client: rejected.labels('max_connections_per_client'),
  connection_rate: rejected.labels('connection_rate'),
  overloaded: rejected.labels('overloaded'),
};

export const handshakes = new Counter({
  name: 'atdirectory_tls_handshakes_total',
  help: 'Completed TLS handshakes on the lookup and HTTPS ports, by protocol version and whether the session was resumed.',
  labelNames: ['version', 'resumed'] as const,
  registers: [registry],
});

const handshakeFailures = new Counter({
  name: 'atdirectory_tls_handshake_failures_total',
  help: 'Connections that never completed TLS: timeout (silent or slow), closed (probe hung up), protocol (not TLS, or no common parameters).',
  labelNames: ['reason'] as const,
  registers: [registry],
});

export const handshakeFailuresBy: Record<HandshakeFailure, { inc(): void }> = {
  timeout: handshakeFailures.labels('timeout'),
  closed: handshakeFailures.labels('closed'),
  protocol: handshakeFailures.labels('protocol'),
};

export const certificateExpiry = new Gauge({
  name: 'atdirectory_tls_certificate_expiry_timestamp_seconds',
  help: 'When the lookup certificate expires (Unix time).',
  registers: [registry],
});
