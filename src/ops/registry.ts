import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { packageVersion } from '../serve/package-version.js';

/**
 * The one registry every atdirectory metric is registered in. Each capability defines its metrics
 * in its own `metrics.ts` (lookup/, directory/, store/, admin/); docs/metrics.md lists them all.
 */
export const registry = new Registry();

collectDefaultMetrics({ register: registry });

new Gauge({
  name: 'atdirectory_build_info',
  help: 'Always 1; the labels say which atdirectory and Node.js are running.',
  labelNames: ['version', 'node'] as const,
  registers: [registry],
}).set({ version: packageVersion(), node: process.version }, 1);
