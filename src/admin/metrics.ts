import { Counter, Histogram } from 'prom-client';
import { registry } from '../ops/registry.js';

export const adminRequests = new Counter({
  name: 'atdirectory_admin_requests_total',
  help: 'Admin API requests, by route pattern, method and status code.',
  labelNames: ['route', 'method', 'status'] as const,
  registers: [registry],
});

export const adminRequestDuration = new Histogram({
  name: 'atdirectory_admin_request_duration_seconds',
  help: 'Admin API request time, by route pattern and method.',
  labelNames: ['route', 'method'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: [registry],
});

export const adminAuthFailures = new Counter({
  name: 'atdirectory_admin_auth_failures_total',
  help: 'Refused admin API authentications: missing (no Authorization header) or invalid (malformed, unknown, wrong or revoked key).',
  labelNames: ['reason'] as const,
  registers: [registry],
});
