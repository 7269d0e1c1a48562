import { Gauge } from 'prom-client';
import { hotCounterFamily } from '../ops/hot-metrics.js';
import { registry } from '../ops/registry.js';

/** Every status the lookup handler answers with (Node's parser answers malformed HTTP itself). */
export type HttpsStatus = '200' | '302' | '401' | '404' | '503';

export const httpsRequestsByStatus = hotCounterFamily<HttpsStatus>({
  name: 'atdirectory_https_requests_total',
  help: 'HTTPS lookup requests answered, by status: 200 found, 302 redirected, 401 not GET or HEAD, 404 unknown or suspended, 503 the database could not be read.',
  labelName: 'status',
  labelValues: ['200', '302', '401', '404', '503'],
  registers: [registry],
});

export const httpsConnectionsOpen = new Gauge({
  name: 'atdirectory_https_connections_open',
  help: 'HTTPS lookup connections open now (TLS established); also counted in atdirectory_connections_open.',
  registers: [registry],
});
