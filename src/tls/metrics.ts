import { Counter } from 'prom-client';
import { registry } from '../ops/registry.js';

export const tlsReloads = new Counter({
  name: 'atdirectory_tls_reloads_total',
  help: 'Certificate and ticket-key files re-read after a change: loaded, or refused (the previous ones kept).',
  labelNames: ['file', 'result'] as const,
  registers: [registry],
});
